"""The anomaly rule on perfectly periodic, noise-free series that should never fire, each
with a departure that must fire (issue 10's four defects, each one a test)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ecocluster.rules.engine import RuleEngine
from tests.rules.conftest import MIN, batch

HOUR = 60 * MIN
DAY = 24 * HOUR
#: A UTC midnight that starts a Monday (2023-11-13); the test territory is in UTC.
MONDAY = 1_699_833_600_000
Reading = tuple[int, int, float]


def rule(**fields: Any) -> dict[str, Any]:
    return {
        "name": "odd",
        "type": "anomaly",
        "quantity": "power_w",
        "z": 4,
        "window": "15m",
        "min_effect": 10,
        "match": {"site": "s1"},
        **fields,
    }


def replay(
    engine: RuleEngine, history: list[Reading], live: list[Reading], ticks: list[int]
) -> list[int]:
    """History in one batch (it only teaches the baseline), then the live readings tick by
    tick; returns the times (ms) at which an alert fired."""
    if history:
        engine.ingest(batch(engine.cluster, history))
    live = sorted(live, key=lambda r: r[1])
    fired, i = [], 0
    for now in ticks:
        j = i
        while j < len(live) and live[j][1] < now:
            j += 1
        if j > i:
            engine.ingest(batch(engine.cluster, live[i:j]))
        i = j
        fired += [t.at_ms for t in engine.tick(now) if t.state == "firing"]
    return fired


def every(start: int, end: int, step: int, value: Callable[[int], float]) -> list[Reading]:
    return [(0, t, value(t)) for t in range(start, end, step)]


def test_hourly_readings_meet_their_own_slot_not_the_previous_hour(
    make_engine: Callable[..., RuleEngine],
) -> None:
    """Defect 1: hourly readings at HH:00 met the previous hour's baseline."""
    engine = make_engine(rule(min_history="1d"))
    alternating = lambda t: 100.0 + 50.0 * ((t // HOUR) % 2)  # noqa: E731
    history = every(MONDAY + 30_000, MONDAY + 28 * DAY, HOUR, alternating)
    day = MONDAY + 28 * DAY  # a Monday
    live = every(day + 30_000, day + DAY, HOUR, alternating)
    live = [(r, t, 400.0 if t // HOUR == day // HOUR + 15 else v) for r, t, v in live]
    fired = replay(engine, history, live, list(range(day + 5 * MIN, day + DAY, 5 * MIN)))
    assert [(t - day) // HOUR for t in fired] == [15]  # only the real departure


def test_opening_ramps_are_learned_at_quarter_hour_resolution(
    make_engine: Callable[..., RuleEngine],
) -> None:
    """Defect 2: one baseline per hour could not learn a ramp or a quarter-hour pulse
    inside the hour (here: a boiler pre-heating 06:00-06:15, then half-hour ramps)."""
    engine = make_engine(rule(min_history="7d", z=4, min_effect=200))

    def depot(t: int) -> float:
        h = (t % DAY) / HOUR
        up = np.clip((h - 7.0) / 0.5, 0.0, 1.0) * np.clip((17.5 - h) / 0.5, 0.0, 1.0)
        return float(1000.0 + 4000.0 * up + 4000.0 * (6.0 <= h < 6.25))

    history = every(MONDAY, MONDAY + 8 * DAY, MIN, depot)
    day = MONDAY + 8 * DAY  # a Tuesday: six working days in every working-day slot
    live = every(day, day + DAY, MIN, depot)
    bad = day + 12 * HOUR
    live = [(r, t, v + 3000.0 if bad <= t < bad + 20 * MIN else v) for r, t, v in live]
    ticks = list(range(day + 5 * HOUR, day + 18 * HOUR + 30 * MIN, MIN))
    fired = replay(engine, history, live, ticks)
    assert len(fired) == 1 and bad < fired[0] <= bad + 10 * MIN


def test_warm_up_counts_samples_not_an_assumed_density(
    make_engine: Callable[..., RuleEngine],
) -> None:
    """Defect 3: an hourly series with min_history 14d waited 8 weeks; 2d acted as 7d."""
    flat = lambda t: 100.0  # noqa: E731
    hourly = make_engine(rule(min_history="14d"))
    history = every(MONDAY + 30_000, MONDAY + 15 * DAY, HOUR, flat)
    day = MONDAY + 15 * DAY  # a Tuesday, 15 days in
    live = [(0, day + 10 * HOUR + 30_000, 300.0)]
    assert replay(hourly, history, live, [day + 10 * HOUR + 5 * MIN]) != []

    short = make_engine(rule(min_history="2d"))
    history = every(MONDAY, MONDAY + 3 * DAY, 15 * MIN, flat)
    day = MONDAY + 3 * DAY  # Thursday: three working days in every slot
    live = [(0, day + 10 * HOUR + 60_000, 300.0)]
    assert replay(short, history, live, [day + 10 * HOUR + 5 * MIN]) != []

    too_short = make_engine(rule(min_history="2d"))
    history = every(MONDAY, MONDAY + DAY, 15 * MIN, flat)
    live = [(0, MONDAY + DAY + 10 * HOUR + 60_000, 300.0)]
    assert replay(too_short, history, live, [MONDAY + DAY + 10 * HOUR + 5 * MIN]) == []


def test_a_history_of_exact_zeros_is_not_a_zero_spread_trap(
    make_engine: Callable[..., RuleEngine],
) -> None:
    """Defect 4: σ = 0 made any non-zero value an infinite z. The default effect size for
    power (500 W) decides instead: a wobble is nothing, a real load is an anomaly."""
    engine = make_engine(rule(min_history="7d", min_effect=None))
    zeros = every(MONDAY, MONDAY + 14 * DAY, 15 * MIN, lambda t: 0.0)
    day = MONDAY + 14 * DAY
    wobble = [(0, day + 10 * HOUR + 60_000, 0.5)]
    assert replay(engine, zeros, wobble, [day + 10 * HOUR + 5 * MIN]) == []
    load = [(0, day + 11 * HOUR + 60_000, 2000.0)]
    assert replay(engine, [], load, [day + 11 * HOUR + 5 * MIN]) != []


def test_a_holiday_is_compared_with_sundays(make_cluster: Callable[..., Any]) -> None:
    """The territory's calendar: Europe/Rome's 1 May is a Sunday-like day, so an office
    that is closed then is not an anomaly."""
    cluster = make_cluster(
        [rule(min_history="14d", min_effect=100)],
        territory={"id": "t", "name": "T", "timezone": "Europe/Rome"},
    )
    engine = RuleEngine(cluster)

    def office(t: int) -> float:
        from datetime import datetime
        from zoneinfo import ZoneInfo

        local = datetime.fromtimestamp(t / 1000, ZoneInfo("Europe/Rome"))
        is_open = local.weekday() < 5 and (local.month, local.day) != (5, 1)
        return 1000.0 if is_open and 8 <= local.hour < 18 else 100.0

    start = 1_775_426_400_000  # Monday 2026-04-06 00:00 Rome (Easter Monday: Sunday-like)
    first_may = 1_777_586_400_000  # Friday 2026-05-01 00:00 Rome
    history = every(start, first_may, 15 * MIN, office)
    live = every(first_may, first_may + DAY, 15 * MIN, office)
    ticks = list(range(first_may + 5 * MIN, first_may + DAY, 15 * MIN))
    assert replay(engine, history, live, ticks) == []
    monday = first_may + 3 * DAY  # Monday 4 May: open again, and a fault at 12:00
    live = every(monday, monday + DAY, 15 * MIN, office)
    live = [(r, t, 5000.0 if t == monday + 12 * HOUR else v) for r, t, v in live]
    ticks = list(range(monday + 5 * MIN, monday + DAY, 15 * MIN))
    assert [(t - monday) // HOUR for t in replay(engine, [], live, ticks)] == [12]


def test_season_none_follows_a_running_level(make_engine: Callable[..., RuleEngine]) -> None:
    """Without a weekly rhythm: a robust running level, warm after `min_samples`."""
    engine = make_engine(
        rule(season="none", min_history="1h", min_samples=30, window="5m", learn="2h")
    )
    live = every(MONDAY, MONDAY + 3 * HOUR, MIN, lambda t: 50.0 + (t // MIN) % 3)
    jump = MONDAY + 2 * HOUR
    live = [(r, t, v + 80.0 if jump <= t < jump + 10 * MIN else v) for r, t, v in live]
    fired = replay(engine, [], live, list(range(MONDAY + MIN, MONDAY + 3 * HOUR, MIN)))
    assert len(fired) == 1 and jump < fired[0] <= jump + 3 * MIN
