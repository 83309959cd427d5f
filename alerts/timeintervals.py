"""Alertmanager's time intervals (`mute_time_intervals`, `active_time_intervals`), evaluated
in the interval's `location` or else the territory's time zone (pure functions)."""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from ecocluster.core.alerting import MONTHS, WEEKDAYS, TimeIntervalSpec

__all__ = ["in_any", "in_interval"]


def _bounds(item: str, names: tuple[str, ...] | None, offset: int) -> tuple[int, int]:
    def one(text: str) -> int:
        text = text.strip().lower()
        if names is not None and text in names:
            return names.index(text) + offset
        return int(text)

    parts = item.split(":")
    return one(parts[0]), one(parts[-1])


def _in_ranges(
    value: int, items: Iterable[str], names: tuple[str, ...] | None, offset: int
) -> bool:
    return any(lo <= value <= hi for lo, hi in (_bounds(i, names, offset) for i in items))


def _day_matches(local: datetime, items: Sequence[str]) -> bool:
    days_in_month = calendar.monthrange(local.year, local.month)[1]
    for item in items:
        lo, hi = _bounds(item, None, 0)
        lo = lo if lo > 0 else days_in_month + lo + 1  # -1 is the last day of the month
        hi = hi if hi > 0 else days_in_month + hi + 1
        if lo <= local.day <= hi:
            return True
    return False


def in_interval(spec: TimeIntervalSpec, at_ms: int, default_tz: str) -> bool:
    local = datetime.fromtimestamp(at_ms / 1000, ZoneInfo(spec.location or default_tz))
    if spec.times:
        minute = local.hour * 60 + local.minute
        if not any(lo <= minute < hi for lo, hi in (t.minutes for t in spec.times)):
            return False
    if spec.weekdays and not _in_ranges(local.weekday(), spec.weekdays, WEEKDAYS, 0):
        return False
    if spec.days_of_month and not _day_matches(local, spec.days_of_month):
        return False
    if spec.months and not _in_ranges(local.month, spec.months, MONTHS, 1):
        return False
    return not (spec.years and not _in_ranges(local.year, spec.years, None, 0))


def in_any(specs: Iterable[TimeIntervalSpec], at_ms: int, default_tz: str) -> bool:
    return any(in_interval(s, at_ms, default_tz) for s in specs)
