"""Every fault kind, injected by the stress-mix scenario, shows in the generated readings
at the times its ground-truth record states, and nowhere else (broker-free)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ecocluster.core.types import is_valid_id
from ecocluster.sim import FAULT_KINDS, SimPlan, ground_truth, load_scenario
from ecocluster.sim.faults import MALFORMED_VARIANTS

from .conftest import Columns, collect

SCENARIO = load_scenario("stress-mix")
START, END = SCENARIO.start, SCENARIO.start + SCENARIO.duration  # type: ignore[operator]


@pytest.fixture(scope="module")
def faulty(plan: SimPlan) -> Columns:
    return collect(plan, START, END, scenario=SCENARIO)


@pytest.fixture(scope="module")
def clean(plan: SimPlan) -> Columns:
    return collect(plan, START, END)


@pytest.fixture(scope="module")
def truth(plan: SimPlan) -> dict[str, dict[str, Any]]:
    records = ground_truth(plan, START, scenario=SCENARIO)
    return {r["kind"]: r for r in records}


def _window(ts: np.ndarray, rec: dict[str, Any]) -> np.ndarray:
    return (ts >= rec["start_ms"]) & (ts < rec["end_ms"])


def test_truth_names_every_fault_kind_once_per_batch(
    faulty: Columns, truth: dict[str, dict[str, Any]]
) -> None:
    assert set(truth) == set(FAULT_KINDS)
    in_batches = [r for b in faulty.batches for r in b.truth]
    assert sorted(r["id"] for r in in_batches) == sorted(r["id"] for r in truth.values())
    for rec in truth.values():
        assert rec["start"].endswith("Z") and rec["start_ms"] <= rec["end_ms"]
        assert START.timestamp() * 1000 <= rec["start_ms"] < END.timestamp() * 1000


def test_faults_change_nothing_outside_their_meters(
    faulty: Columns, clean: Columns, truth: dict[str, dict[str, Any]]
) -> None:
    touched = {(r["site"], r["meter"]) for r in truth.values()}
    untouched = np.array([(k.site, k.meter) not in touched for k in faulty.plan.series], dtype=bool)
    a = untouched[faulty.series_idx]
    b = untouched[clean.series_idx]
    assert a.sum() > 30_000
    assert np.array_equal(faulty.values[a], clean.values[b])
    assert np.array_equal(faulty.ts_ms[a], clean.ts_ms[b])


def test_leak_adds_steady_night_flow(faulty: Columns, clean: Columns, truth: dict) -> None:
    rec = truth["leak"]
    ts, flow = faulty.series(rec["site"], rec["meter"], "flow_lpm")
    _, base = clean.series(rec["site"], rec["meter"], "flow_lpm")
    inside = _window(ts, rec)
    assert np.all(flow[inside] >= rec["params"]["rate_lpm"] - 0.01)
    assert np.allclose(flow[inside] - base[inside], rec["params"]["rate_lpm"], atol=0.011)
    assert np.array_equal(flow[~inside], base[~inside])
    assert base[inside].min() == 0.0  # the town hall itself is closed at night


def test_stuck_sensor_repeats_one_value(faulty: Columns, truth: dict) -> None:
    rec = truth["stuck"]
    ts, v = faulty.series(rec["site"], rec["meter"], rec["quantity"])
    inside = _window(ts, rec)
    assert inside.sum() >= 40 and np.unique(v[inside]).size == 1
    assert np.unique(v[~inside][:48]).size > 10


def test_spike_multiplies_one_reading(faulty: Columns, clean: Columns, truth: dict) -> None:
    rec = truth["spike"]
    ts, v = faulty.series(rec["site"], rec["meter"], "power_w")
    _, base = clean.series(rec["site"], rec["meter"], "power_w")
    changed = np.flatnonzero(v != base)
    assert changed.size == 1 and _window(ts[changed], rec).all()
    assert v[changed[0]] == pytest.approx(base[changed[0]] * rec["params"]["factor"], abs=0.3)


def test_no2_episode_exceeds_the_hourly_limit(faulty: Columns, truth: dict) -> None:
    rec = truth["air_episode"]
    ts, no2 = faulty.series(rec["site"], rec["meter"], "no2_ugm3")
    hour = (ts - ts[0]) // 3_600_000
    hourly = np.bincount(hour, weights=no2) / np.bincount(hour)
    hour_start = ts[0] + np.arange(hourly.size) * 3_600_000
    over = hourly > 200
    assert over.sum() >= 2
    assert np.all((hour_start[over] >= rec["start_ms"]) & (hour_start[over] < rec["end_ms"]))


def test_overload_holds_power_above_the_contract(
    faulty: Columns, clean: Columns, truth: dict
) -> None:
    rec = truth["overload"]
    ts, p = faulty.series(rec["site"], rec["meter"], "power_w")
    inside = _window(ts, rec)
    assert inside.sum() == 15 and np.all(p[inside] >= 0.97 * rec["params"]["level_w"])
    assert p[~inside].max() < 60_000
    # the register integrates the overload: 15 min at ~84 kW is ~21 kWh more than usual
    _ts_e, e = faulty.series(rec["site"], rec["meter"], "energy_kwh")
    _, e0 = clean.series(rec["site"], rec["meter"], "energy_kwh")
    extra = (e[-1] - e[0]) - (e0[-1] - e0[0])
    assert 15 < extra < 22


def test_burst_is_a_sudden_jump(faulty: Columns, clean: Columns, truth: dict) -> None:
    rec = truth["burst"]
    ts, f = faulty.series(rec["site"], rec["meter"], "flow_lpm")
    _, f0 = clean.series(rec["site"], rec["meter"], "flow_lpm")
    inside = _window(ts, rec)
    assert np.allclose(f[inside] - f0[inside], rec["params"]["jump_lpm"], atol=0.011)
    first = np.flatnonzero(inside)[0]
    assert f[first] - f[first - 1] > 0.8 * rec["params"]["jump_lpm"]


def test_dropout_silences_the_device_and_changes_its_status(faulty: Columns, truth: dict) -> None:
    rec = truth["dropout"]
    spec_q = next(k for k in faulty.plan.series if (k.site, k.meter) == (rec["site"], rec["meter"]))
    ts, _ = faulty.series(rec["site"], rec["meter"], spec_q.quantity)
    assert not _window(ts, rec).any()
    assert (ts < rec["start_ms"]).any() and (ts >= rec["end_ms"]).any()
    statuses = [
        (e.ts_ms, e.online)
        for b in faulty.batches
        for e in b.events
        if e.kind == "status" and (e.site, e.meter) == (rec["site"], rec["meter"])
    ]
    assert statuses == [(rec["start_ms"], False), (rec["end_ms"], True)]


def test_counter_reset_restarts_the_register(faulty: Columns, truth: dict) -> None:
    rec = truth["counter_reset"]
    ts, e = faulty.series(rec["site"], rec["meter"], "energy_kwh")
    k = int(np.searchsorted(ts, rec["start_ms"]))
    assert e[k - 1] > 1000 and e[k] == rec["params"]["value"]
    assert np.all(np.diff(e[k:]) >= 0) and e[-1] > e[k]


def test_meter_replacement_leaves_a_gap_then_starts_anew(faulty: Columns, truth: dict) -> None:
    rec = truth["meter_replacement"]
    ts, w = faulty.series(rec["site"], rec["meter"], "water_m3")
    assert not _window(ts, rec).any()
    k = int(np.searchsorted(ts, rec["end_ms"]))
    assert w[k - 1] > 100 and w[k] == pytest.approx(rec["params"]["new_initial"])


def test_clock_skew_shifts_device_timestamps(faulty: Columns, truth: dict) -> None:
    rec = truth["clock_skew"]
    rows = np.isin(
        faulty.series_idx,
        [
            i
            for i, k in enumerate(faulty.plan.series)
            if (k.site, k.meter) == (rec["site"], rec["meter"])
        ],
    )
    ts, sent = faulty.ts_ms[rows], faulty.sent_ts_ms[rows]
    inside = _window(ts, rec)
    assert inside.sum() > 10
    assert np.all(sent[inside] - ts[inside] == rec["params"]["offset_s"] * 1000)
    assert np.all(sent[~inside] == ts[~inside])
    assert np.all(faulty.sent_ts_ms[~rows] == faulty.ts_ms[~rows])


def test_malformed_payloads_cycle_through_variants(faulty: Columns, truth: dict) -> None:
    rec = truth["malformed"]
    events = [e for b in faulty.batches for e in b.events if e.kind == "malformed"]
    assert len(events) == 12  # 1 h every 5 min
    assert all(rec["start_ms"] <= e.ts_ms < rec["end_ms"] for e in events)
    assert {e.variant for e in events} == set(MALFORMED_VARIANTS)


def test_hostile_ids_are_not_valid_ids(faulty: Columns, truth: dict) -> None:
    rec = truth["hostile_ids"]
    events = [e for b in faulty.batches for e in b.events if e.kind == "hostile"]
    assert len(events) == 9
    assert all(rec["start_ms"] <= e.ts_ms < rec["end_ms"] for e in events)
    assert all(not (is_valid_id(e.site) and is_valid_id(e.meter)) for e in events)


def test_scenario_errors_are_clear(plan: SimPlan, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ecocluster.sim import ScenarioError, resolve_faults

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfaults:\n  - {kind: meltdown}\n")
    with pytest.raises(ScenarioError, match=r"faults\.0\.kind"):
        load_scenario(bad)
    nowhere = tmp_path / "nowhere.yaml"
    nowhere.write_text("name: y\nfaults:\n  - {kind: leak, match: {category: ski_lift}, at: 1h}\n")
    with pytest.raises(ScenarioError, match="no simulated meter"):
        resolve_faults(load_scenario(nowhere), plan, 0)
