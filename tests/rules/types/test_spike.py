"""`burst` with `back_within`: a spike is a jump that is over again; a load that starts
and stays (a ski lift's motor, an opening ramp) is not a spike."""

from __future__ import annotations

from collections.abc import Callable

from ecocluster.rules.engine import RuleEngine
from tests.rules.conftest import MIN, T0, minutes, run

SPIKE = {
    "name": "spike",
    "type": "burst",
    "quantity": "power_w",
    "window": "1m",
    "baseline": "10m",
    "factor": 3,
    "jump": 2000,
    "back_within": "2m",
    "match": {"site": "s1"},
}


def readings(values: list[float]) -> list[tuple[int, int, float]]:
    return [(0, T0 + i * MIN + 10_000, v) for i, v in enumerate(values)]


def test_a_one_minute_spike_fires_once_after_it_is_over(
    make_engine: Callable[..., RuleEngine],
) -> None:
    engine = make_engine(SPIKE)
    values = [1000.0] * 30 + [5000.0] + [1000.0] * 15
    got = run(engine, readings(values), minutes(*range(1, 46)))
    assert [(m, state) for m, state, _, _ in got] == [(33, "firing"), (34, "resolved")]


def test_a_load_that_starts_and_stays_is_not_a_spike(
    make_engine: Callable[..., RuleEngine],
) -> None:
    ramp = [1000.0] * 20 + [1000.0 + 1500.0 * k for k in range(1, 8)] + [12_000.0] * 20
    assert run(make_engine(SPIKE), readings(ramp), minutes(*range(1, 48))) == []
    sustained = {k: v for k, v in SPIKE.items() if k != "back_within"}
    fired = run(make_engine(sustained), readings(ramp), minutes(*range(1, 48)))
    assert [state for _, state, _, _ in fired][:1] == ["firing"]  # without it, it would
