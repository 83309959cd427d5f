"""Register deltas on tiny arrays with the answer in sight."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ecocluster.core.registry import Cluster, load_cluster
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
    # 2.0 is held (a drop), then 9000 is held (a jump from both), then 9001.5 confirms 9000:
    # a replaced meter reading high. The step is never booked; the 1.5 after it is.
    assert nan_to_none(got.deltas) == [None, None, None, 1.5]
    assert flags.rows == {"drop": [1], "jump": [2], "shift": [3]}
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


W = ("s1", "wm-01", "water_m3")  # default plausible maximum: 500 m³/h


def run(
    cluster: Cluster,
    tracker: RegisterTracker,
    key: tuple[str, str, str],
    values: list[float],
    step: int = H,
):
    got, flags = tracker.apply(
        batch(cluster, [(*key, (i + 1) * step, v) for i, v in enumerate(values)])
    )
    return nan_to_none(got.deltas), flags.rows


def test_a_one_reading_spike_never_becomes_the_baseline(small_cluster: Cluster) -> None:
    t = RegisterTracker(small_cluster)
    deltas, flags = run(small_cluster, t, W, [120.0, 1e9, 120.1, 120.4])
    assert deltas == [None, None, 0.1, 0.3]  # 0.4 m³ used, 0.4 m³ booked
    assert flags == {"jump": [1]}
    # The same across bursts: the candidate is state, not a batch-local guess.
    t = RegisterTracker(small_cluster)
    assert run(small_cluster, t, W, [120.0, 1e9])[0] == [None, None]
    got, _ = t.apply(batch(small_cluster, [(*W, 3 * H, 120.1)]))
    assert nan_to_none(got.deltas) == [0.1]


def test_a_spike_down_is_not_a_reset(small_cluster: Cluster) -> None:
    t = RegisterTracker(small_cluster)
    deltas, flags = run(small_cluster, t, W, [5000.0, 0.0, 5000.5])
    assert deltas == [None, None, 0.5] and flags == {"drop": [1]}


def test_backwards_jitter_books_nothing_and_is_not_booked_twice(small_cluster: Cluster) -> None:
    t = RegisterTracker(small_cluster)
    deltas, flags = run(small_cluster, t, W, [120.0, 119.99, 120.05, 120.04, 120.30])
    assert deltas == [None, 0.0, 0.05, 0.0, 0.25]  # total 0.30 = 120.30 − 120.0
    assert flags == {}
    assert sum(d or 0 for d in deltas) == pytest.approx(0.30)


def test_a_confirmed_reset_books_the_lower_bound_once(small_cluster: Cluster) -> None:
    t = RegisterTracker(small_cluster)
    deltas, flags = run(small_cluster, t, W, [5000.0, 3.0, 4.5, 5.0])
    assert deltas == [None, None, 4.5, 0.5]  # reset from 0: 3 (lower bound) + 1.5, then 0.5
    assert flags == {"drop": [1], "reset": [2]}
    assert all(d is None or d >= 0 for d in deltas)


def test_rollover_at_the_declared_register_size(tmp_path: Path) -> None:
    cluster = load_cluster(_cluster_file(tmp_path, "register_size: 1000000, max_rate_per_h: 50"))
    e = ("s1", "em-09", "energy_kwh")
    t = RegisterTracker(cluster)
    deltas, flags = run(cluster, t, e, [999_990.0, 999_999.5, 4.5, 10.0])
    assert deltas == [None, 9.5, 5.0, 5.5]  # (1 000 000 − 999 999.5) + 4.5
    assert flags == {"rollover": [2]}
    # Without a declared size the same drop is a reset candidate, never a giant delta.
    t = RegisterTracker(load_cluster(_cluster_file(tmp_path, "max_rate_per_h: 50")))
    deltas, _ = run(cluster, t, e, [999_990.0, 999_999.5, 4.5])
    assert deltas == [None, 9.5, None]


def test_deltas_never_exceed_the_meters_plausible_maximum(tmp_path: Path) -> None:
    cluster = load_cluster(_cluster_file(tmp_path, "max_rate_per_h: 10"))
    e = ("s1", "em-09", "energy_kwh")
    t = RegisterTracker(cluster)
    deltas, flags = run(cluster, t, e, [100.0, 109.0, 130.0, 131.0, 140.5], step=H)
    # +21 in an hour is flagged, never booked; 131 then confirms the new level (a shift).
    assert deltas == [None, 9.0, None, 1.0, 9.5]
    assert flags == {"jump": [2], "shift": [3]}
    assert max(d for d in deltas if d is not None) <= 10.0 + 0.05


def test_candidates_survive_a_restart(small_cluster: Cluster, tmp_path: Path) -> None:
    t = RegisterTracker(small_cluster, tmp_path / "registers.json")
    run(small_cluster, t, W, [120.0, 1e9])
    t.save()
    again = RegisterTracker(small_cluster, tmp_path / "registers.json")
    assert again.load() == 1
    got, _ = again.apply(batch(small_cluster, [(*W, 3 * H, 1e9 + 1)]))
    assert nan_to_none(got.deltas) == [1.0]  # the held reading was confirmed: a real shift


def _cluster_file(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / f"c{abs(hash(extra))}.yaml"
    path.write_text(
        f"""
territory: {{id: t, name: T, timezone: Europe/Rome}}
organisations: [{{id: o1, name: O, kind: public}}]
sites: [{{id: s1, org: o1, name: S, category: hotel, lat: 44.3, lon: 10.2}}]
meters: [{{id: em-09, site: s1, quantities: [energy_kwh], {extra}}}]
"""
    )
    return path
