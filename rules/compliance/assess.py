"""Judge stations' averages against a pack's checks: exceedances with their periods,
counts against the yearly allowance, threshold episodes, a status per check.

    results = assess(pack, quantity, grid, first_hour, end_hour, complete=True)
    results[station][check_index].status      # "exceeded", "met", …

An exceedance is a *valid* period value strictly **greater than** the standard (2008/50/EC
Art. 2 and Annex XI; domain reference §1.4). A limit with N permitted exceedances is
breached when the calendar year holds more than N: equivalently, its (N+1)-th highest
value is above the limit (`rank_value`). A threshold "over three consecutive hours" needs
three consecutive *valid* hourly values above it (Annex XII A): a gap breaks the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ecocluster.core.types import BoolArray, FloatArray, IntArray
from ecocluster.rules.compliance.averaging import (
    HourGrid,
    Periods,
    daily_means,
    max_daily_8h,
    year_mean,
)
from ecocluster.rules.compliance.packs import Check, Pack
from ecocluster.rules.compliance.timebase import DAY_H, date_of_day, iso_of_hour

__all__ = [
    "CheckResult",
    "Episode",
    "Exceedance",
    "Status",
    "assess",
    "period_values",
    "runs",
]

Status = Literal[
    "exceeded", "met", "in_progress", "insufficient_data", "triggered", "not_triggered"
]


@dataclass(frozen=True, slots=True)
class Exceedance:
    """One period above the standard: `period` is `2026-01-14` (a day) or
    `2026-01-14T13:00` (the hour starting then, standard time)."""

    period: str
    value: float


@dataclass(frozen=True, slots=True)
class Episode:
    """A threshold exceeded over `length` consecutive periods from `start`; `peak` is the
    highest value of the run."""

    start: str
    length: int
    peak: float


@dataclass(slots=True)
class CheckResult:
    check: Check
    status: Status
    #: Valid periods / periods elapsed in the year (hours, days or the year's hours).
    data_capture: float
    capture_ok: bool
    #: Annual mean for `year` checks; the (N+1)-th highest value for counted short-term ones.
    value: float | None = None
    count: int | None = None
    exceedances: list[Exceedance] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)

    @property
    def allowed(self) -> int | None:
        return self.check.allowed


def period_values(grid: HourGrid, check: Check, pack: Pack) -> Periods:
    """The values of the check's averaging period over the grid: hours, days or max-8h days."""
    if check.averaging == "hour":
        return Periods(grid.h0, grid.mean, grid.valid.astype(np.int64))
    if check.averaging == "day":
        return daily_means(grid, pack.period_capture)
    if check.averaging == "max8h":
        return max_daily_8h(grid, pack.period_capture)
    raise ValueError(f"{check.averaging!r} has no per-period values")


