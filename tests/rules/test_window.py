from __future__ import annotations

from zoneinfo import ZoneInfo

import numpy as np

from ecocluster.rules.window import HotWindow, WindowConfig

M = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000
UTC = ZoneInfo("UTC")


def scatter(w: HotWindow, readings: list[tuple[int, int, float]]) -> None:
    w.scatter(
        np.array([r[0] for r in readings], np.int64),
        np.array([r[1] for r in readings], np.int64),
        np.array([r[2] for r in readings]),
    )


def test_latest_value_is_the_newest_by_time_not_by_arrival() -> None:
    w = HotWindow(3, UTC)
    scatter(w, [(0, T0 + 2000, 5.0), (0, T0 + 1000, 9.0), (1, T0, 1.0), (1, T0 + 10, np.nan)])
    assert w.last_value.tolist()[:2] == [5.0, 1.0] and np.isnan(w.last_value[2])
    assert w.last_ts.tolist() == [T0 + 2000, T0, -1]
    np.testing.assert_array_equal(
        w.latest(np.array([0, 1, 2]), T0 + 5 * M, stale_ms=5 * M - 1500), [5.0, np.nan, np.nan]
    )


def test_window_covers_whole_buckets_before_now() -> None:
    w = HotWindow(1, UTC)
    scatter(w, [(0, T0 + m * M + 1, float(m)) for m in range(10)])
    # [T0+7m, T0+10m): minutes 7, 8, 9
    np.testing.assert_array_equal(
        w.measure(np.array([0]), T0 + 10 * M, agg="mean", window_ms=3 * M, stale_ms=0), [8.0]
    )
    np.testing.assert_array_equal(
        w.measure(np.array([0]), T0 + 10 * M, agg="max", window_ms=5 * M, stale_ms=0), [9.0]
    )
    np.testing.assert_array_equal(
        w.measure(np.array([0]), T0 + 10 * M, agg="min", window_ms=5 * M, stale_ms=0), [5.0]
    )


def test_long_windows_come_from_the_coarse_ring_after_sealing() -> None:
    w = HotWindow(1, UTC)
    scatter(w, [(0, T0 + m * M, 1.0) for m in range(120)])  # two hours of minutes
    w.advance_to(T0 + 120 * M)  # what a tick does first: seals all but the last 2 minutes
    sl = w.window(np.array([0]), T0 + 120 * M, 2 * 3_600_000)  # 2 h: coarse, 8 buckets of 15 min
    assert w.ring_for(2 * 3_600_000) is w.coarse
    # the last two minutes are not sealed into the coarse ring yet
    assert sl.count[:, 0].tolist() == [15] * 7 + [13]
    late = T0 + 5 * M + 30_000  # long sealed: goes straight to the coarse ring
    scatter(w, [(0, late, 100.0)])
    assert w.window(np.array([0]), T0 + 120 * M, 2 * 3_600_000).max[0, 0] == 100.0


def test_completed_coarse_buckets_teach_the_baseline() -> None:
    w = HotWindow(2, UTC)
    scatter(w, [(0, T0 + m * M, 10.0 + m % 2) for m in range(60)])  # 10, 11, 10, …
    scatter(w, [(1, T0 + 3 * 3_600_000, 1.0)])  # time moves on: the first hour completes
    first = w.calendar.slot(T0)  # one slot per quarter hour: four slots, one sample each
    assert w.baseline.n[0, first : first + 4].tolist() == [1, 1, 1, 1]
    assert w.baseline.level[0, first] == np.float32(157 / 15)  # 8 × 10 + 7 × 11
    assert w.baseline.n[1].sum() == 0 and w.baseline.first_ms[0] == T0


def test_reporting_interval_is_learned_and_drives_coverage() -> None:
    w = HotWindow(2, UTC)
    scatter(w, [(0, T0 + m * 5 * M, 1.0) for m in range(12)])  # every 5 min
    scatter(w, [(1, T0 + m * M, 1.0) for m in range(30)])  # every minute, half an hour
    np.testing.assert_allclose(w.interval_ms, [5 * M, M])
    now = T0 + 60 * M
    sl = w.window(np.array([0, 1]), now, 60 * M)
    np.testing.assert_allclose(w.coverage(np.array([0, 1]), sl, 60 * M), [1.0, 0.5])


def test_grow_keeps_old_rows_and_memory_per_series_is_bounded() -> None:
    w = HotWindow(2, UTC)
    scatter(w, [(1, T0, 4.0)])
    w.grow(5)
    assert w.n_series == 5 and w.last_value[1] == 4.0 and np.isnan(w.last_value[4])
    assert w.fine.count.shape == (64, 5) and w.baseline.level.shape == (5, 288)
    assert w.bytes_per_series() <= 8 * 1024


def test_config_rejects_rings_that_do_not_nest() -> None:
    import pytest

    with pytest.raises(ValueError, match="multiple of the fine one"):
        WindowConfig(fine_res_ms=7_000, coarse_res_ms=900_000)
