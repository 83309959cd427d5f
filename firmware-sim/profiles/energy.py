"""Electrical power (W) by site category: base load plus occupancy plus heating/cooling.

Levels are fractions of the site's contracted power, chosen so that normal operation
stays under the example cluster's overload rules (hotels < 60 kW, lifts < 450 kW):
an office of 30 kW contract draws about 2.5 kW at night and 15 kW on a winter morning,
some 150-250 kWh on a working day. Secondary meters of a site (heat pump, kitchen, …)
get a third of the main meter's size with the same shape.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ecocluster.core.types import FloatArray

from ..localtime import LocalTime
from ..noise import normal, value_noise
from .schedules import occupancy

__all__ = ["power_w"]


class _Shape(NamedTuple):
    base: float  # always-on fraction of capacity
    occupied: float  # extra fraction at full occupancy
    heating: float  # extra fraction in the coldest weather (heat pumps, boilers' auxiliaries)
    cooling: float  # extra fraction in the hottest weather
    noise: float  # relative noise per reading


_SHAPES = {
    "office": _Shape(0.08, 0.40, 0.12, 0.05, 0.05),
    "town_hall": _Shape(0.08, 0.40, 0.12, 0.05, 0.05),
    "visitor_centre": _Shape(0.06, 0.35, 0.12, 0.02, 0.06),
    "depot": _Shape(0.05, 0.30, 0.10, 0.0, 0.08),
    "school": _Shape(0.04, 0.45, 0.15, 0.0, 0.05),
    "hotel": _Shape(0.15, 0.35, 0.10, 0.05, 0.05),
    "ski_lift": _Shape(0.005, 0.55, 0.0, 0.0, 0.08),
    "dairy": _Shape(0.15, 0.45, 0.0, 0.08, 0.05),
    "refuge": _Shape(0.05, 0.25, 0.05, 0.0, 0.10),
    "pumping_station": _Shape(0.05, 0.45, 0.0, 0.0, 0.03),
    "air_station": _Shape(0.20, 0.0, 0.10, 0.15, 0.03),
}


def power_w(
    category: str,
    lt: LocalTime,
    steps: np.ndarray,
    key: int,
    capacity_w: float,
    role: int,
    temp_c: FloatArray,
) -> FloatArray:
    """Mean power over each step (W) of a meter of `category` (role 0 = main meter)."""
    shape = _SHAPES[category]
    cap = capacity_w * (1.0 if role == 0 else 0.35)
    occ = occupancy(category, lt)
    drift = 1.0 + 0.08 * value_noise(key ^ 0xE1, lt.ts_ms / 1000.0, 4 * 3600.0)
    heat = np.clip((15.0 - temp_c) / 20.0, 0.0, 1.0)
    cool = np.clip((temp_c - 24.0) / 8.0, 0.0, 1.0)
    active = 0.3 + 0.7 * np.minimum(occ * 2.0, 1.0)
    frac = (
        shape.base
        + shape.occupied * occ * drift
        + (shape.heating * heat + shape.cooling * cool) * active
    )
    jitter = 1.0 + shape.noise * normal(key ^ 0xE2, steps)
    return np.maximum(cap * frac * jitter, 0.0)
