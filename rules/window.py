"""The hot window: columnar numpy state for every series the rule engine knows.

Rows are series (meter × quantity), indexed once from the registry and grown when new
series appear. Per row: the latest value and time, the device's online flag, two bucket
rings (fine: 1 min × 64, coarse: 15 min × 100 ≈ 25 h by default), baselines per 15-minute
slot of the territory's week (`baseline.py`) fed from completed coarse buckets, and
night-minimum trackers created on demand by `night_flow` rules. Everything is updated
with whole-array operations per batch.

Readings are scattered into the fine ring only; a fine bucket is folded into the coarse
ring once sealed (two buckets behind the head), so windows served by the coarse ring
(longer than about an hour) see data up to ~2 minutes old. Readings that arrive after
their fine bucket was sealed go to the coarse ring directly, so nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from zoneinfo import ZoneInfo

import numpy as np

from ecocluster.core.types import BoolArray, FloatArray, IntArray
from ecocluster.rules.baseline import BaselineTable, Calendar
from ecocluster.rules.nights import NightTracker
from ecocluster.rules.ring import BucketRing, WindowSlice

__all__ = ["Agg", "HotWindow", "WindowConfig"]

Agg = str  # "last" | "mean" | "min" | "max"
_NEVER = -1
#: Fine buckets stay unsealed (not yet folded into the coarse ring) for this many buckets
#: after the head: the grace for late readings. Coarse windows lag by that much.
_SEAL_LAG = 2


@dataclass(frozen=True, slots=True)
class WindowConfig:
    """Ring sizes. The longest rule window must fit the coarse ring (`horizon_ms`)."""

    fine_res_ms: int = 60_000
    fine_buckets: int = 64
    coarse_res_ms: int = 900_000
    coarse_buckets: int = 100
    n_nights: int = 8

    def __post_init__(self) -> None:
        if self.coarse_res_ms % self.fine_res_ms:
            raise ValueError("the coarse resolution must be a multiple of the fine one")

    @property
    def horizon_ms(self) -> int:
        return self.coarse_res_ms * (self.coarse_buckets - 1)


class HotWindow:
    """State of `n_series` rows; `scatter` readings in, ask `window`/`measure` at a tick."""

    def __init__(self, n_series: int, tz: ZoneInfo, config: WindowConfig | None = None) -> None:
        self.config = config or WindowConfig()
        self.tz = tz
        self.n_series = n_series
        self.last_ts = np.full(n_series, _NEVER, np.int64)
        self.last_value = np.full(n_series, np.nan)
        self.is_offline = np.zeros(n_series, np.bool_)
        self.offline_ms = np.full(n_series, _NEVER, np.int64)
        self.interval_ms = np.full(n_series, np.nan)
        self._mark = np.zeros(n_series, np.int64)  # scratch: duplicate-row check
        self.fine = BucketRing(
            n_series, res_ms=self.config.fine_res_ms, n_buckets=self.config.fine_buckets
        )
        self.coarse = BucketRing(
            n_series, res_ms=self.config.coarse_res_ms, n_buckets=self.config.coarse_buckets
        )
        self.calendar = Calendar(tz)
        self.baseline = BaselineTable(n_series)
        self.nights: dict[tuple[time, time], NightTracker] = {}
        self._completed_through = -(2**62)
        self._sealed_through = -(2**62)
        #: Event time of the newest reading or tick seen.
        self.now_ms = _NEVER

    # -- shape -----------------------------------------------------------------------------
    def grow(self, n_series: int) -> None:
        """Make room for `n_series` rows in total (new rows empty); never shrinks."""
        n_new = n_series - self.n_series
        if n_new <= 0:
            return
        self.last_ts = np.concatenate([self.last_ts, np.full(n_new, _NEVER, np.int64)])
        self.last_value = np.concatenate([self.last_value, np.full(n_new, np.nan)])
        self.is_offline = np.concatenate([self.is_offline, np.zeros(n_new, np.bool_)])
        self.offline_ms = np.concatenate([self.offline_ms, np.full(n_new, _NEVER, np.int64)])
        self.interval_ms = np.concatenate([self.interval_ms, np.full(n_new, np.nan)])
        self._mark = np.zeros(n_series, np.int64)
        self.fine.grow(n_new)
        self.coarse.grow(n_new)
        self.baseline.grow(n_new)
        for tracker in self.nights.values():
            tracker.grow(n_new)
        self.n_series = n_series

    def night_tracker(self, start: time, end: time) -> NightTracker:
        """The tracker of one night window, created empty the first time a rule asks."""
        key = (start, end)
        if key not in self.nights:
            self.nights[key] = NightTracker(
                self.n_series, start=start, end=end, n_nights=self.config.n_nights
            )
        return self.nights[key]

    def bytes_per_series(self) -> float:
        per_row = (
            self.last_ts.itemsize
            + self.last_value.itemsize
            + self.is_offline.itemsize
            + self.offline_ms.itemsize
            + self.interval_ms.itemsize
        )
        total = self.fine.nbytes + self.coarse.nbytes + self.baseline.nbytes
        total += sum(t.nbytes for t in self.nights.values())
        return per_row + total / max(self.n_series, 1)

    # -- input -----------------------------------------------------------------------------
    def scatter(self, rows: IntArray, ts_ms: IntArray, values: FloatArray) -> None:
        """Readings (each (n,)) for engine rows: latest value, rings, online flag.

        A batch spanning several coarse buckets (a backlog, a backtest slice) is cut at
        bucket boundaries so every bucket is complete before baselines learn from it.
        """
        if rows.shape[0] == 0:
            return
        keep: BoolArray = np.isfinite(values)
        if not keep.all():
            rows, ts_ms, values = rows[keep], ts_ms[keep], values[keep]
        self._update_latest(rows, ts_ms, values)
        if self.is_offline.any():
            is_back = self.is_offline[rows] & (ts_ms > self.offline_ms[rows])
            self.is_offline[rows[is_back]] = False
        res = self.coarse.res_ms
        if ts_ms.shape[0] and ts_ms.max() // res == ts_ms.min() // res:
            self._scatter_chunk(rows, ts_ms, values)
            return
        order = np.argsort(ts_ms, kind="stable")
        rows, ts_ms, values = rows[order], ts_ms[order], values[order]
        buckets = ts_ms // res
        cuts = np.flatnonzero(np.diff(buckets)) + 1
        for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), ts_ms.shape[0]], strict=True):
            self._scatter_chunk(rows[lo:hi], ts_ms[lo:hi], values[lo:hi])

    def _update_latest(self, rows: IntArray, ts_ms: IntArray, values: FloatArray) -> None:
        """Latest value/time per row, and each row's reporting interval: an EWMA of
        (newest − previous newest) / readings."""
        if self._rows_unique(rows):  # one reading per row: the usual live batch
            before = self.last_ts[rows]
            is_newest = ts_ms >= before
            self.last_ts[rows[is_newest]] = ts_ms[is_newest]
            self.last_value[rows[is_newest]] = values[is_newest]
            gap = (ts_ms - before).astype(np.float64)
            keep = (before != _NEVER) & (gap > 0)
            self._update_intervals(rows[keep], gap[keep])
            return
        n_per_row = np.bincount(rows, minlength=self.n_series)
        seen_idx = np.flatnonzero(n_per_row)
        newest = np.full(self.n_series, _NEVER, np.int64)
        np.maximum.at(newest, rows, ts_ms)
        oldest = np.full(self.n_series, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(oldest, rows, ts_ms)
        n = n_per_row[seen_idx]
        before = self.last_ts[seen_idx]
        is_first = before == _NEVER
        # Across batches: since the previous newest; a row's first batch: its own span.
        span = newest[seen_idx] - np.where(is_first, oldest[seen_idx], before)
        gap = span / np.where(is_first, np.maximum(n - 1, 1), n)
        keep = (~is_first | (n >= 2)) & (gap > 0)
        self._update_intervals(seen_idx[keep], gap[keep])
        np.maximum.at(self.last_ts, rows, ts_ms)
        is_newest = ts_ms == self.last_ts[rows]
        self.last_value[rows[is_newest]] = values[is_newest]

    def _rows_unique(self, rows: IntArray) -> bool:
        if rows.shape[0] < 2 or bool((rows[1:] > rows[:-1]).all()):
            return True  # ascending: the cheap, common case
        order = np.arange(rows.shape[0], dtype=np.int64)
        self._mark[rows] = order
        return bool((self._mark[rows] == order).all())

    def _update_intervals(self, rows: IntArray, gap: FloatArray) -> None:
        old = self.interval_ms[rows]
        self.interval_ms[rows] = np.where(np.isnan(old), gap, 0.9 * old + 0.1 * gap)

    def coverage(self, rows: IntArray, sl: WindowSlice, window_ms: int) -> FloatArray:
        """Share of the window covered by data (n,): readings × the row's reporting
        interval / window, capped at 1; rows without a known interval count buckets."""
        interval = self.interval_ms[rows]
        by_time = np.minimum(1.0, sl.count.sum(axis=0) * interval / window_ms)
        by_buckets = (sl.count > 0).mean(axis=0)
        return np.where(np.isnan(interval), by_buckets, by_time)

    def _scatter_chunk(self, rows: IntArray, ts_ms: IntArray, values: FloatArray) -> None:
        newest = int(ts_ms.max()) + 1
        self._advance_rings(newest)
        self.fine.scatter(rows, ts_ms, values)
        # Readings for fine buckets already folded into the coarse ring go there directly.
        is_late = ts_ms // self.fine.res_ms <= self._sealed_through
        if is_late.any():
            self.coarse.scatter(rows[is_late], ts_ms[is_late], values[is_late])
        self._complete_through(self.coarse.head - 2)

    def set_status(self, rows: IntArray, *, online: bool, ts_ms: int) -> None:
        """A device's retained status (`offline` = its last will or a clean goodbye)."""
        self.is_offline[rows] = not online
        self.offline_ms[rows] = ts_ms

    def advance_to(self, now_ms: int) -> None:
        """Move event time forward: open new buckets, complete old coarse ones."""
        self._advance_rings(now_ms)
        self._complete_through(self.coarse.head - 2)

    def _advance_rings(self, now_ms: int) -> None:
        if now_ms <= self.now_ms:
            return
        self.now_ms = now_ms
        fine_head = (now_ms - 1) // self.fine.res_ms
        self.coarse.advance((now_ms - 1) // self.coarse.res_ms)
        # Fold fine buckets into the coarse ring once sealed (and before the fine ring
        # reuses their slots): one contiguous row per fine bucket, not one op per reading.
        self._seal_through(min(self.fine.head, fine_head - _SEAL_LAG))
        self.fine.advance(fine_head)

    def _seal_through(self, last: int) -> None:
        first = max(self._sealed_through + 1, self.fine.head - self.fine.n_buckets + 1)
        for bucket in range(first, last + 1):
            self.coarse.fold(self.fine, bucket)
        self._sealed_through = max(self._sealed_through, last)

    def _complete_through(self, last: int) -> None:
        # A coarse bucket is complete once the head is two buckets past it (late grace).
        first = max(self._completed_through + 1, self.coarse.head - self.coarse.n_buckets + 1)
        for bucket in range(first, last + 1):
            self._complete(bucket)
        self._completed_through = max(self._completed_through, last)

    def _complete(self, bucket: int) -> None:
        rows, means = self.coarse.column_mean(bucket)
        if rows.shape[0] == 0:
            return
        start_ms = bucket * self.coarse.res_ms
        self.baseline.update(rows, self.calendar.slot(start_ms), means, start_ms)
        for tracker in self.nights.values():
            tracker.add_bucket(start_ms, rows, means, self.tz)

    # -- queries ---------------------------------------------------------------------------
    def ring_for(self, window_ms: int) -> BucketRing:
        """The finest ring that holds `window_ms` (plus one bucket of slack)."""
        for ring in (self.fine, self.coarse):
            if window_ms <= ring.horizon_ms - ring.res_ms:
                return ring
        raise ValueError(f"window of {window_ms} ms exceeds the hot window's horizon")

    def window(self, rows: IntArray | slice, now_ms: int, window_ms: int) -> WindowSlice:
        """Buckets covering `[now - window, now)` (rounded out to whole buckets): (n, k)."""
        ring = self.ring_for(window_ms)
        k = max(1, -(-window_ms // ring.res_ms))
        return ring.window(rows, (now_ms - 1) // ring.res_ms, k)

    def latest(self, rows: IntArray, now_ms: int, stale_ms: int) -> FloatArray:
        """Latest value of `rows`, NaN where older than `stale_ms` or never seen: (n,)."""
        value = self.last_value[rows]
        is_fresh = (self.last_ts[rows] >= now_ms - stale_ms) & (self.last_ts[rows] != _NEVER)
        return np.where(is_fresh, value, np.nan)

    def measure(
        self, rows: IntArray, now_ms: int, *, agg: Agg, window_ms: int | None, stale_ms: int
    ) -> FloatArray:
        """One number per row: the latest value, or an aggregate over a window: (n,)."""
        if agg == "last" or window_ms is None:
            return self.latest(rows, now_ms, stale_ms)
        sl = self.window(rows, now_ms, window_ms)
        if agg == "mean":
            return sl.total_mean()
        if agg == "min":
            return sl.total_min()
        if agg == "max":
            return sl.total_max()
        raise ValueError(f"unknown aggregate {agg!r}")
