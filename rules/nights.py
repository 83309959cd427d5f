"""Per-series minimum of the bucket means inside a local night window, for the last nights.

A night runs from `start` to `end` local time (it may cross midnight: 22:00–06:00) and is
numbered by the date on which it ends. The minimum is taken over completed coarse-bucket
means (15-min means by default: a rolling-mean flavour of the minimum night flow), so a
single noisy reading does not set it.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from ecocluster.core.types import FloatArray, IntArray

__all__ = ["NightTracker", "night_of"]


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def night_of(ts_ms: int, start: time, end: time, tz: ZoneInfo) -> int | None:
    """The number (proleptic ordinal of its end date) of the night holding `ts_ms`, or None."""
    local = datetime.fromtimestamp(ts_ms / 1000, tz)
    m, s, e = local.hour * 60 + local.minute, _minutes(start), _minutes(end)
    if s < e:
        return local.date().toordinal() if s <= m < e else None
    if m >= s:
        return local.date().toordinal() + 1
    return local.date().toordinal() if m < e else None


def last_complete_night(now_ms: int, end: time, tz: ZoneInfo, lag_ms: int) -> int:
    """The newest night whose end (plus `lag_ms` for the last buckets to complete) is past."""
    local = datetime.fromtimestamp((now_ms - lag_ms) / 1000, tz)
    today = local.date()
    ended_today = datetime.combine(today, end, tz) <= local
    return (today if ended_today else today - timedelta(days=1)).toordinal()


class NightTracker:
    """(n_series, n_nights) minima and bucket counts, one column per recent night."""

    def __init__(self, n_series: int, *, start: time, end: time, n_nights: int) -> None:
        self.start, self.end, self.n_nights = start, end, n_nights
        self.slot_night = np.full(n_nights, -1, np.int64)
        self.minimum = np.full((n_series, n_nights), np.inf, np.float32)
        self.count = np.zeros((n_series, n_nights), np.uint16)

    @property
    def nbytes(self) -> int:
        return self.minimum.nbytes + self.count.nbytes + self.slot_night.nbytes

    def grow(self, n_new: int) -> None:
        k = self.n_nights
        self.minimum = np.concatenate([self.minimum, np.full((n_new, k), np.inf, np.float32)])
        self.count = np.concatenate([self.count, np.zeros((n_new, k), np.uint16)])

    def add_bucket(
        self, bucket_start_ms: int, rows: IntArray, means: FloatArray, tz: ZoneInfo
    ) -> None:
        """A completed bucket's means (n,) for `rows` (n,); ignored outside the night."""
        night = night_of(bucket_start_ms, self.start, self.end, tz)
        if night is None:
            return
        slot = night % self.n_nights
        if self.slot_night[slot] != night:
            if self.slot_night[slot] > night:
                return  # older than every night we keep
            self.slot_night[slot] = night
            self.minimum[:, slot] = np.inf
            self.count[:, slot] = 0
        self.minimum[rows, slot] = np.minimum(self.minimum[rows, slot], means)
        self.count[rows, slot] += 1

    def nights(self, rows: IntArray, last_night: int, k: int) -> tuple[FloatArray, IntArray]:
        """Minima and bucket counts of nights `last_night-k+1 … last_night`: (n, k) each.

        Nights not held (too old, never seen) come back as NaN with count 0.
        """
        wanted = np.arange(last_night - k + 1, last_night + 1)
        slots = wanted % self.n_nights
        is_held = self.slot_night[slots] == wanted
        ix = np.ix_(rows, slots)
        minimum = self.minimum[ix].astype(np.float64)
        count = self.count[ix].astype(np.int64)
        minimum[:, ~is_held] = np.nan
        count[:, ~is_held] = 0
        minimum[np.isinf(minimum)] = np.nan
        return minimum, count
