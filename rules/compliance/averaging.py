"""The directive's averages over many stations at once: hourly values from raw readings,
24-hour means, 8-hour running means and their daily maximum, calendar-year means.

Every function takes and returns (n_stations, n_periods) arrays; a value is NaN where the
period is not valid under the data-capture rule (2008/50/EC Annex XI A, D.Lgs. 155/2010
Allegato XI; domain reference §1.4):

- a 1-hour value needs ≥ 75 % of the hour covered (45 min);
- a 24-hour value needs ≥ 75 % of its hourly values (18);
- an 8-hour value needs ≥ 75 % of its hourly values (6 of 8); it belongs to the day on which
  it *ends*: the day's first window is 17:00 (day before) - 01:00, the last 16:00 - 24:00;
- a maximum daily 8-hour mean needs ≥ 75 % of the day's 24 windows (18);
- an annual mean needs the pack's share of the year's hours (90 %, 85 % from 2030).

Hours are standard-time hour numbers (`timebase.py`); column 0 of a grid is hour `h0`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ecocluster.core.types import BoolArray, FloatArray, IntArray
from ecocluster.rules.compliance.timebase import DAY_H, HOUR_MS

__all__ = [
    "HourGrid",
    "Periods",
    "daily_means",
    "hour_grid",
    "max_daily_8h",
    "reporting_interval_ms",
    "running_8h",
    "year_mean",
]

#: Compare shares with a little slack: 45 readings × 60 s / 3600 s is exactly 0.75 but
#: 27 × 100 s / 3600 s may land a hair below in floating point.
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class HourGrid:
    """Hourly values: `mean` (n, n_h) NaN where invalid, `capture` the share of each hour
    covered by readings (0..1), for hours `h0 … h0 + n_h − 1`."""

    h0: int
    mean: FloatArray
    capture: FloatArray

    @property
    def valid(self) -> BoolArray:
        return ~np.isnan(self.mean)

    @property
    def n_hours(self) -> int:
        return int(self.mean.shape[1])


@dataclass(frozen=True, slots=True)
class Periods:
    """Period values (n, n_p), NaN where invalid, with the number of valid parts each had
    (hours of a day, windows of a day) and the first period's number (day or hour)."""

    first: int
    value: FloatArray
    n_parts: IntArray

    @property
    def valid(self) -> BoolArray:
        return ~np.isnan(self.value)


def reporting_interval_ms(series_idx: IntArray, ts_ms: IntArray, n_series: int) -> FloatArray:
    """Each series' reporting interval: the median gap between its successive readings
    (NaN with fewer than two). Input sorted by series, then time (the store's order)."""
    out = np.full(n_series, np.nan)
    if ts_ms.shape[0] < 2:
        return out
    same = series_idx[1:] == series_idx[:-1]
    gaps = np.diff(ts_ms).astype(np.float64)
    keep = same & (gaps > 0)
    owners, gaps = series_idx[1:][keep], gaps[keep]
    if owners.shape[0] == 0:
        return out
    cuts = np.flatnonzero(np.diff(owners)) + 1
    for part_owner, part in zip(owners[np.r_[0, cuts]].tolist(), np.split(gaps, cuts), strict=True):
        out[part_owner] = float(np.median(part))
    return out


def hour_grid(
    series_idx: IntArray,
    ts_ms: IntArray,
    values: FloatArray,
    *,
    n_series: int,
    h0: int,
    n_hours: int,
    offset_ms: int,
    interval_ms: FloatArray,
    min_capture: float = 0.75,
) -> HourGrid:
    """Hourly means of raw readings for `n_series` stations over hours `[h0, h0 + n_hours)`.

    An hour's capture is (readings × the series' reporting interval) / 1 h, capped at 1: one
    reading per hour from an hourly station covers it; 45 one-minute readings cover 75 %.
    A series without a known interval counts an hour with any reading as covered.
    """
    col = (ts_ms + offset_ms) // HOUR_MS - h0
    keep = (col >= 0) & (col < n_hours) & np.isfinite(values)
    flat = series_idx[keep] * n_hours + col[keep]
    size = n_series * n_hours
    count = np.bincount(flat, minlength=size).reshape(n_series, n_hours)
    total = np.bincount(flat, weights=values[keep], minlength=size).reshape(n_series, n_hours)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        by_time = np.minimum(1.0, count * interval_ms[:, None] / HOUR_MS)
    capture = np.where(np.isnan(interval_ms)[:, None], (count > 0).astype(np.float64), by_time)
    is_valid = (count > 0) & (capture >= min_capture - _EPS)
    return HourGrid(h0, np.where(is_valid, mean, np.nan), capture)


