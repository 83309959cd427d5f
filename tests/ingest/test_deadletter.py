"""The dead-letter log stays within its budget and logs one summary per interval."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ecocluster.ingest.deadletter import DeadLetterLog


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
