"""One regional weather for the whole territory (sites differ by altitude only).

Temperature: the Apennine valley mean (about 13 °C at sea level, 9 °C seasonal
amplitude, coldest mid-January) minus a 6.5 °C/km lapse rate, a diurnal cycle peaking at
15:00, and multi-day synoptic swings. Relative humidity falls as the afternoon warms.
"""

from __future__ import annotations

import numpy as np

from ecocluster.core.types import FloatArray

from ..localtime import LocalTime
from ..noise import stream_key, value_noise

__all__ = ["outdoor_rh", "outdoor_temp", "summer_weight"]


def summer_weight(lt: LocalTime) -> FloatArray:
    """0 in mid-January .. 1 in mid-July: the seasonal phase most profiles scale with."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * (lt.doy - 15) / 365.25)


def outdoor_temp(lt: LocalTime, seed: int, altitude_m: float) -> FloatArray:
    t_s = lt.ts_ms / 1000.0
    synoptic = 3.0 * value_noise(stream_key(seed, "weather", "temp"), t_s, 1.5 * 86400)
    diurnal = 4.0 * np.cos(2.0 * np.pi * (lt.hour - 15.0) / 24.0)
    seasonal = 13.0 - 9.0 + 18.0 * summer_weight(lt)
    return seasonal - 6.5 * altitude_m / 1000.0 + diurnal + synoptic


def outdoor_rh(lt: LocalTime, seed: int, temp_c: FloatArray, altitude_m: float) -> FloatArray:
    t_s = lt.ts_ms / 1000.0
    daily_mean = outdoor_temp(lt, seed, altitude_m) - 4.0 * np.cos(
        2.0 * np.pi * (lt.hour - 15.0) / 24.0
    )
    wet = 12.0 * value_noise(stream_key(seed, "weather", "rh"), t_s, 86400)
    rh = 78.0 - 10.0 * summer_weight(lt) - 3.5 * (temp_c - daily_mean) + wet
    return np.clip(rh, 15.0, 100.0)
