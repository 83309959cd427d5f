"""The spool: durable appends, ordered replay, a torn tail cut off, a hard budget."""

from __future__ import annotations

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