def runs(mask: BoolArray) -> tuple[IntArray, IntArray, IntArray]:
    """Runs of True along axis 1 of (n, p): (station, first column, length) per run."""
    n, p = mask.shape
    padded = np.zeros((n, p + 2), np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    st_s, start = np.nonzero(edges == 1)
    _st_e, stop = np.nonzero(edges == -1)
    return st_s, start, stop - start


def _label(first: int, index: int, averaging: str) -> str:
    if averaging == "hour":
        return iso_of_hour(first + index)
    return date_of_day(first + index).isoformat()


def _window(periods: Periods, averaging: str, first_hour: int, end_hour: int) -> slice:
    unit = 1 if averaging == "hour" else DAY_H
    lo = first_hour // unit - periods.first
    hi = -(-end_hour // unit) - periods.first
    return slice(max(lo, 0), max(min(hi, periods.value.shape[1]), 0))


def assess(
    pack: Pack,
    quantity: str,
    grid: HourGrid,
    first_hour: int,
    end_hour: int,
    *,
    complete: bool,
) -> list[list[CheckResult]]:
    """Every check of `pack` for `quantity` at every station of `grid`, over the hours
    `[first_hour, end_hour)` (a calendar year, or its elapsed part when not `complete`).
    The grid should start 7 hours before `first_hour` (the first day's 8-hour windows)."""
    n = grid.mean.shape[0]
    out: list[list[CheckResult]] = [[] for _ in range(n)]
    for check in pack.checks_for(quantity):
        if check.averaging == "year":
            results = _assess_year(check, pack, grid, first_hour, end_hour, complete)
        else:
            results = _assess_periods(check, pack, grid, first_hour, end_hour, complete)
        for station, result in enumerate(results):
            out[station].append(result)
    return out


def _assess_year(
    check: Check, pack: Pack, grid: HourGrid, first_hour: int, end_hour: int, complete: bool
) -> list[CheckResult]:
    mean, capture = year_mean(grid, first_hour, end_hour)
    out = []
    for station in range(mean.shape[0]):
        value = float(mean[station])
        ok = bool(capture[station] >= pack.year_capture - 1e-9)
        status: Status
        if not complete:
            status = "in_progress"
        elif not ok or np.isnan(value):
            status = "insufficient_data"
        else:
            status = "exceeded" if value > check.value else "met"
        out.append(
            CheckResult(
                check,
                status,
                float(capture[station]),
                ok,
                value=None if np.isnan(value) else value,
            )
        )
    return out


def _assess_periods(
    check: Check, pack: Pack, grid: HourGrid, first_hour: int, end_hour: int, complete: bool
) -> list[CheckResult]:
    periods = period_values(grid, check, pack)
    cut = _window(periods, check.averaging, first_hour, end_hour)
    values: FloatArray = periods.value[:, cut]
    first = periods.first + (cut.start or 0)
    is_valid = ~np.isnan(values)
    with np.errstate(invalid="ignore"):
        is_over = is_valid & (values > check.value)
    n_periods = max(values.shape[1], 1)
    capture = is_valid.sum(axis=1) / n_periods
    need = pack.year_capture
    if check.is_threshold:
        return _threshold_results(check, values, is_over, first, capture, need)
    out = []
    for station in range(values.shape[0]):
        idx = np.flatnonzero(is_over[station])
        exceedances = [
            Exceedance(_label(first, int(i), check.averaging), float(values[station, i]))
            for i in idx.tolist()
        ]
        count = len(exceedances)
        ok = bool(capture[station] >= need - 1e-9)
        allowed = check.allowed or 0
        status: Status
        if count > allowed:
            status = "exceeded"
        elif not complete:
            status = "in_progress"
        else:
            status = "met" if ok else "insufficient_data"
        ranked = np.sort(values[station][is_valid[station]])[::-1]
        rank_value = float(ranked[allowed]) if ranked.shape[0] > allowed else None
        out.append(
            CheckResult(
                check,
                status,
                float(capture[station]),
                ok,
                value=rank_value,
                count=count,
                exceedances=exceedances,
            )
        )
    return out


def _threshold_results(
    check: Check,
    values: FloatArray,
    is_over: BoolArray,
    first: int,
    capture: FloatArray,
    need: float,
) -> list[CheckResult]:
    stations, starts, lengths = runs(is_over)
    out = [
        CheckResult(check, "not_triggered", float(c), bool(c >= need - 1e-9), count=0)
        for c in capture.tolist()
    ]
    for station, start, length in zip(
        stations.tolist(), starts.tolist(), lengths.tolist(), strict=True
    ):
        if length < check.hours:
            continue
        result = out[station]
        run = values[station, start : start + length]
        result.episodes.append(
            Episode(_label(first, start, check.averaging), length, float(run.max()))
        )
        result.exceedances.extend(
            Exceedance(_label(first, start + k, check.averaging), float(v))
            for k, v in enumerate(run.tolist())
        )
    for result in out:
        result.count = len(result.episodes)
        if result.episodes:
            result.status = "triggered"
    return out
