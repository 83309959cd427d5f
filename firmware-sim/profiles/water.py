"""Water flow (L/min, mean over each step) by site category.

Buildings: usage events while the site is occupied, over a night flow of exactly zero
when it is closed (a closed town hall uses no water, so any night flow is a leak, the
premise of the minimum-night-flow method, domain reference §3.1). Hotels, refuges and
dairies keep a little night use. Pumping stations deliver a village's demand: a night
minimum near 45 % of the mean, morning and evening peaks, a few per cent of noise.
"""

from __future__ import annotations

import numpy as np

from ecocluster.core.types import FloatArray

from ..localtime import LocalTime
from ..noise import normal, uniform, value_noise
from .schedules import occupancy, water_demand

__all__ = ["flow_lpm"]

#: Daily volume, litres per kW of contracted power (the site's size proxy).
_LITRES_PER_KW_DAY = {
    "office": 40.0,
    "town_hall": 40.0,
    "visitor_centre": 60.0,
    "depot": 30.0,
    "school": 80.0,
    "hotel": 200.0,
    "dairy": 400.0,
    "refuge": 150.0,
    "ski_lift": 10.0,
    "air_station": 5.0,
}
_NIGHT_USE = {"hotel": 0.06, "refuge": 0.03, "dairy": 0.03}
#: Share of readings with some use while occupied (the rest are between uses).
_P_USE = 0.6


def flow_lpm(
    category: str,
    lt: LocalTime,
    steps: np.ndarray,
    key: int,
    capacity_w: float,
    role: int,
) -> FloatArray:
    size = capacity_w / 1000.0 * (1.0 if role == 0 else 0.5)
    if category == "pumping_station":
        mean_lpm = 6.0 * size
        slow = 0.04 * value_noise(key ^ 0xA1, lt.ts_ms / 1000.0, 1800.0)
        return mean_lpm * water_demand(lt) * (1.0 + slow + 0.02 * normal(key ^ 0xA2, steps))
    mean_lpm = _LITRES_PER_KW_DAY.get(category, 30.0) * size / 1440.0
    use = np.maximum(occupancy(category, lt), _NIGHT_USE.get(category, 0.0))
    # about a third of the day is occupied: scale so the daily volume comes out right
    level = mean_lpm * 3.0 / _P_USE
    happens = uniform(key ^ 0xA3, steps) < _P_USE * np.minimum(use * 3.0, 1.0)
    size_of_use = np.exp(0.5 * normal(key ^ 0xA4, steps) - 0.125)
    return np.where(happens & (use > 0.0), level * np.maximum(use, 0.2) * size_of_use, 0.0)
