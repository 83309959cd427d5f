from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ecocluster.core.types import DeviceStatus
from ecocluster.rules.engine import RuleEngine
from tests.rules.conftest import MIN, T0, minutes, run


def per_minute(row: int, values: list[float]) -> list[tuple[int, int, float]]:
    return [(row, T0 + i * MIN + 30_000, v) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("rule", "values", "expected_states"),
    [
        ({"rises": 100}, [10, 20, 150, 150], ["firing"]),  # 150 - 10 over the 4-min window
        ({"rises": 200}, [10, 20, 150, 150], []),
        ({"drops": 50}, [100, 100, 30, 30], ["firing"]),
        ({"drops": 50}, [100, 100, 80, 90], []),
    ],
)
def test_rate(
    make_engine: Callable[..., RuleEngine],
    rule: dict[str, Any],
    values: list[float],
    expected_states: list[str],
) -> None:
    engine = make_engine(
        {
            "name": "r",
            "type": "rate",
            "quantity": "power_w",
            "window": "4m",
            "match": {"site": "s1"},
            **rule,
        }
    )
    got = run(engine, per_minute(0, values), minutes(4))
    assert [s for _, s, _, _ in got] == expected_states


def test_absence_fires_for_meters_that_never_reported_and_per_meter(
    make_engine: Callable[..., RuleEngine],
) -> None:
    engine = make_engine({"name": "quiet", "type": "absence", "after": "10m"})
    # m1 reports every minute; m2 reported once at minute 0; m3 never
    readings = [*per_minute(0, [1.0] * 15), (2, T0 + 1000, 5.0)]
    got = run(engine, readings, minutes(0, 5, 11, 15))
    assert got == [(11, "firing", "s2/m2", "warning"), (11, "firing", "s3/m3", "warning")]


def test_absence_default_after_is_three_meter_intervals(make_cluster: Callable[..., Any]) -> None:
    from ecocluster.core.registry import load_cluster  # noqa: F401 - cluster built by the fixture

    meters = [{"id": "m1", "site": "s1", "quantities": ["power_w"], "interval": "1m"}]
    engine = RuleEngine(make_cluster([{"name": "quiet", "type": "absence"}], meters=meters))
    assert engine.kernels[0].after_ms.tolist() == [180_000]
    got = run(engine, [], minutes(0, 2, 3))
    assert [(m, s) for m, s, _, _ in got] == [(3, "firing")]


def test_absence_fires_at_once_on_last_will_and_clears_on_data(
    make_engine: Callable[..., RuleEngine],
) -> None:
    engine = make_engine(
        {"name": "gone", "type": "absence", "after": "1h", "match": {"site": "s1"}}
    )
    engine.tick(T0)
    engine.set_status(DeviceStatus("s1", "m1", online=False, ts_ms=T0 + 1000))
    got = run(engine, [(0, T0 + 3 * MIN, 1.0)], minutes(2, 4))
    assert got == [(2, "firing", "s1/m1", "warning"), (4, "resolved", "s1/m1", "warning")]


@pytest.mark.parametrize(
    ("values", "tolerance", "expected"),
    [
        ([7.0, 7.0, 7.0, 7.0], 0.0, ["firing"]),
        ([7.0, 7.1, 7.0, 7.0], 0.0, []),
        ([7.0, 7.1, 7.0, 7.0], 0.2, ["firing"]),
        ([7.0, 7.0], 0.0, []),  # fewer than min_readings: unknown
    ],
)
def test_stuck(
    make_engine: Callable[..., RuleEngine],
    values: list[float],
    tolerance: float,
    expected: list[str],
) -> None:
    engine = make_engine(
        {
            "name": "frozen",
            "type": "stuck",
            "quantity": "power_w",
            "window": "4m",
            "tolerance": tolerance,
            "match": {"site": "s1"},
        }
    )
    got = run(engine, per_minute(0, values), minutes(4))
    assert [s for _, s, _, _ in got] == expected
