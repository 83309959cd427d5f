"""Local *standard* time, the time base of the air-quality directives.

The law's day runs 00:00-24:00 local standard time all year (for Italy CET, UTC+1, also in
summer: 2008/50/EC Annex VII and XI, domain reference §1.4), so averages are computed on a
fixed offset, never on the DST-shifting wall clock. Hours are numbered from the epoch in
that time base: hour `h` covers `[h * 1h - offset, (h + 1) * 1h - offset)` in UTC, and day
`d = h // 24` holds hours `24 d … 24 d + 23`; a year is a range of days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

__all__ = [
    "DAY_H",
    "HOUR_MS",
    "date_of_day",
    "day_of_date",
    "hour_of_ms",
    "ms_of_hour",
    "standard_offset_ms",
    "year_hours",
    "year_of_hour",
]

HOUR_MS: Final = 3_600_000
DAY_H: Final = 24
_EPOCH: Final = date(1970, 1, 1)


def standard_offset_ms(tz: ZoneInfo, year: int = 2001) -> int:
    """The zone's standard (non-DST) UTC offset in ms: Europe/Rome → +3 600 000 (CET)."""
    moment = datetime(year, 1, 15, 12, tzinfo=tz)
    utc = moment.utcoffset() or timedelta(0)
    dst = moment.dst() or timedelta(0)
    return int((utc - dst).total_seconds() * 1000)


def hour_of_ms(ts_ms: int, offset_ms: int) -> int:
    """The standard-time hour number holding the instant `ts_ms`."""
    return (ts_ms + offset_ms) // HOUR_MS


def ms_of_hour(hour: int, offset_ms: int) -> int:
    """Epoch ms (UTC) at which standard-time hour `hour` starts."""
    return hour * HOUR_MS - offset_ms


def day_of_date(day: date) -> int:
    return (day - _EPOCH).days


def date_of_day(day: int) -> date:
    return _EPOCH + timedelta(days=day)


def year_hours(year: int) -> tuple[int, int]:
    """Standard-time hour numbers `[first, end)` of a calendar year."""
    return day_of_date(date(year, 1, 1)) * DAY_H, day_of_date(date(year + 1, 1, 1)) * DAY_H


def year_of_hour(hour: int) -> int:
    return date_of_day(hour // DAY_H).year


def iso_of_hour(hour: int) -> str:
    """`2026-01-14T13:00` (standard time) for hour number `hour`."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=hour)
    return moment.strftime("%Y-%m-%dT%H:%M")
