"""Register deltas on tiny arrays with the answer in sight."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ecocluster.core.registry import Cluster
from ecocluster.core.types import ReadingBatch
from ecocluster.ingest.registers import RegisterTracker

H = 3_600_000


def batch(cluster: Cluster, rows: list[tuple[str, str, str, int, float]]) -> ReadingBatch:
    idx = [cluster.series_index[(s, m, q)] for s, m, q, _, _ in rows]
    return ReadingBatch(
        cluster.series,
        np.array(idx),
        np.array([r[3] for r in rows]),
        np.array([r[4] for r in rows], float),
        np.full(len(rows), np.nan),
    )


def nan_to_none(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else round(v, 9) for v in values.tolist()]


def test_deltas_resets_jumps_and_late_rows(small_cluster: Cluster) -> None:
    t = RegisterTracker(small_cluster)
    e = ("s1", "em-01", "energy_kwh")  # 36 kW contracted → at most 54 kWh per hour
    got, flags = t.apply(
        batch(
            small_cluster,
            [
                (*e, 2 * H, 110.0),
                (*e, 0, 100.0),
                (*e, H, 104.0),  # out of order within a burst: sorted
                ("s1", "em-01", "power_w", 0, 5.0),
            ],
        )
    )
    assert got.ts_ms.tolist() == [0, H, 2 * H, 0]
    assert nan_to_none(got.deltas) == [None, 4.0, 6.0, None]
    got, flags = t.apply(
        batch(
            small_cluster,
            [
                (*e, H + 1, 105.0),  # late: older than what we hold → no delta
                (*e, 3 * H, 2.0),  # went down: a reset, Δ = 2 (plausible)
                (*e, 4 * H, 9000.0),  # a replacement meter reading high: implausible, no delta
                (*e, 5 * H, 9001.5),
            ],
        )
    )
    assert nan_to_none(got.deltas) == [None, 2.0, None, 1.5]
    assert flags.reset_idx.tolist() == [1] and flags.jump_idx.tolist() == [2]
    assert t.values_of(small_cluster.series_index[e]) == (5 * H, 9001.5)


def test_state_survives_a_restart_and_merges_with_the_store(
    small_cluster: Cluster, tmp_path: Path
) -> None:
    w = ("s1", "wm-01", "water_m3")
    t = RegisterTracker(small_cluster, tmp_path / "registers.json")
    t.apply(batch(small_cluster, [(*w, 1000, 5.0)]))
    t.save()
    again = RegisterTracker(small_cluster, tmp_path / "registers.json")
    assert again.load() == 1
    newer = batch(small_cluster, [(*w, 2000, 5.5)])
    assert again.merge_latest(newer) == 1
    got, _ = again.apply(batch(small_cluster, [(*w, 2000, 5.5), (*w, 2000 + H, 5.75)]))
    assert nan_to_none(got.deltas) == [None, 0.25]  # the redelivered point gets no second delta
