"""Validation against the registry: topics → meters, then whole-array checks on decoded rows.

A topic is checked once and its verdict cached (a meter publishes on the same few topics
all day; the cache is bounded in entries and in bytes, so a flood of long random topics
cannot hold memory); the per-reading checks that remain after decoding (finite values
inside the quantity's physical bounds, timestamps inside `[now - max_age, now +
max_future]`) are numpy masks over every row of a burst.

Physical bounds keep absurd values (power 1e308 W, PM10 −1e6 µg/m³) out of the store and
out of the rules engine, whose float32 baselines one such value would overflow for good.
They are wide on purpose: they refuse what cannot be physical, not what is unusual.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from ecocluster.core.registry import Cluster
from ecocluster.core.types import BoolArray, FloatArray, IntArray, SeriesKey, is_valid_id
from ecocluster.ingest.errors import PayloadError, Reason

__all__ = ["PHYSICAL_BOUNDS", "Route", "RowChecks", "TopicRouter", "bounds_of", "check_rows"]

Kind = Literal["data", "senml", "status"]
KINDS: Final = ("data", "senml", "status")
_CACHE_LIMIT: Final = 100_000
_CACHE_BYTES: Final = 8 * 1024 * 1024

#: Inclusive [low, high] of each quantity in its canonical unit. Registers and
#: concentrations cannot be negative; power may be (a site exporting PV).
PHYSICAL_BOUNDS: Final[dict[str, tuple[float, float]]] = {
    "energy_kwh": (0.0, 1e12),
    "water_m3": (0.0, 1e11),
    "power_w": (-1e9, 1e9),
    "flow_lpm": (0.0, 1e7),
    "pm10_ugm3": (0.0, 1e5),
    "pm25_ugm3": (0.0, 1e5),
    "no2_ugm3": (0.0, 1e5),
    "o3_ugm3": (0.0, 1e5),
    "so2_ugm3": (0.0, 1e5),
    "co_mgm3": (0.0, 1e4),
    "co2_ppm": (0.0, 1e6),
    "temp_c": (-100.0, 200.0),
    "rh_pct": (0.0, 100.0),
}
_UNBOUNDED: Final = (-3.0e38, 3.0e38)  # float32-safe, for a quantity without bounds


def bounds_of(quantities: Sequence[str]) -> tuple[FloatArray, FloatArray]:
    """(low, high) arrays aligned with `quantities` (one per series)."""
    pairs = [PHYSICAL_BOUNDS.get(q, _UNBOUNDED) for q in quantities]
    low = np.array([p[0] for p in pairs], np.float64)
    high = np.array([p[1] for p in pairs], np.float64)
    return low, high


@dataclass(frozen=True, slots=True)
class Route:
    """Where a topic's readings go: the meter, and its quantities' series indices."""

    kind: Kind
    org: str
    site: str
    meter: str
    series_of: Mapping[str, int]


class TopicRouter:
    """`{prefix}/{site}/{meter}/{kind}` → `Route`, or the `PayloadError` that rejects it."""

    def __init__(self, cluster: Cluster, prefix: str) -> None:
        self._cluster = cluster
        self._prefix = prefix
        self._cache: dict[str, Route | PayloadError] = {}
        self._cache_bytes = 0
        self._bounds: tuple[Sequence[SeriesKey], FloatArray, FloatArray] | None = None
        index = cluster.series_index
        self._series_of: dict[tuple[str, str], dict[str, int]] = {}
        for (site, meter, quantity), i in index.items():
            self._series_of.setdefault((site, meter), {})[quantity] = i

    def bounds_for(self, series: Sequence[SeriesKey]) -> tuple[FloatArray, FloatArray]:
        """Per-series physical (low, high), computed once per series table."""
        if self._bounds is None or self._bounds[0] is not series:
            self._bounds = (series, *bounds_of([k.quantity for k in series]))
        return self._bounds[1], self._bounds[2]

    def route(self, topic: str) -> Route | PayloadError:
        found = self._cache.get(topic)
        if found is None:
            found = self._resolve(topic)
            size = len(topic)
            if len(self._cache) >= _CACHE_LIMIT or self._cache_bytes + size > _CACHE_BYTES:
                self._cache.clear()  # a flood of random topics must not grow memory
                self._cache_bytes = 0
            self._cache[topic] = found
            self._cache_bytes += size
        return found

    def _resolve(self, topic: str) -> Route | PayloadError:
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != self._prefix or parts[3] not in KINDS:
            return PayloadError(
                Reason.BAD_TOPIC,
                f"topics are {self._prefix}/{{site}}/{{meter}}/data|senml|status",
                topic=topic,
            )
        _, site, meter, kind = parts
        for what, value in (("site", site), ("meter", meter)):
            if not is_valid_id(value):
                return PayloadError(Reason.BAD_ID, f"invalid {what} id {value!r:.70}", topic=topic)
        cluster = self._cluster
        if site not in cluster.site_by_id:
            return PayloadError(Reason.UNKNOWN_SITE, f"unknown site {site!r}", topic=topic)
        if cluster.meter(site, meter) is None:
            elsewhere = [m.site for m in cluster.meters if m.id == meter]
            hint = f" (it belongs to {elsewhere[0]})" if elsewhere else ""
            return PayloadError(
                Reason.UNKNOWN_METER, f"site {site!r} has no meter {meter!r}{hint}", topic=topic
            )
        org = cluster.site_by_id[site].org
        return Route(kind, org, site, meter, self._series_of.get((site, meter), {}))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class RowChecks:
    """The verdict on decoded rows: `keep` is the mask of good rows; each bad row has a reason."""

    keep: BoolArray
    bad_idx: IntArray
    reasons: list[Reason]


def check_rows(
    ts_ms: IntArray,
    values: FloatArray,
    *,
    low: FloatArray,
    high: FloatArray,
    now_ms: int,
    max_future_ms: int,
    max_age_ms: int,
) -> RowChecks:
    """Finite values inside [low, high] (per row), timestamps neither too far ahead nor too
    old; the first failing check names the reason."""
    not_finite = ~np.isfinite(values)
    implausible = ~not_finite & ((values < low) | (values > high))
    future = ts_ms > now_ms + max_future_ms
    too_old = ts_ms < now_ms - max_age_ms
    keep = ~(not_finite | implausible | future | too_old)
    bad_idx = np.flatnonzero(~keep)
    reasons = [
        Reason.NOT_FINITE
        if not_finite[i]
        else Reason.IMPLAUSIBLE
        if implausible[i]
        else Reason.FUTURE
        if future[i]
        else Reason.TOO_OLD
        for i in bad_idx.tolist()
    ]
    return RowChecks(keep, bad_idx, reasons)
