from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ecocluster.rules.engine import RuleEngine
from tests.rules.conftest import MIN, batch

DAY = 86_400_000
Q = 15 * MIN
DAY0 = 1_700_000_000_000 - 1_700_000_000_000 % DAY  # a UTC midnight


#: A burst rule shared by the burst tests: a 300 l/min jump held 5 min over a 30 min baseline.
BURST = {
    "name": "burst",
    "type": "burst",
    "quantity": "flow_lpm",
    "jump": 300,
    "window": "5m",
    "baseline": "30m",
    "match": {"site": "s1"},
}


def quarter_hours(
    row: int, days: float, value: Callable[[int], float]
) -> list[tuple[int, int, float]]:
    """One reading per 15 min from DAY0 for `days`; value(ts) gives it."""
    return [(row, DAY0 + i * Q + 60_000, value(DAY0 + i * Q)) for i in range(int(days * 96))]


def feed_and_tick(
    engine: RuleEngine, readings: list[tuple[int, int, float]], ticks: list[int]
) -> list[tuple[float, str]]:
    out = []
    readings = sorted(readings, key=lambda r: r[1])
    for now in ticks:
        due = [r for r in readings if r[1] < now]
        readings = [r for r in readings if r[1] >= now]
        if due:
            engine.ingest(batch(engine.cluster, due))
        out += [((t.at_ms - DAY0) / DAY, t.state) for t in engine.tick(now)]
    return out


def night_flow(ts: int, night: float, day: float = 30.0) -> float:
    return night if (ts % DAY) < 6 * 3_600_000 else day


RULE = {
    "name": "leak",
    "type": "night_flow",
    "quantity": "flow_lpm",
    "limit": 2.0,
    "nights": 2,
    "match": {"site": "s1"},
}


def test_night_flow_fires_after_the_second_leaking_night(
    make_engine: Callable[..., RuleEngine],
) -> None:
    engine = make_engine(RULE)
    ticks = [DAY0 + d * DAY + 7 * 3_600_000 for d in range(3)]  # 07:00 each day
    got = feed_and_tick(engine, quarter_hours(1, 3, lambda ts: night_flow(ts, 3.0)), ticks)
    assert got == [(1 + 7 / 24, "firing")]


def test_night_flow_stays_quiet_when_a_night_reaches_the_floor(
    make_engine: Callable[..., RuleEngine],
) -> None:
    engine = make_engine(RULE)
    ticks = [DAY0 + d * DAY + 7 * 3_600_000 for d in range(3)]

    # one quarter hour at 1.0 on night 2 (04:00) breaks the run
    def value(ts: int) -> float:
        return 1.0 if ts - DAY0 > DAY and ts % DAY == 4 * 3_600_000 else night_flow(ts, 3.0)

    assert feed_and_tick(engine, quarter_hours(1, 3, value), ticks) == []


def test_continuous_flow_never_zero_in_a_day(make_engine: Callable[..., RuleEngine]) -> None:
    rule = {
        "name": "never-zero",
        "type": "night_flow",
        "mode": "continuous",
        "quantity": "flow_lpm",
        "limit": 0.5,
        "window": "24h",
    }
    engine = make_engine(rule)
    readings = quarter_hours(1, 1.5, lambda ts: 1.0) + quarter_hours(
        4, 1.5, lambda ts: night_flow(ts, 0.0)
    )
    got = feed_and_tick(engine, readings, [DAY0 + DAY + 3_600_000])
    assert got == [(1 + 1 / 24, "firing")]
    assert (
        engine.kernels[0].targets.keys[engine.kernels[0].state.is_firing.argmax()]
        == "s1/m1/flow_lpm"
    )


def test_burst_fires_on_a_sustained_jump_and_lasts_while_the_flow_stays_up(
    make_engine: Callable[..., RuleEngine],
) -> None:
    engine = make_engine(BURST)
    flow = [100.0] * 40 + [500.0] * 60 + [100.0] * 10
    readings = [(1, DAY0 + i * MIN + 30_000, v) for i, v in enumerate(flow)]
    got = feed_and_tick(engine, readings, [DAY0 + m * MIN for m in range(30, 111)])
    assert [(round(d * 1440), s) for d, s in got] == [(45, "firing"), (101, "resolved")]


def test_burst_ignores_a_one_minute_spike(make_engine: Callable[..., RuleEngine]) -> None:
    engine = make_engine(
        {
            "name": "burst",
            "type": "burst",
            "quantity": "flow_lpm",
            "jump": 300,
            "window": "5m",
            "match": {"site": "s1"},
        }
    )
    flow = [100.0] * 40 + [900.0] + [100.0] * 20
    readings = [(1, DAY0 + i * MIN + 30_000, v) for i, v in enumerate(flow)]
    assert feed_and_tick(engine, readings, [DAY0 + m * MIN for m in range(30, 61)]) == []


def test_anomaly_waits_for_history_then_flags_a_departure(
    make_engine: Callable[..., RuleEngine],
) -> None:
    engine = make_engine(
        {
            "name": "odd",
            "type": "anomaly",
            "quantity": "power_w",
            "z": 4,
            "window": "15m",
            "min_history": "7d",
            "min_effect": 100,  # the default for power is 500 W
            "match": {"site": "s1"},
        }
    )
    rng = np.random.default_rng(1)
    daily = [
        (0, DAY0 + i * Q + 60_000, 100.0 + 50 * ((i // 4) % 24 > 8) + rng.normal(0, 2))
        for i in range(8 * 96)
    ]
    spike = [(0, DAY0 + 8 * DAY + 10 * 3_600_000 + m * MIN, 400.0) for m in range(15)]
    early = feed_and_tick(
        engine, [*daily[:96], (0, DAY0 + DAY + 60000, 400.0)], [DAY0 + DAY + 2 * MIN]
    )
    assert early == []  # a day of history is not enough
    got = feed_and_tick(engine, daily[97:] + spike, [DAY0 + 8 * DAY + 10 * 3_600_000 + 15 * MIN])
    assert [s for _, s in got] == ["firing"]


def test_burst_with_factor_and_jump_needs_both(make_engine: Callable[..., RuleEngine]) -> None:
    rule = {
        "name": "spike",
        "type": "burst",
        "quantity": "power_w",
        "window": "1m",
        "baseline": "10m",
        "factor": 3,
        "jump": 500,
        "match": {"site": "s1"},
    }
    for level, spike, expected in (
        (100.0, 1000.0, ["firing"]),
        (100.0, 550.0, []),
        (1000.0, 2000.0, []),
    ):
        engine = make_engine(rule)
        power = [level] * 12 + [spike]
        readings = [(0, DAY0 + i * MIN + 30_000, v) for i, v in enumerate(power)]
        got = feed_and_tick(engine, readings, [DAY0 + m * MIN for m in range(11, 14)])
        assert [s for _, s in got] == expected, (level, spike)


def test_burst_on_a_meter_reporting_every_five_minutes(
    make_engine: Callable[..., RuleEngine],
) -> None:
    engine = make_engine(BURST)
    flow = [100.0] * 8 + [500.0] * 4  # one reading per 5 min; the jump at minute 40
    readings = [(1, DAY0 + i * 5 * MIN + 30_000, v) for i, v in enumerate(flow)]
    got = feed_and_tick(engine, readings, [DAY0 + m * MIN for m in range(30, 56)])
    assert [(round(d * 1440), s) for d, s in got] == [(41, "firing")]
