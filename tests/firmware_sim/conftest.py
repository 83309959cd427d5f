"""Fixtures for the simulator's tests: the example territory, its plan, and readings
of whole days as plain per-series arrays (small enough to hold, quick to assert on)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from ecocluster.core.registry import Cluster, load_cluster
from ecocluster.sim import SimBatch, SimPlan, build_plan, generate

ROME = ZoneInfo("Europe/Rome")


@pytest.fixture(scope="session")
def cluster(example_cluster_path: Path) -> Cluster:
    return load_cluster(example_cluster_path)


@pytest.fixture(scope="session")
def plan(cluster: Cluster) -> SimPlan:
    return build_plan(cluster, seed=11)


@dataclass
class Columns:
    """Every reading of a run, concatenated; `series(site, meter, q)` gives (ts, values)."""

    plan: SimPlan
    series_idx: np.ndarray
    ts_ms: np.ndarray
    sent_ts_ms: np.ndarray
    values: np.ndarray
    batches: list[SimBatch]

    def series(self, site: str, meter: str, quantity: str) -> tuple[np.ndarray, np.ndarray]:
        i = next(
            n
            for n, k in enumerate(self.plan.series)
            if (k.site, k.meter, k.quantity) == (site, meter, quantity)
        )
        keep = self.series_idx == i
        return self.ts_ms[keep], self.values[keep]


def collect(plan: SimPlan, start: datetime, end: datetime, **kwargs: object) -> Columns:
    kwargs.setdefault("chunk", timedelta(days=1))
    batches = list(generate(plan, start, end, **kwargs))  # type: ignore[arg-type]
    return Columns(
        plan,
        np.concatenate([b.series_idx for b in batches]),
        np.concatenate([b.ts_ms for b in batches]),
        np.concatenate([b.sent_ts_ms for b in batches]),
        np.concatenate([b.values for b in batches]),
        batches,
    )


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=ROME)  # type: ignore[misc]


@pytest.fixture(scope="session")
def winter_week(plan: SimPlan) -> Columns:
    """Mon 12 - Sun 18 January 2026: ski season, school term, heating on."""
    return collect(plan, local(2026, 1, 12), local(2026, 1, 19))


@pytest.fixture(scope="session")
def summer_week(plan: SimPlan) -> Columns:
    """Mon 13 - Sun 19 July 2026: schools closed, lifts stopped, ozone season."""
    return collect(plan, local(2026, 7, 13), local(2026, 7, 20))
