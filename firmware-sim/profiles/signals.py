"""Dispatch a meter's quantities to the profile families."""

from __future__ import annotations

import numpy as np

from ecocluster.core.types import AIR_QUANTITIES, FloatArray

from ..localtime import LocalTime
from ..noise import normal
from ..plan import MeterSpec
from .air import air_quality
from .energy import power_w
from .indoor import indoor_climate
from .water import flow_lpm
from .weather import outdoor_rh, outdoor_temp

__all__ = ["RATE_OF_REGISTER", "signals"]

#: A cumulative register and the rate quantity it integrates.
RATE_OF_REGISTER = {"energy_kwh": "power_w", "water_m3": "flow_lpm"}


def signals(spec: MeterSpec, lt: LocalTime, steps: np.ndarray, seed: int) -> dict[str, FloatArray]:
    """Physical values at every step for the meter's quantities, plus the rates its
    registers integrate (`power_w` for `energy_kwh`, `flow_lpm` for `water_m3`)."""
    wanted = set(spec.quantities) | {
        RATE_OF_REGISTER[q] for q in spec.quantities if q in RATE_OF_REGISTER
    }
    outdoor = spec.category == "air_station" or bool(wanted & AIR_QUANTITIES)
    temp_out = outdoor_temp(lt, seed, spec.altitude_m)
    out: dict[str, FloatArray] = {}
    if "power_w" in wanted:
        out["power_w"] = power_w(
            spec.category, lt, steps, spec.key, spec.capacity_w, spec.role, temp_out
        )
    if "flow_lpm" in wanted:
        out["flow_lpm"] = flow_lpm(spec.category, lt, steps, spec.key, spec.capacity_w, spec.role)
    if wanted & AIR_QUANTITIES:
        aq = air_quality(lt, steps, spec.key, seed, spec.altitude_m)
        out.update({q: aq[q] for q in wanted & AIR_QUANTITIES})
    climate = {"co2_ppm", "temp_c", "rh_pct"} & wanted
    if climate and outdoor:
        temp = temp_out + 0.25 * normal(spec.key ^ 0xD1, steps)
        out["temp_c"] = temp
        out["rh_pct"] = outdoor_rh(lt, seed, temp, spec.altitude_m)
        if "co2_ppm" in wanted:
            out["co2_ppm"] = 425.0 + 8.0 * normal(spec.key ^ 0xD2, steps)
    elif climate:
        out.update(indoor_climate(spec.category, lt, steps, spec.key, temp_out))
    return {q: out[q] for q in wanted if q not in RATE_OF_REGISTER}
