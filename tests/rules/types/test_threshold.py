from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ecocluster.rules.engine import RuleEngine
from tests.rules.conftest import MIN, T0, batch, minutes, run

P = {"name": "r", "type": "threshold", "quantity": "power_w"}


def steps(row: int, values: list[float]) -> list[tuple[int, int, float]]:
    """One reading per minute (at +30 s), minute i → values[i]."""
    return [(row, T0 + i * MIN + 30_000, v) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("rule", "values", "expected"),
    [
        (
            {"above": 100},
            [50, 150, 150, 90],
            [(2, "firing", "warning"), (4, "resolved", "warning")],
        ),
        ({"below": 10}, [50, 5, 50], [(2, "firing", "warning"), (3, "resolved", "warning")]),
        (
            {"above": 100, "below": 10},
            [50, 150, 5, 50],
            [(2, "firing", "warning"), (4, "resolved", "warning")],
        ),
        (
            {"above": {"warning": 100, "critical": 200}},
            [150, 250, 150, 50],
            [
                (1, "firing", "warning"),
                (2, "firing", "critical"),
                (3, "firing", "warning"),
                (4, "resolved", "warning"),
            ],
        ),
        # hysteresis: 95 is under the limit but above `clear`
        (
            {"above": 100, "clear": 80},
            [150, 95, 95, 70],
            [(1, "firing", "warning"), (4, "resolved", "warning")],
        ),
        (
            {"above": 100, "for": "2m"},
            [150, 150, 150, 150],
            [(1, "pending", "warning"), (3, "firing", "warning")],
        ),
        ({"above": 100, "severity": "critical"}, [150], [(1, "firing", "critical")]),
    ],
)
def test_single_series(
    make_engine: Callable[..., RuleEngine],
    rule: dict[str, Any],
    values: list[float],
    expected: list[tuple[int, str, str]],
) -> None:
    engine = make_engine({**P, **rule, "match": {"site": "s1"}})
    got = run(engine, steps(0, values), minutes(*range(1, len(values) + 1)))
    assert [(m, s, sev) for m, s, _, sev in got] == expected


def test_window_mean_and_consecutive_windows(make_engine: Callable[..., RuleEngine]) -> None:
    # 2-minute means: [100, 200 | 300, 100] → means 150, 200; consecutive 2 windows > 120
    engine = make_engine(
        {**P, "above": 120, "window": "2m", "consecutive": 2, "match": {"site": "s1"}}
    )
    got = run(engine, steps(0, [100, 200, 300, 100]), minutes(2, 4))
    assert got == [(4, "firing", "s1/m1/power_w", "warning")]
    engine = make_engine(
        {**P, "above": 160, "window": "2m", "consecutive": 2, "match": {"site": "s1"}}
    )
    assert run(engine, steps(0, [100, 200, 300, 100]), minutes(2, 4)) == []


def test_min_coverage_makes_a_sparse_window_unknown(make_engine: Callable[..., RuleEngine]) -> None:
    engine = make_engine(
        {**P, "above": 10, "window": "4m", "min_coverage": 0.75, "match": {"site": "s1"}}
    )
    assert run(engine, steps(0, [50, 50]), minutes(4)) == []  # 2 of 4 buckets
    engine = make_engine(
        {**P, "above": 10, "window": "4m", "min_coverage": 0.75, "match": {"site": "s1"}}
    )
    assert run(engine, steps(0, [50, 50, 50]), minutes(4)) == [
        (4, "firing", "s1/m1/power_w", "warning")
    ]


def test_stale_latest_value_is_unknown_and_holds(make_engine: Callable[..., RuleEngine]) -> None:
    engine = make_engine({**P, "above": 100, "stale": "5m", "match": {"site": "s1"}})
    got = run(engine, steps(0, [150]), minutes(1, 20))
    assert got == [(1, "firing", "s1/m1/power_w", "warning")]  # no data is not "resolved"


@pytest.mark.parametrize(
    ("scope", "aggregate", "expected"),
    [
        # power now: s1 600, s2 300, s3 50 → org o1 = 900, territory = 950
        ("site", "sum", []),
        ("org", "sum", [(1, "firing", "o1", "power_w")]),
        ("territory", "sum", [(1, "firing", "", "power_w")]),
        ("territory", "mean", []),
    ],
)
def test_aggregate_scopes(
    make_engine: Callable[..., RuleEngine],
    scope: str,
    aggregate: str,
    expected: list[tuple[int, str, str, str]],
) -> None:
    engine = make_engine({**P, "above": 800, "scope": scope, "aggregate": aggregate})
    readings = [(0, T0 + 1000, 600.0), (2, T0 + 1000, 300.0), (3, T0 + 1000, 50.0)]
    engine.ingest(batch(engine.cluster, readings))
    got = [
        ((t.at_ms - T0) // MIN, t.state, t.labels.get("org", ""), t.labels["quantity"])
        for t in engine.tick(T0 + MIN)
    ]
    assert got == expected


def test_above_contracted_uses_each_targets_contract(
    make_engine: Callable[..., RuleEngine],
) -> None:
    # s1 contract 1000, s2 500, s3 none (never fires); org o1: 1600 W > 1500 W
    engine = make_engine({**P, "above": "contracted"})
    readings = [(0, T0, 1000.0), (2, T0, 600.0), (3, T0, 1e9)]
    got = run(engine, readings, minutes(1))
    assert [k for _, _, k, _ in got] == ["s2/m2/power_w"]
    engine = make_engine({**P, "above": "contracted", "scope": "org"})
    got = run(engine, readings, minutes(1))
    assert got == [(1, "firing", "power_w", "warning")]
    assert engine.kernels[0].state.threshold.tolist()[0] == 1500.0
