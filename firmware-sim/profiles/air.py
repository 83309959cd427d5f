"""Outdoor air quality (µg/m³; CO in mg/m³) at rural-mountain stations of the Apennines.

- NO2: a few µg/m³ of background plus traffic peaks at 08:00 and 18:30 on working days,
  higher in winter (shallow inversions); valley towns see more traffic than passes.
- O3: high background at altitude (50-70), an afternoon photochemical peak (15:00) that
  grows in summer to 130-160 on sunny days, a little titration by NO2.
- PM10: clean air (8-15) with evening wood-stove peaks in winter and multi-day stagnant
  episodes; PM2.5 is 55-65 % of PM10. Natural levels are kept under the legal limits
  so that exceedances in a run come from injected `air_episode` faults (the truth file).
- SO2 1-3 µg/m³, CO 0.2-0.6 mg/m³ following traffic.
"""

from __future__ import annotations

import numpy as np

from ecocluster.core.types import FloatArray

from ..localtime import LocalTime
from ..noise import normal, stream_key, value_noise
from .schedules import bump
from .weather import summer_weight

__all__ = ["air_quality"]


def _traffic_factor(altitude_m: float, key: int) -> float:
    base = float(np.clip((1450.0 - altitude_m) / 750.0, 0.25, 1.0))
    return base * (0.85 + 0.3 * ((key >> 8) % 1000) / 1000.0)


def air_quality(
    lt: LocalTime, steps: np.ndarray, key: int, seed: int, altitude_m: float
) -> dict[str, FloatArray]:
    t_s = lt.ts_ms / 1000.0
    h = lt.hour
    summer = summer_weight(lt)
    winter = 1.0 - summer
    workday = (lt.weekday < 5).astype(np.float64)
    traffic = _traffic_factor(altitude_m, key)
    rush = (1.0 * bump(h, 8.0, 1.0) + 0.9 * bump(h, 18.5, 1.3) + 0.25 * bump(h, 13.0, 2.5)) * (
        0.55 + 0.45 * workday
    )
    # regional episodes are shared by every station (same weather), local noise is not
    regional = value_noise(stream_key(seed, "air", "episode"), t_s, 0.75 * 86400)
    local = value_noise(key ^ 0xB1, t_s, 3 * 3600.0)

    no2 = (3.0 + 4.0 * winter) + traffic * (22.0 + 12.0 * winter) * rush
    no2 = no2 * np.exp(0.15 * local + 0.12 * normal(key ^ 0xB2, steps))

    sun = bump(h, 15.0, 3.0) * (0.25 + 0.75 * summer)
    o3 = 50.0 + 15.0 * summer + (15.0 + 60.0 * summer) * sun * (1.0 + 0.25 * regional)
    o3 = np.maximum(o3 - 0.4 * no2 + 4.0 * normal(key ^ 0xB3, steps), 2.0)

    stoves = winter * (0.6 * bump(h, 20.5, 2.0) + 0.3 * bump(h, 7.5, 1.2)) * traffic
    episode = np.exp(0.35 * winter * np.clip(regional, -1.5, 1.6))
    pm10 = (9.0 + 4.0 * winter + 14.0 * stoves + 3.0 * traffic * rush) * episode
    pm10 = pm10 * np.exp(0.08 * local + 0.1 * normal(key ^ 0xB4, steps))
    pm25 = pm10 * (0.55 + 0.1 * winter) * np.exp(0.05 * normal(key ^ 0xB5, steps))

    so2 = 1.2 + 1.0 * winter * traffic + 0.3 * np.abs(normal(key ^ 0xB6, steps))
    co = 0.18 + 0.35 * traffic * rush * (0.6 + 0.4 * winter) + 0.02 * normal(key ^ 0xB7, steps)
    return {
        "no2_ugm3": no2,
        "o3_ugm3": o3,
        "pm10_ugm3": pm10,
        "pm25_ugm3": pm25,
        "so2_ugm3": so2,
        "co_mgm3": np.maximum(co, 0.05),
    }
