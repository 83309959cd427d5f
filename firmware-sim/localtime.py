"""Local civil time of each timestamp, vectorised, for the territory's time zone.

Occupancy follows the wall clock (offices open at 08:00 local, also after the switch to
summer time), so every profile works on local hour, weekday and date. The UTC offset is
looked up once per distinct UTC hour, not per reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

from ecocluster.core.holidays import ITALIAN_FIXED_HOLIDAYS, easter_sunday
from ecocluster.core.types import BoolArray, FloatArray, IntArray

__all__ = ["LocalTime", "local_time"]

_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class LocalTime:
    """Calendar features of `ts_ms` in local time; every array has the shape of `ts_ms`."""

    ts_ms: IntArray
    hour: FloatArray  # local hour of day, 0 <= hour < 24 (fractional)
    weekday: IntArray  # 0 = Monday
    day: IntArray  # local days since 1970-01-01
    month: IntArray  # 1..12
    mday: IntArray  # day of month, 1..31
    doy: IntArray  # day of year, 1..366
    year: IntArray
    zone: str

    def shifted(self, delta_ms: int) -> LocalTime:
        """The same instants moved by `delta_ms` (e.g. to look at the last hour)."""
        return local_time(self.ts_ms + delta_ms, self.zone)

    @property
    def is_weekend(self) -> BoolArray:
        return self.weekday >= 5

    def month_day(self) -> IntArray:
        """`month * 100 + mday` (e.g. 1208 for 8 December), for seasons written as dates."""
        return self.month * 100 + self.mday

    def is_holiday(self) -> BoolArray:
        """Italian national holidays (fixed dates plus Easter Monday)."""
        md = self.month_day()
        fixed = np.isin(md, _FIXED_MD)
        return fixed | np.isin(self.day, _easter_mondays(self.year))

    def between_dates(self, first_md: int, last_md: int) -> BoolArray:
        """Inside a yearly period given as month*100+day bounds, inclusive; may wrap New Year."""
        md = self.month_day()
        if first_md <= last_md:
            return (md >= first_md) & (md <= last_md)
        return (md >= first_md) | (md <= last_md)


#: The fixed holidays as month × 100 + day, the form `is_holiday` compares.
_FIXED_MD = tuple(m * 100 + d for m, d in ITALIAN_FIXED_HOLIDAYS)


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=65536)
def _offset_ms(zone: str, utc_hour: int) -> int:
    moment = datetime.fromtimestamp(utc_hour * 3600, tz=UTC).astimezone(_zone(zone))
    offset = moment.utcoffset() or timedelta(0)
    return int(offset.total_seconds() * 1000)


def local_time(ts_ms: IntArray, zone: str) -> LocalTime:
    ts = np.asarray(ts_ms, dtype=np.int64)
    hours = ts // _HOUR_MS
    uniq, inverse = np.unique(hours, return_inverse=True)
    offsets = np.fromiter((_offset_ms(zone, int(h)) for h in uniq), np.int64, len(uniq))
    local_ms = ts + offsets[inverse.reshape(ts.shape)]
    day = local_ms // _DAY_MS
    dates = day.astype("datetime64[D]")
    years = dates.astype("datetime64[Y]")
    months = dates.astype("datetime64[M]")
    return LocalTime(
        ts_ms=ts,
        hour=(local_ms - day * _DAY_MS) / _HOUR_MS,
        weekday=(day + 3) % 7,
        day=day,
        month=(months.astype(np.int64) % 12) + 1,
        mday=(dates - months).astype(np.int64) + 1,
        doy=(dates - years).astype(np.int64) + 1,
        year=years.astype(np.int64) + 1970,
        zone=zone,
    )


def _easter_mondays(years: IntArray) -> IntArray:
    return np.array(
        [(easter_sunday(int(y)) - date(1970, 1, 1)).days + 1 for y in np.unique(years)], np.int64
    )


def easter_days(years: IntArray) -> IntArray:
    """Easter Sunday of each distinct year, as local days since 1970-01-01."""
    return np.array(
        [(easter_sunday(int(y)) - date(1970, 1, 1)).days for y in np.unique(years)], np.int64
    )
