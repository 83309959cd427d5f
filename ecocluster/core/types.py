"""Names and shapes shared by every stage, kept in one small module (starlette's `types.py`).

Quantities carry their unit in the name (Prometheus style). Registers (`energy_kwh`,
`water_m3`) are cumulative: the store keeps their raw value and a `delta` field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal, NamedTuple, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]

#: Ids of organisations, sites, meters, contacts; safe in topics and line protocol by design.
ID_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
ID_RE: Final = re.compile(ID_PATTERN)

Quantity = Literal[
    "energy_kwh",
    "water_m3",
    "power_w",
    "flow_lpm",
    "pm10_ugm3",
    "pm25_ugm3",
    "no2_ugm3",
    "o3_ugm3",
    "so2_ugm3",
    "co_mgm3",
    "co2_ppm",
    "temp_c",
    "rh_pct",
]
QUANTITIES: Final[tuple[str, ...]] = Quantity.__args__  # type: ignore[attr-defined]
CUMULATIVE_QUANTITIES: Final = frozenset({"energy_kwh", "water_m3"})
AIR_QUANTITIES: Final = frozenset(
    {"pm10_ugm3", "pm25_ugm3", "no2_ugm3", "o3_ugm3", "so2_ugm3", "co_mgm3"}
)

SiteCategory = Literal[
    "office",
    "town_hall",
    "hotel",
    "ski_lift",
    "dairy",
    "school",
    "refuge",
    "pumping_station",
    "air_station",
    "visitor_centre",
    "depot",
]
SITE_CATEGORIES: Final[tuple[str, ...]] = SiteCategory.__args__  # type: ignore[attr-defined]

Role = Literal[
    "emergency_coordinator",
    "facility_manager",
    "cluster_coordinator",
    "duty_officer",
    "technician",
]

#: Labels a rule's or route's `match:` may name.
MATCH_LABELS: Final = frozenset(
    {"org", "site", "meter", "category", "quantity", "severity", "rule", "kind"}
)


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


def is_valid_id(value: str) -> bool:
    return ID_RE.fullmatch(value) is not None


class SeriesKey(NamedTuple):
    """One time series: a quantity of a meter. The store's tags (org, site, meter) + measurement."""

    org: str
    site: str
    meter: str
    quantity: str


@dataclass(frozen=True, slots=True)
class ReadingBatch:
    """Readings in columns: what ingest hands to the store and the rule engine, and what
    store queries return. Row i is reading i; `series_idx[i]` indexes `series`.

    `deltas` is the consumption since the meter's previous reading for cumulative
    registers, NaN where there is none (not a register, first reading, out of order, reset).
    """

    series: Sequence[SeriesKey]
    series_idx: IntArray
    ts_ms: IntArray
    values: FloatArray
    deltas: FloatArray

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    @classmethod
    def empty(cls, series: Sequence[SeriesKey] = ()) -> ReadingBatch:
        return cls(
            series=series,
            series_idx=np.empty(0, np.int64),
            ts_ms=np.empty(0, np.int64),
            values=np.empty(0, np.float64),
            deltas=np.empty(0, np.float64),
        )

    def take(self, keep: BoolArray | IntArray) -> ReadingBatch:
        """The rows selected by a mask or an index array, same series table."""
        return ReadingBatch(
            self.series,
            self.series_idx[keep],
            self.ts_ms[keep],
            self.values[keep],
            self.deltas[keep],
        )


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A device's connectivity from its retained `…/status` topic (`online`/`offline`; an
    `offline` the device did not send itself is its MQTT last will)."""

    site: str
    meter: str
    online: bool
    ts_ms: int


class ReadingSink(Protocol):
    """Where ingest hands what it accepted, after it is durable: the rule engine in one
    process, or an MQTT relay to rule workers elsewhere. Must be quick (hand off, never
    block the ingest loop on I/O)."""

    async def on_readings(self, batch: ReadingBatch) -> None: ...

    async def on_status(self, status: DeviceStatus) -> None: ...
