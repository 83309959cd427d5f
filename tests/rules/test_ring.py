from __future__ import annotations

import numpy as np
import pytest

from ecocluster.rules.ring import BucketRing

RES = 1000


def ring_with(
    readings: list[tuple[int, int, float]], *, n_series: int = 2, n_buckets: int = 4
) -> BucketRing:
    ring = BucketRing(n_series, res_ms=RES, n_buckets=n_buckets)
    rows = np.array([r[0] for r in readings], np.int64)
    ts = np.array([r[1] for r in readings], np.int64)
    values = np.array([r[2] for r in readings])
    ring.advance(int(ts.max()) // RES)
    ring.scatter(rows, ts, values)
    return ring


def test_scatter_counts_sums_and_extremes_per_bucket() -> None:
    ring = ring_with([(0, 0, 1.0), (0, 500, 3.0), (0, 1500, 5.0), (1, 1999, -2.0), (1, 1000, 4.0)])
    sl = ring.window(np.array([0, 1]), 1, 2)
    # (k buckets, n rows): columns are series 0 and 1
    np.testing.assert_array_equal(sl.count.T, [[2, 1], [0, 2]])
    np.testing.assert_array_equal(sl.sum.T, [[4.0, 5.0], [0.0, 2.0]])
    np.testing.assert_array_equal(sl.min.T, [[1.0, 5.0], [np.inf, -2.0]])
    np.testing.assert_array_equal(sl.max.T, [[3.0, 5.0], [-np.inf, 4.0]])
    np.testing.assert_array_equal(sl.mean().T, [[2.0, 5.0], [np.nan, 1.0]])
    np.testing.assert_array_equal(sl.total_mean(), [3.0, 1.0])


def test_advance_clears_reused_slots_and_drops_too_old_readings() -> None:
    ring = ring_with([(0, 0, 1.0), (0, 3500, 7.0)])  # buckets 0 and 3 of a 4-bucket ring
    ring.advance(4)  # bucket 4 reuses bucket 0's slot
    ring.scatter(np.array([0, 0]), np.array([4100, 200]), np.array([9.0, 100.0]))
    sl = ring.window(np.array([0]), 4, 4)  # buckets 1..4
    np.testing.assert_array_equal(sl.count.T, [[0, 0, 1, 1]])
    np.testing.assert_array_equal(sl.sum.T, [[0, 0, 7.0, 9.0]])


def test_window_beyond_head_or_horizon_is_empty() -> None:
    ring = ring_with([(0, 1000, 2.0)])
    sl = ring.window(np.array([0]), 6, 8)  # buckets -1..6: only bucket 1 is held
    assert sl.count.T.tolist() == [[0, 0, 1, 0, 0, 0, 0, 0]]


def test_grow_adds_empty_rows() -> None:
    ring = ring_with([(1, 0, 5.0)])
    ring.grow(2)
    assert ring.count.shape == (4, 4)  # (n_buckets, n_series)
    assert ring.window(np.array([1, 3]), 0, 1).count.tolist() == [[1, 0]]


def test_rejects_a_degenerate_ring() -> None:
    with pytest.raises(ValueError, match="at least 2 buckets"):
        BucketRing(1, res_ms=1000, n_buckets=1)