def _whole_days(grid: HourGrid) -> tuple[int, FloatArray]:
    """The grid padded with NaN hours to whole standard-time days: (first day, (n, d, 24))."""
    lead = grid.h0 % DAY_H
    n = grid.mean.shape[0]
    tail = (-(lead + grid.n_hours)) % DAY_H
    padded = np.concatenate(
        [np.full((n, lead), np.nan), grid.mean, np.full((n, tail), np.nan)], axis=1
    )
    return (grid.h0 - lead) // DAY_H, padded.reshape(n, -1, DAY_H)


def daily_means(grid: HourGrid, min_share: float = 0.75) -> Periods:
    """24-hour means per standard-time day; valid with ≥ `min_share` × 24 valid hours."""
    first, days = _whole_days(grid)
    n_valid = (~np.isnan(days)).sum(axis=2)
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(np.where(n_valid[..., None] > 0, days, 0.0), axis=2)
    ok = n_valid >= min_share * DAY_H - _EPS
    return Periods(first, np.where(ok, mean, np.nan), n_valid)


def running_8h(grid: HourGrid, min_share: float = 0.75) -> Periods:
    """8-hour running means, one per hour: column j is the window of hours j−7 … j (it ends
    when hour j ends). Hours before the grid count as missing. Valid with ≥ 6 of 8 hours."""
    is_valid = grid.valid
    x = np.where(is_valid, grid.mean, 0.0)
    n = x.shape[0]
    csum = np.concatenate([np.zeros((n, 1)), np.cumsum(x, axis=1)], axis=1)
    ccount = np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(is_valid, axis=1)], axis=1)
    hi = np.arange(1, grid.n_hours + 1)
    lo = np.maximum(hi - 8, 0)
    total = csum[:, hi] - csum[:, lo]
    count = ccount[:, hi] - ccount[:, lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    ok = count >= min_share * 8 - _EPS
    return Periods(grid.h0, np.where(ok, mean, np.nan), count)


def max_daily_8h(grid: HourGrid, min_share: float = 0.75) -> Periods:
    """The maximum daily 8-hour mean: the highest of the day's 24 windows (those ending at
    01:00 … 24:00), valid with ≥ 18 valid windows. Give the grid 7 hours before the first
    day so the day's early windows can be complete."""
    windows = running_8h(grid, min_share)
    first, days = _whole_days(HourGrid(grid.h0, windows.value, grid.capture))
    n_valid = (~np.isnan(days)).sum(axis=2)
    with np.errstate(invalid="ignore"):
        high = np.max(np.where(np.isnan(days), -np.inf, days), axis=2)
    ok = n_valid >= min_share * DAY_H - _EPS
    return Periods(first, np.where(ok, high, np.nan), n_valid)


def year_mean(grid: HourGrid, first_hour: int, end_hour: int) -> tuple[FloatArray, FloatArray]:
    """Mean of the valid hourly values in `[first_hour, end_hour)` and the data capture
    (valid hours / hours of the period), per station. The mean is returned whatever the
    capture (NaN only without any valid hour): the caller judges it against the pack."""
    lo = max(first_hour - grid.h0, 0)
    hi = max(min(end_hour - grid.h0, grid.n_hours), lo)
    part = grid.mean[:, lo:hi]
    n_valid = (~np.isnan(part)).sum(axis=1)
    n_hours = max(end_hour - first_hour, 1)
    capture = n_valid / n_hours
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_valid > 0, np.nansum(part, axis=1) / np.maximum(n_valid, 1), np.nan)
    return mean, capture
