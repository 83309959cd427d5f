"""The dead-letter log stays within its budget and logs one summary per interval."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from ecocluster.ingest.deadletter import MAX_ROWS, DeadLetterLog, record_rejections
from ecocluster.ingest.mqtt import Inbound


def test_rotation_keeps_the_files_within_budget(tmp_path: Path) -> None:
    counted: list[tuple[str, int]] = []
    dl = DeadLetterLog(
        tmp_path / "dl.jsonl", max_bytes=8192, on_record=lambda r, n: counted.append((r, n))
    )
    for i in range(500):
        dl.record("eco/s/m/data", "not_json", f"bad {i}", payload=b"x" * 3000)
    dl.flush()
    sizes = [p.stat().st_size for p in tmp_path.iterdir()]
    assert len(sizes) == 2 and sum(sizes) <= 8192
    entries = dl.entries()
    assert entries[-1]["message"] == "bad 499" and len(entries[-1]["payload"]) == 1024
    assert dl.counts["not_json"] == 500 and len(counted) == 500
    dl.close()


def test_a_flood_logs_one_summary_per_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dl = DeadLetterLog(tmp_path / "dl.jsonl", max_bytes=1 << 20, summary_interval_s=3600)
    with caplog.at_level(logging.WARNING, logger="ecocluster.ingest.deadletter"):
        for i in range(1000):
            dl.record("t", "future" if i % 2 else "too_old", "x")
            dl.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "rejected 1 readings" in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ecocluster.ingest.deadletter"):
        dl.close()  # the rest is summed up once on the way out
    assert len(caplog.records) == 1 and "future 500, too_old 499" in caplog.records[0].getMessage()


# -- files removed or renamed underneath (issue 9 #9) -------------------------------------------
@pytest.mark.parametrize("how", ["removed", "renamed", "directory removed"])
def test_a_file_removed_or_renamed_underneath_never_stops_the_log(tmp_path: Path, how: str) -> None:
    path = tmp_path / "logs" / "dl.jsonl"
    dl = DeadLetterLog(path, max_bytes=4096)
    dl.record("t", "not_json", "before")
    dl.flush()
    if how == "removed":
        path.unlink()
    elif how == "renamed":  # logrotate's default: rename, then the writer must reopen
        path.rename(path.with_name("dl.jsonl-20250101"))
    else:
        shutil.rmtree(path.parent)
    dl.flush()  # notices, and starts a new file at the next entry
    for i in range(100):  # well past a rotation (4 KiB budget)
        dl.record("t", "not_json", f"after {i}", payload=b"y" * 100)
        dl.flush()
    assert path.exists()
    messages = [e["message"] for e in dl.entries()]
    assert messages[-1] == "after 99" and "before" not in messages
    assert dl.counts["not_json"] == 101 and dl.write_errors == 0
    dl.close()


def test_a_write_that_fails_is_counted_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log's directory should be")
    dl = DeadLetterLog(blocker / "dl.jsonl", max_bytes=4096)
    dl.record("t", "not_json", "lost")  # never raises
    dl.flush()
    assert dl.write_errors == 1 and dl.counts["not_json"] == 1
    dl.close()


# -- one entry per message, bounded (issue 9 #16) --------------------------------------------------
@dataclass(frozen=True)
class _Rej:
    message: Inbound
    reason: str
    text: str
    field: str
    count: int
    msg_idx: int


def test_a_message_with_thousands_of_bad_readings_is_one_bounded_entry(tmp_path: Path) -> None:
    counted: Counter[str] = Counter()
    dl = DeadLetterLog(
        tmp_path / "dl.jsonl",
        max_bytes=1 << 20,
        on_record=lambda r, n: counted.update({r: n}),
    )
    dl.record("t", "not_json", "an earlier piece of evidence")
    flood = Inbound("eco/s1/em-01/data", b"[" + b"1," * 32_699 + b"1]", 7, 1, 5, 1)
    rows = [
        _Rej(flood, "schema", f"item {i} is not an object", f"[{i}]", 1, 0) for i in range(32_700)
    ]
    rows.append(_Rej(flood, "future", "too far ahead", "power_w", 1, 0))
    other = Inbound("eco/s1/em-01/data", b"{}", 8, 1, 5, 1)
    rows.append(_Rej(other, "schema", 'missing "m"', ".m", 1, 1))
    assert record_rejections(dl, rows) == 2
    entries = dl.entries()
    assert len(entries) == 3 and entries[0]["message"] == "an earlier piece of evidence"
    big = entries[1]
    assert big["count"] == 32_701 and big["reason"] == "schema"
    assert big["reasons"] == {"schema": 32_700, "future": 1}
    assert len(big["rows"]) == MAX_ROWS and big["rows_omitted"] == 32_701 - MAX_ROWS  # type: ignore[arg-type]
    assert (tmp_path / "dl.jsonl").stat().st_size < 8 * 1024
    assert counted == {"not_json": 1, "schema": 32_701, "future": 1}  # metrics stay exact
    dl.close()
