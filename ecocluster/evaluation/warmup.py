"""Baseline warm-up: fault-free days before the scenario, fed straight into the rules
engine (no broker, no store), so that history-based rules (the anomaly rule's baselines)
start the scenario as they would on a territory that has been running for a while.

The readings come from another seed than the scenario's, and whatever fires while warming
up is forgotten: the scenario starts with every alert at `ok`.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from ecocluster.core.registry import Cluster
from ecocluster.core.types import DeviceStatus
from ecocluster.rules.backtest import replay
from ecocluster.rules.engine import RuleEngine
from ecocluster.sim import generate

__all__ = ["WARMUP_SEED_OFFSET", "warm_up"]

#: The warm-up of seed N uses seed N + 1000 (the detection benchmark's convention).
WARMUP_SEED_OFFSET = 1000


def warm_up(
    engine: RuleEngine, cluster: Cluster, start_ms: int, end_ms: int, seed: int, tick_ms: int
) -> int:
    """Replay `[start_ms, end_ms)` of fault-free operation into `engine`, ticking every
    `tick_ms`; return the readings fed. Leaves every rule's state at `ok`."""
    fed = 0
    for sim in generate(cluster, start_ms, end_ms, seed=seed, chunk=timedelta(days=1)):
        batch = sim.to_reading_batch()
        order = np.argsort(batch.ts_ms, kind="stable")
        statuses = [
            DeviceStatus(e.site, e.meter, bool(e.online), e.ts_ms)
            for e in sim.events
            if e.kind == "status"
        ]
        replay(
            engine,
            engine.rows_of(batch)[order],
            batch.ts_ms[order],
            batch.values[order],
            sim.start_ms,
            sim.end_ms,
            tick_ms,
            statuses,
        )
        fed += len(batch)
    for kernel in engine.kernels:  # what fired while warming up is not the scenario's
        kernel.state.state[:] = 0
    return fed
