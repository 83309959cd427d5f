from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from ecocluster.core.registry import Cluster
from ecocluster.core.types import ReadingBatch, SeriesKey
from ecocluster.core.yamlsource import ConfigError
from ecocluster.rules.engine import RuleEngine
from tests.rules.conftest import MIN, T0, batch, minutes, run

HOT = {"name": "hot", "type": "threshold", "quantity": "power_w", "above": 100, "for": "10m"}
COLD = {"name": "cold", "type": "threshold", "quantity": "power_w", "below": 0}


def test_reload_keeps_state_of_unchanged_rules(make_cluster: Callable[..., Cluster]) -> None:
    engine = RuleEngine(make_cluster([HOT, COLD]))
    assert run(engine, [(0, T0, 150.0)], minutes(1)) == [(1, "pending", "s1/m1/power_w", "warning")]
    report = engine.reload(make_cluster([HOT, {**COLD, "below": -5}, {**COLD, "name": "new"}]))
    assert (report.kept, report.changed, report.added, report.removed) == (
        ["hot"],
        ["cold"],
        ["new"],
        [],
    )
    # the pending `for` kept counting from minute 1 across the reload
    got = run(engine, [(0, T0 + 5 * MIN, 150.0)], minutes(6, 11))
    assert got == [(11, "firing", "s1/m1/power_w", "warning")]


def test_a_bad_reload_is_refused_and_the_old_rules_keep_running(
    make_cluster: Callable[..., Cluster],
) -> None:
    engine = RuleEngine(make_cluster([HOT]))
    run(engine, [(0, T0, 150.0)], minutes(1))
    with pytest.raises(ConfigError, match=r"rules\[0\]\.abov: unknown field"):
        engine.reload(
            make_cluster([{"name": "hot", "type": "threshold", "quantity": "power_w", "abov": 1}])
        )
    assert [k.spec.name for k in engine.kernels] == ["hot"]
    assert run(engine, [(0, T0 + 5 * MIN, 150.0)], minutes(11)) == [
        (11, "firing", "s1/m1/power_w", "warning")
    ]


def test_removing_a_firing_rule_resolves_its_alerts(make_cluster: Callable[..., Cluster]) -> None:
    engine = RuleEngine(make_cluster([COLD]))
    run(engine, [(0, T0, -3.0)], minutes(1))
    report = engine.reload(make_cluster([HOT]))
    assert report.removed == ["cold"]
    assert [(t.rule, t.state, t.labels["site"]) for t in report.transitions] == [
        ("cold", "resolved", "s1")
    ]


def test_snapshot_restores_pending_and_firing_after_a_restart(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster([HOT, COLD])
    engine = RuleEngine(cluster)
    run(engine, [(0, T0, 150.0), (2, T0, -1.0)], minutes(1))
    saved = engine.snapshot()
    restarted = RuleEngine(cluster)
    assert restarted.restore(saved) == 2
    # no data yet after the restart: state held; the `for` of `hot` counts from minute 1
    got = run(restarted, [(0, T0 + 10 * MIN, 150.0)], minutes(11))
    assert got == [(11, "firing", "s1/m1/power_w", "warning")]
    assert restarted.kernels[1].state.is_firing.tolist() == [False, True, False]


def test_a_changed_rule_does_not_inherit_its_old_state(
    make_cluster: Callable[..., Cluster],
) -> None:
    engine = RuleEngine(make_cluster([COLD]))
    run(engine, [(0, T0, -3.0)], minutes(1))
    assert RuleEngine(make_cluster([{**COLD, "below": -10}])).restore(engine.snapshot()) == 0


@pytest.mark.parametrize(
    ("active", "expected"),
    [
        ([{"from": "00:00", "to": "00:03"}], [(1, "firing"), (3, "resolved")]),
        ([{"days": ["sat"]}], []),
        (None, [(1, "firing")]),
    ],
)
def test_active_schedule(
    make_engine: Callable[..., RuleEngine], active: Any, expected: list[tuple[int, str]]
) -> None:
    # T0 is 2023-11-14 22:00 UTC, a Tuesday: shift to midnight for the time ranges
    midnight = T0 - T0 % 86_400_000 + 86_400_000
    engine = make_engine({**COLD, "active": active})
    engine.ingest(batch(engine.cluster, [(0, midnight, -1.0)]))
    got = []
    for m in range(1, 5):
        got += [(m, t.state) for t in engine.tick(midnight + m * MIN)]
    assert got == expected


def test_batches_with_their_own_series_table_are_mapped(
    make_engine: Callable[..., RuleEngine],
) -> None:
    engine = make_engine(COLD)
    own = [SeriesKey("o2", "s3", "m3", "power_w"), SeriesKey("o1", "s1", "m1", "power_w")]
    b = ReadingBatch(
        own,
        np.array([0, 1, 0]),
        np.array([T0, T0, T0 + 1]),
        np.array([-1.0, 5.0, -2.0]),
        np.full(3, np.nan),
    )
    engine.ingest(b)
    # engine rows are quantity-major: s1, s2, s3 power_w, then s1, s3 flow_lpm
    assert [engine.table.keys[r].site for r in range(5)] == ["s1", "s2", "s3", "s1", "s3"]
    assert engine.window.last_value[[0, 2]].tolist() == [5.0, -2.0]
    got = [(t.labels["site"], t.state) for t in engine.tick(T0 + MIN)]
    assert got == [("s3", "firing")]


def test_unknown_series_grow_the_window(make_engine: Callable[..., RuleEngine]) -> None:
    engine = make_engine(COLD)
    b = ReadingBatch(
        [SeriesKey("o9", "s9", "x", "power_w")],
        np.array([0]),
        np.array([T0]),
        np.array([1.0]),
        np.full(1, np.nan),
    )
    engine.ingest(b)
    assert engine.window.n_series == 6 and engine.window.last_value[5] == 1.0
