"""Indoor air of occupied rooms: CO2 rising with people (ventilation lags occupancy by
half an hour or so), heating to 20-21 °C while occupied and a setback at night in the
heating season, the room following the weather in summer."""

from __future__ import annotations

import numpy as np

from ecocluster.core.types import FloatArray

from ..localtime import LocalTime
from ..noise import normal, value_noise
from .schedules import occupancy
from .weather import summer_weight

__all__ = ["indoor_climate"]

_CO2_RISE_PPM = {"school": 750.0, "town_hall": 450.0, "office": 500.0, "refuge": 600.0}


def indoor_climate(
    category: str, lt: LocalTime, steps: np.ndarray, key: int, outdoor_c: FloatArray
) -> dict[str, FloatArray]:
    occ = occupancy(category, lt)
    # crude first-order lag: occupancy averaged over the last ~45 min (shifted 3 x 15 min)
    lagged = np.mean(
        [occupancy(category, lt.shifted(-m * 60_000)) for m in (0, 15, 30, 45)], axis=0
    )
    rise = _CO2_RISE_PPM.get(category, 400.0)
    co2 = 430.0 + rise * lagged * (1.0 + 0.15 * value_noise(key ^ 0xC1, lt.ts_ms / 1e3, 3600.0))
    co2 = co2 + 12.0 * normal(key ^ 0xC2, steps)

    heating = summer_weight(lt) < 0.6  # the heating season, mid-October to mid-April
    setpoint = np.where(occ > 0.05, 20.5, 16.5)
    free_running = 0.5 * (outdoor_c + 24.0)
    temp = np.where(heating, setpoint, np.maximum(free_running, setpoint - 1.0))
    temp = temp + 0.3 * normal(key ^ 0xC3, steps) + 0.4 * occ
    rh = np.clip(
        np.where(heating, 38.0, 55.0) + 6.0 * occ + 2.0 * normal(key ^ 0xC4, steps), 20.0, 80.0
    )
    return {"co2_ppm": np.maximum(co2, 400.0), "temp_c": temp, "rh_pct": rh}
