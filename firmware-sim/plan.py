"""What to simulate: the meters of a cluster, each with its reporting grid and noise key.

The plan is built once from the cluster file (optionally scaled up and filtered) and is
the row order of everything the generator yields: `plan.series[i]` is series i, the same
order as `Cluster.series` when the plan covers the whole cluster unscaled.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from ecocluster.core.registry import Cluster
from ecocluster.core.types import QUANTITIES, IntArray, SeriesKey

from .noise import stream_key, uniform
from .scale import scale_cluster

__all__ = ["DEFAULT_CAPACITY_W", "MeterSpec", "SimPlan", "build_plan"]

_HOUR_MS = 3_600_000
#: Default reporting interval when the cluster file gives none.
_DEFAULT_INTERVAL_MS = {"energy_kwh": 60_000, "power_w": 60_000}
_FALLBACK_INTERVAL_MS = 300_000
#: Contracted power assumed for a site that does not state one (sets the size of the profile).
DEFAULT_CAPACITY_W = {
    "office": 30_000.0,
    "town_hall": 30_000.0,
    "hotel": 70_000.0,
    "ski_lift": 400_000.0,
    "dairy": 150_000.0,
    "school": 30_000.0,
    "refuge": 10_000.0,
    "pumping_station": 30_000.0,
    "air_station": 3_000.0,
    "visitor_centre": 15_000.0,
    "depot": 15_000.0,
}


@dataclass(frozen=True, slots=True)
class MeterSpec:
    """One simulated device. `intervals_ms[i]` is the reporting interval of `quantities[i]`;
    readings fall on `phase_ms + k * step_ms` (step = gcd of the intervals), like a device
    whose clock started at a random second."""

    index: int
    org: str
    site: str
    meter: str
    category: str
    quantities: tuple[str, ...]
    intervals_ms: tuple[int, ...]
    step_ms: int
    phase_ms: int
    capacity_w: float
    role: int
    altitude_m: float
    key: int
    first_series: int
    mqtt_username: str | None = None
    mqtt_password: str | None = None

    @property
    def client_id(self) -> str:
        return f"sim-{self.site}-{self.meter}"[:64]


@dataclass(frozen=True)
class SimPlan:
    cluster: Cluster
    meters: tuple[MeterSpec, ...]
    series: tuple[SeriesKey, ...]
    series_meter: IntArray  # series -> index in `meters`
    seed: int

    @property
    def timezone(self) -> str:
        return self.cluster.territory.timezone

    def meter_index(self, site: str, meter: str) -> int | None:
        for spec in self.meters:
            if spec.site == site and spec.meter == meter:
                return spec.index
        return None


def _interval_ms(value: timedelta | int) -> int:
    ms = int(value.total_seconds() * 1000) if isinstance(value, timedelta) else int(value)
    if ms < 1000 or ms % 1000 or _HOUR_MS % ms:
        raise ValueError(
            f"reporting interval {ms / 1000:g}s must be whole seconds that divide one hour"
        )
    return ms


def _selected(cluster: Cluster, only: Iterable[str] | None) -> set[tuple[str, str]] | None:
    if not only:
        return None
    wanted = {w.strip() for w in only if w.strip()}
    keys = set()
    for m in cluster.meters:
        if f"{m.site}/{m.id}" in wanted or m.site in wanted or m.id in wanted:
            keys.add((m.site, m.id))
    if not keys:
        raise ValueError(f"--meters-only matched no meter: {', '.join(sorted(wanted))}")
    return keys


def build_plan(
    cluster: Cluster,
    *,
    seed: int = 0,
    meters_only: Iterable[str] | None = None,
    intervals: Mapping[str, timedelta | int] | None = None,
    scale: int = 1,
) -> SimPlan:
    """The meters to simulate. `meters_only` names `site/meter`, a site or a meter id;
    `intervals` overrides reporting intervals per quantity (`"*"` for all); `scale` N
    adds N-1 synthetic copies of every site (ids `<site>.2` … `<site>.N`) for load."""
    overrides = {k: _interval_ms(v) for k, v in (intervals or {}).items()}
    unknown = set(overrides) - {"*", *QUANTITIES}
    if unknown:
        raise ValueError(f"unknown quantity in intervals: {', '.join(sorted(unknown))}")
    if scale > 1:
        cluster = scale_cluster(cluster, scale)
    keep = _selected(cluster, meters_only)
    meters: list[MeterSpec] = []
    series: list[SeriesKey] = []
    roles: dict[tuple[str, str], int] = {}
    for m in cluster.meters:
        if keep is not None and (m.site, m.id) not in keep:
            continue
        site = cluster.site_by_id[m.site]
        family = "energy" if "power_w" in m.quantities or "energy_kwh" in m.quantities else "x"
        role = roles.get((m.site, family), 0)
        roles[(m.site, family)] = role + 1
        own = _interval_ms(m.interval) if m.interval else None
        ivals = tuple(
            overrides.get(q)
            or overrides.get("*")
            or own
            or _DEFAULT_INTERVAL_MS.get(q, _FALLBACK_INTERVAL_MS)
            for q in m.quantities
        )
        step = math.gcd(*ivals)
        key = stream_key(seed, m.site, m.id)
        phase = int(uniform(key, np.array([7]))[0] * step) // 1000 * 1000
        password = m.mqtt_password.get_secret_value() if m.mqtt_password else None
        meters.append(
            MeterSpec(
                index=len(meters),
                org=site.org,
                site=m.site,
                meter=m.id,
                category=site.category,
                quantities=tuple(m.quantities),
                intervals_ms=ivals,
                step_ms=step,
                phase_ms=phase,
                capacity_w=site.contracted_power_w or DEFAULT_CAPACITY_W[site.category],
                role=role,
                altitude_m=site.altitude_m if site.altitude_m is not None else 800.0,
                key=key,
                first_series=len(series),
                mqtt_username=m.mqtt_username,
                mqtt_password=password,
            )
        )
        series.extend(SeriesKey(site.org, m.site, m.id, q) for q in m.quantities)
    series_meter = np.repeat(
        np.arange(len(meters), dtype=np.int64), [len(s.quantities) for s in meters]
    )
    return SimPlan(cluster, tuple(meters), tuple(series), series_meter, seed)
