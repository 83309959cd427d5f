"""Broker-free entry points: readings and ground truth for a time range, as numpy columns.

These are what the rule engine's scoring uses: regenerate any slice of a scenario and
compare alerts with `ground_truth()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ecocluster.core.registry import Cluster

from .faults import Fault
from .generate import Generator, SimBatch
from .plan import SimPlan, build_plan
from .scenario import Scenario, load_scenario, resolve_faults

__all__ = ["faults_for", "generate", "ground_truth"]


def _ms(value: datetime | int) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{value.isoformat()} has no time zone; give one (e.g. +01:00 or Z)")
        return int(value.timestamp() * 1000)
    return int(value)


def _plan(
    cluster: Cluster | SimPlan,
    seed: int,
    meters_only: Iterable[str] | None,
    intervals: Mapping[str, timedelta | int] | None,
    scale: int,
) -> SimPlan:
    if isinstance(cluster, SimPlan):
        return cluster
    return build_plan(cluster, seed=seed, meters_only=meters_only, intervals=intervals, scale=scale)


def _scenario(scenario: Scenario | str | Path | None) -> Scenario | None:
    if scenario is None or isinstance(scenario, Scenario):
        return scenario
    return load_scenario(scenario)


def faults_for(
    plan: SimPlan, start: datetime | int, scenario: Scenario | str | Path | None
) -> list[Fault]:
    sc = _scenario(scenario)
    return resolve_faults(sc, plan, _ms(start)) if sc else []


def generate(
    cluster: Cluster | SimPlan,
    start: datetime | int,
    end: datetime | int,
    *,
    seed: int = 0,
    scenario: Scenario | str | Path | None = None,
    meters_only: Iterable[str] | None = None,
    intervals: Mapping[str, timedelta | int] | None = None,
    scale: int = 1,
    chunk: timedelta = timedelta(hours=1),
) -> Iterator[SimBatch]:
    """Readings of [start, end) in batches of `chunk` (times: aware datetimes or epoch ms).

    Same seed, scenario and start give the same readings as `ecocluster sim` publishes."""
    plan = _plan(cluster, seed, meters_only, intervals, scale)
    start_ms = _ms(start)
    gen = Generator(plan, faults_for(plan, start_ms, scenario), start_ms=start_ms)
    yield from gen.batches(_ms(end), int(chunk.total_seconds() * 1000))


def ground_truth(
    cluster: Cluster | SimPlan,
    start: datetime | int,
    *,
    seed: int = 0,
    scenario: Scenario | str | Path | None = None,
    meters_only: Iterable[str] | None = None,
    intervals: Mapping[str, timedelta | int] | None = None,
    scale: int = 1,
) -> list[dict[str, Any]]:
    """The ground-truth records (as written to `--truth`) of a scenario run from `start`."""
    plan = _plan(cluster, seed, meters_only, intervals, scale)
    return [f.record() for f in faults_for(plan, start, scenario)]
