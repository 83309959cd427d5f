"""A five-series territory with the answers in sight, and helpers to feed readings.

Series, in the registry's order (the index the helpers below take; the engine itself
orders its rows by quantity first):
  0 s1/m1/power_w   (org o1, hotel,     contracted 1000 W)
  1 s1/m1/flow_lpm
  2 s2/m2/power_w   (org o1, school,    contracted 500 W)
  3 s3/m3/power_w   (org o2, town_hall, no contract)
  4 s3/m3/flow_lpm
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from ecocluster.core.registry import Cluster, load_cluster
from ecocluster.core.types import ReadingBatch
from ecocluster.rules.engine import RuleEngine

T0 = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000  # an hour boundary (UTC)
MIN = 60_000

BASE: dict[str, Any] = {
    "territory": {"id": "t", "name": "T", "timezone": "UTC"},
    "organisations": [
        {"id": "o1", "name": "O1", "kind": "public"},
        {"id": "o2", "name": "O2", "kind": "private"},
    ],
    "sites": [
        {
            "id": "s1",
            "org": "o1",
            "name": "S1",
            "category": "hotel",
            "lat": 0,
            "lon": 0,
            "contracted_power_w": 1000,
        },
        {
            "id": "s2",
            "org": "o1",
            "name": "S2",
            "category": "school",
            "lat": 0,
            "lon": 0,
            "contracted_power_w": 500,
        },
        {"id": "s3", "org": "o2", "name": "S3", "category": "town_hall", "lat": 0, "lon": 0},
    ],
    "meters": [
        {"id": "m1", "site": "s1", "quantities": ["power_w", "flow_lpm"]},
        {"id": "m2", "site": "s2", "quantities": ["power_w"]},
        {"id": "m3", "site": "s3", "quantities": ["power_w", "flow_lpm"]},
    ],
}

MakeCluster = Callable[..., Cluster]


@pytest.fixture
def make_cluster(tmp_path: Path) -> MakeCluster:
    counter = iter(range(1000))

    def make(rules: list[dict[str, Any]], **extra: Any) -> Cluster:
        path = tmp_path / f"cluster{next(counter)}.yaml"
        path.write_text(yaml.safe_dump({**BASE, **extra, "rules": rules}, sort_keys=False))
        return load_cluster(path)

    return make


@pytest.fixture
def make_engine(make_cluster: MakeCluster) -> Callable[..., RuleEngine]:
    def make(*rules: dict[str, Any]) -> RuleEngine:
        return RuleEngine(make_cluster(list(rules)))

    return make


def batch(cluster: Cluster, readings: Iterable[tuple[int, int, float]]) -> ReadingBatch:
    """Readings as (row, ts_ms, value) against the cluster's series table."""
    rows = list(readings)
    return ReadingBatch(
        series=cluster.series,
        series_idx=np.array([r[0] for r in rows], np.int64),
        ts_ms=np.array([r[1] for r in rows], np.int64),
        values=np.array([r[2] for r in rows], np.float64),
        deltas=np.full(len(rows), np.nan),
    )


def run(
    engine: RuleEngine, readings: Iterable[tuple[int, int, float]], ticks: Iterable[int]
) -> list[tuple[int, str, str, str]]:
    """Feed readings in time order, ticking at each tick time; return the transitions as
    (minutes after T0, state, target key, severity)."""
    pending = sorted(readings, key=lambda r: r[1])
    out = []
    for now in ticks:
        due = [r for r in pending if r[1] < now]
        pending = [r for r in pending if r[1] >= now]
        if due:
            engine.ingest(batch(engine.cluster, due))
        for t in engine.tick(now):
            key = "/".join(
                t.labels.get(k, "") for k in ("site", "meter", "quantity") if k in t.labels
            )
            out.append(((t.at_ms - T0) // MIN, t.state, key, str(t.severity)))
    return out


def minutes(*m: int) -> list[int]:
    return [T0 + x * MIN for x in m]
