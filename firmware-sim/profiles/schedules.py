"""Occupancy (0..1) by site category on the local clock: opening hours, weekdays, Italian
holidays, school terms, the Cerreto Laghi ski season and the summer tourist season.

Why shapes and not data: the real data sets in `shared/data` (an office-like US demand
curve, a city's air) confirm the shapes used here (morning ramp, lunch dip, evening
decay; weekday/weekend ratio about 1.5), but none is from this territory.
"""

from __future__ import annotations

import numpy as np

from ecocluster.core.types import BoolArray, FloatArray

from ..localtime import LocalTime, easter_days

__all__ = ["SKI_SEASON", "occupancy", "ski_season", "summer_season", "water_demand"]

#: Cerreto Laghi lifts run from the Immacolata (8 Dec) to the end of March.
SKI_SEASON = (1208, 331)
SUMMER_SEASON = (701, 831)


def window(hour: FloatArray, start: float, end: float, ramp: float = 0.5) -> FloatArray:
    """1 between `start` and `end` (local hours), linear ramps of `ramp` hours, else 0."""
    up = np.clip((hour - start) / ramp + 0.5, 0.0, 1.0)
    down = np.clip((end - hour) / ramp + 0.5, 0.0, 1.0)
    return up * down


def bump(hour: FloatArray, centre: float, width: float) -> FloatArray:
    return np.exp(-0.5 * ((hour - centre) / width) ** 2)


def workday(lt: LocalTime) -> BoolArray:
    return ~lt.is_weekend & ~lt.is_holiday()


def ski_season(lt: LocalTime) -> BoolArray:
    return lt.between_dates(*SKI_SEASON)


def summer_season(lt: LocalTime) -> BoolArray:
    return lt.between_dates(*SUMMER_SEASON)


def school_term(lt: LocalTime) -> BoolArray:
    """Emilia-Romagna calendar, roughly: mid-September to early June, minus Christmas
    (23 Dec - 6 Jan) and Easter (Thursday before to Tuesday after)."""
    summer_break = lt.between_dates(607, 914)
    christmas = lt.between_dates(1223, 106)
    easter = np.zeros(lt.day.shape, dtype=bool)
    for sunday in easter_days(lt.year):
        easter |= (lt.day >= sunday - 3) & (lt.day <= sunday + 2)
    return ~summer_break & ~christmas & ~easter & workday(lt)


def occupancy(category: str, lt: LocalTime) -> FloatArray:
    """How busy a site of `category` is (0 closed .. 1 full) at each local time."""
    h = lt.hour
    if category == "office":
        return workday(lt) * window(h, 8.0, 18.0, 1.0) * (1.0 - 0.25 * bump(h, 13.2, 0.6))
    if category == "town_hall":
        afternoon = np.isin(lt.weekday, (1, 3)) * 0.7 * window(h, 15.0, 18.0)
        return workday(lt) * np.maximum(window(h, 8.0, 14.0, 0.8), afternoon).astype(float)
    if category == "depot":
        return workday(lt) * window(h, 7.0, 16.0, 0.5)
    if category == "school":
        afternoon = np.isin(lt.weekday, (1, 3)) * 0.5 * window(h, 14.5, 16.5)
        return school_term(lt) * np.maximum(window(h, 8.0, 13.75, 0.4), afternoon).astype(float)
    if category == "visitor_centre":
        open_day = summer_season(lt) | lt.is_weekend | lt.is_holiday()
        return open_day * window(h, 9.5, 17.5, 0.5) * np.where(summer_season(lt), 1.0, 0.6)
    if category == "hotel":
        guests = np.select(
            [ski_season(lt), summer_season(lt)], [0.85 + 0.15 * lt.is_weekend, 0.8], 0.3
        )
        shape = np.maximum.reduce(
            [0.8 * bump(h, 8.0, 1.2), bump(h, 20.0, 1.8), 0.35 * window(h, 9.0, 22.0), 0.1 + 0 * h]
        )
        return guests * shape
    if category == "ski_lift":
        winter = ski_season(lt) * np.where(lt.is_weekend | lt.is_holiday(), 1.0, 0.7)
        summer = summer_season(lt) * lt.is_weekend * 0.4
        return winter * window(h, 8.5, 16.75, 0.3) + summer * window(h, 9.5, 17.0, 0.3)
    if category == "dairy":
        # Parmigiano Reggiano: evening and morning milk in the cauldrons at dawn, every day.
        return np.maximum.reduce(
            [window(h, 5.5, 11.0, 0.5), 0.4 * window(h, 13.0, 15.0), 0.3 * window(h, 19.0, 20.5)]
        )
    if category == "refuge":
        open_day = np.where(lt.between_dates(614, 920), 1.0, 0.5 * lt.is_weekend)
        meals = np.maximum.reduce(
            [0.6 * bump(h, 8.0, 1.0), bump(h, 13.0, 1.2), bump(h, 20.0, 1.5), 0.15 + 0 * h]
        )
        return open_day * meals
    if category == "pumping_station":
        return water_demand(lt)
    return np.zeros(h.shape)


def water_demand(lt: LocalTime) -> FloatArray:
    """A village network's demand relative to its daily mean: night minimum about 0.45,
    morning and evening peaks, more people in the tourist seasons."""
    h = lt.hour
    shape = 0.45 + 0.75 * bump(h, 7.5, 1.5) + 0.45 * bump(h, 12.5, 1.5) + 0.7 * bump(h, 20.0, 2.0)
    season = np.where(ski_season(lt) | summer_season(lt), 1.25, 1.0)
    return shape / 1.05 * season
