"""The spool: durable appends, ordered replay, a torn tail cut off, a hard budget."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ecocluster.core.types import ReadingBatch, SeriesKey
from ecocluster.ingest.errors import SpoolFullError
from ecocluster.ingest.spool import Spool, decode_batch, encode_batch

KEYS = (SeriesKey("o", "s", "m", "power_w"), SeriesKey("o", "s", "m", "energy_kwh"))


def make(start: int, n: int = 3) -> ReadingBatch:
    return ReadingBatch(
        KEYS,
        np.arange(n) % 2,
        np.arange(start, start + n),
        np.arange(n) * 1.5,
        np.where(np.arange(n) % 2 == 1, 0.25, np.nan),
    )


def test_batches_round_trip_exactly() -> None:
    b = make(100)
    got = decode_batch(encode_batch(b))
    assert [got.series[i] for i in got.series_idx] == [b.series[i] for i in b.series_idx]
    assert got.ts_ms.tolist() == b.ts_ms.tolist() and got.values.tolist() == b.values.tolist()
    assert np.array_equal(got.deltas, b.deltas, equal_nan=True)


def test_replay_in_order_across_segments_and_restarts(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.open()
    spool.append(make(0))
    spool.append(make(10))
    oldest = spool.oldest()
    assert oldest is not None
    spool.append(make(20))  # after sealing: a new segment
    spool.close()
    again = Spool(tmp_path, max_bytes=1 << 20)
    again.open()
    assert again.batches == 3
    seen = []
    while (found := again.oldest()) is not None:
        path, batches = found
        seen += [int(b.ts_ms[0]) for b in batches]
        again.drop(path)
    assert seen == [0, 10, 20] and again.empty and again.bytes == 0


def test_a_torn_tail_is_cut_off(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.open()
    spool.append(make(0))
    spool.append(make(10))
    spool.close()
    seg = next(tmp_path.glob("*.seg"))
    seg.write_bytes(seg.read_bytes()[:-5])  # a crash in the middle of the second append
    again = Spool(tmp_path, max_bytes=1 << 20)
    again.open()
    assert again.batches == 1
    found = again.oldest()
    assert found is not None and [int(b.ts_ms[0]) for b in found[1]] == [0]


def test_the_budget_is_hard(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=600)
    spool.open()
    spool.append(make(0))
    with pytest.raises(SpoolFullError, match="spool full"):
        for i in range(10):
            spool.append(make(i * 10 + 10))
    assert spool.bytes <= 600
    spool.close()
    assert sum(p.stat().st_size for p in tmp_path.glob("*.seg")) == spool.bytes


# -- a full disk (issue 9 #8) -----------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 96 KiB tmpfs when this process may mount one (root), else the same limit
    injected into `os.write` (a fake filesystem layer)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() == 0 and shutil.which("mount"):
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)], capture_output=True
        )
        if done.returncode == 0:
            try:
                yield mount
            finally:
                subprocess.run(["umount", "-l", str(mount)], check=False)
            return
    real_write, used = os.write, [0]

    def limited(fd: int, data: bytes | memoryview) -> int:  # pragma: no cover - non-root
        room = 96 * 1024 - used[0]
        if room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real_write(fd, bytes(data[:room]))
        used[0] += n
        return n

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "write", limited)
        yield mount


def big(start: int) -> ReadingBatch:
    return make(start, 300)  # ~10 KB a batch


def test_a_full_disk_is_spool_full_not_a_crash_and_resumes(small_disk: Path) -> None:
    filler = small_disk / "other-program.log"
    filler.write_bytes(b"x" * 40 * 1024)  # someone else uses the disk too
    spool = Spool(small_disk / "spool", max_bytes=1 << 30)  # the budget is not the limit
    spool.open()
    written = 0
    with pytest.raises(SpoolFullError, match=r"No space left|cannot be written"):
        for i in range(100):
            spool.append(big(i * 1000))
            written += 1
    assert 0 < written < 100
    on_disk = sum(p.stat().st_size for p in (small_disk / "spool").glob("*.seg"))
    assert on_disk == spool.bytes  # the failed record left nothing behind
    # A restart on the still-full disk opens cleanly and finds exactly what was durable.
    spool.close()
    again = Spool(small_disk / "spool", max_bytes=1 << 30)
    again.open()
    assert again.batches == written
    with pytest.raises(SpoolFullError):
        again.append(big(999_000))
    filler.unlink()  # space returns
    again.append(big(999_000))
    assert again.batches == written + 1
    seen = []
    while (found := again.oldest()) is not None:
        seen += [int(b.ts_ms[0]) for b in found[1]]
        again.drop(found[0])
    assert seen == [i * 1000 for i in range(written)] + [999_000]
