"""Fault kinds, their defaults, and how each one changes a meter's signals.

Faults act at the level where they happen in a real device, so the ground truth stays
consistent with every derived value:

- physical (`spike`, `overload`, `leak`, `burst`, `air_episode`): the measured quantity
  itself changes, and the cumulative register integrates the change;
- register (`counter_reset`, `meter_replacement`): the register restarts from a value;
- reporting (`stuck`, `dropout`, `clock_skew`): what the device sends differs from
  the truth (a frozen value, no messages, a wrong timestamp);
- messages (`malformed`, `hostile_ids`): extra payloads that ingest must reject.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ecocluster.core.types import BoolArray, FloatArray, IntArray

from .plan import MeterSpec

__all__ = [
    "DEFAULT_QUANTITY",
    "FAULT_KINDS",
    "HOSTILE_IDS",
    "MALFORMED_VARIANTS",
    "METER_LEVEL_KINDS",
    "Fault",
    "apply_physical",
    "effective_params",
]

FAULT_KINDS = (
    "spike",
    "overload",
    "leak",
    "burst",
    "stuck",
    "dropout",
    "counter_reset",
    "meter_replacement",
    "clock_skew",
    "malformed",
    "hostile_ids",
    "air_episode",
)
#: Faults of the whole device (no quantity in the truth record).
METER_LEVEL_KINDS = frozenset({"dropout", "clock_skew", "malformed", "hostile_ids"})
PHYSICAL_KINDS = frozenset({"spike", "overload", "leak", "burst", "air_episode"})
#: The quantity a fault acts on when the scenario names none (first one the meter has).
DEFAULT_QUANTITY: dict[str, list[str]] = {
    "spike": ["power_w", "flow_lpm", "no2_ugm3", "co2_ppm"],
    "overload": ["power_w"],
    "leak": ["flow_lpm"],
    "burst": ["flow_lpm"],
    "stuck": ["pm10_ugm3", "power_w", "flow_lpm", "co2_ppm", "temp_c"],
    "counter_reset": ["energy_kwh", "water_m3"],
    "meter_replacement": ["energy_kwh", "water_m3"],
    "air_episode": ["pm10_ugm3"],
}
MALFORMED_VARIANTS = (
    "not_json",
    "truncated",
    "binary",
    "nan_literal",
    "string_value",
    "missing_m",
    "ts_text",
    "unknown_quantity",
    "far_future",
    "oversized",
    "empty",
)
#: Ids that break naive code: spaces, separators, quotes, traversal, too long, unicode.
HOSTILE_IDS = (
    "em 01",
    "a,b=c",
    'x"; DROP TABLE readings;--',
    "../../etc/passwd",
    "m" * 80,
    "émeter-ü",
    "-leading-dash",
    "site\\back",
)


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault on one meter; `record()` is its ground-truth line."""

    id: str
    kind: str
    meter_idx: int
    site: str
    meter: str
    quantity: str | None
    start_ms: int
    end_ms: int
    params: dict[str, Any] = field(default_factory=dict)
    scenario: str = ""

    def covers(self, ts_ms: IntArray) -> BoolArray:
        return (ts_ms >= self.start_ms) & (ts_ms < self.end_ms)

    def record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scenario": self.scenario,
            "kind": self.kind,
            "site": self.site,
            "meter": self.meter,
            "quantity": self.quantity,
            "start": _iso(self.start_ms),
            "end": _iso(self.end_ms),
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "params": self.params,
        }


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def effective_params(kind: str, params: dict[str, Any], spec: MeterSpec) -> dict[str, Any]:
    """The scenario's parameters completed with this meter's defaults (written to the truth)."""
    p = dict(params)
    if kind == "spike":
        p.setdefault("factor", 4.0)
    elif kind == "overload":
        p.setdefault("level_w", round(1.05 * spec.capacity_w, 1))
    elif kind == "leak":
        p.setdefault("rate_lpm", 4.0)
    elif kind == "burst":
        p.setdefault("jump_lpm", 450.0 if spec.category == "pumping_station" else 60.0)
    elif kind == "counter_reset":
        p.setdefault("value", 0.0)
    elif kind == "meter_replacement":
        p.setdefault("new_initial", 0.0)
    elif kind == "clock_skew":
        p.setdefault("offset_s", 3600.0)
    elif kind in ("malformed", "hostile_ids"):
        p.setdefault("every_s", 600.0)
    elif kind == "air_episode":
        p.setdefault("excess", 60.0)
        p.setdefault("ramp_h", 6.0)
    return p


def apply_physical(faults: list[Fault], t_ms: IntArray, phys: dict[str, FloatArray]) -> None:
    """Change the physical signals in place for every physical fault of one meter."""
    for f in faults:
        if f.kind not in PHYSICAL_KINDS or f.quantity not in phys:
            continue
        inside = f.covers(t_ms)
        if not inside.any():
            continue
        values = phys[f.quantity]
        p = f.params
        if f.kind == "spike":
            values[inside] = p["value"] if "value" in p else values[inside] * p["factor"]
        elif f.kind == "overload":
            level = p["level_w"] * (1.0 + 0.02 * np.sin(t_ms[inside] / 7_000.0))
            values[inside] = np.maximum(values[inside], level)
        elif f.kind == "leak":
            values[inside] += p["rate_lpm"]
        elif f.kind == "burst":
            values[inside] += p["jump_lpm"]
        elif f.kind == "air_episode":
            ramp_ms = p["ramp_h"] * 3_600_000.0
            t = t_ms[inside].astype(np.float64)
            shape = np.minimum(
                np.clip((t - f.start_ms) / ramp_ms, 0.0, 1.0),
                np.clip((f.end_ms - t) / ramp_ms, 0.0, 1.0),
            )
            values[inside] += p["excess"] * shape
            if f.quantity == "pm10_ugm3" and "pm25_ugm3" in phys:
                phys["pm25_ugm3"][inside] += 0.6 * p["excess"] * shape
