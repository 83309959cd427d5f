"""Routing, grouping, repeats, silences, inhibition, storm folding, rotations and
escalation as timelines on a hand-driven clock, delivered to a real HTTP receiver."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from ecocluster.alerts.oncall import on_duty
from ecocluster.alerts.routing import build_tree, match_routes
from ecocluster.core.alerting import Route, Schedule
from ecocluster.core.types import Severity
from tests.alerts.conftest import T0, transition
from tests.services import HttpReceiver


def _paths(receiver: HttpReceiver) -> list[str]:
    return [r.path for r in receiver.requests]


def _messages(receiver: HttpReceiver, path: str) -> list[str]:
    return [json.loads(r.body)["message"] for r in receiver.requests if r.path == path]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"severity": "critical", "org": "hotel", "site": "lago"}, ["root.0", "root.1.0"]),
        ({"severity": "warning", "org": "hotel", "site": "lago"}, ["root.1.0"]),
        ({"severity": "warning", "org": "hotel", "site": "other"}, ["root.1"]),
        ({"severity": "info", "org": "parco", "site": "x"}, ["root.2"]),
        ({"severity": "warning", "org": "parco", "site": "x"}, ["root"]),
    ],
)
def test_routing_tree_first_match_continue_children_regex_negation(labels, expected) -> None:
    routes = [
        Route.model_validate(
            {"match": {"severity": "critical"}, "notify": ["a"], "continue": True}
        ),
        Route.model_validate(
            {
                "matchers": ["org=hotel"],
                "notify": ["b"],
                "group_wait": "5s",
                "routes": [{"matchers": ["site=~la.*"], "repeat_interval": "1h"}],
            }
        ),
        Route.model_validate({"matchers": ["severity!~warning|critical"], "notify": ["c"]}),
    ]
    tree = build_tree(routes)
    found = match_routes(tree, labels)
    assert [n.key for n in found] == expected
    child = next((n for n in found if n.key == "root.1.0"), None)
    if child is not None:  # inherits notify and group_wait, overrides repeat
        assert child.opts.notify == ("b",) and child.opts.group_wait_ms == 5000
        assert (
            child.opts.repeat_interval_ms == 3_600_000 and child.opts.group_interval_ms == 300_000
        )


async def test_grouping_and_repeat(make_cluster, make_service, clock, receiver) -> None:
    svc = await make_service(
        make_cluster("routes:\n  - {notify: [duty], group_by: [rule], repeat_interval: 1h}\n")
    )
    await svc.on_transitions(
        [transition(meter="em-01"), transition(site="sede", org="parco", meter="em-02")]
    )
    clock.advance(30_000)
    await svc.settle()
    assert len(_messages(receiver, "/duty")) == 1  # one group (by rule), both alerts inside
    assert _messages(receiver, "/duty")[0].count("[") >= 2
    clock.advance(5 * 60_000)
    await svc.on_transitions([transition(meter="em-03", at_ms=clock.now_ms())])
    await svc.settle()
    assert len(_messages(receiver, "/duty")) == 2  # group_interval passed: the new one goes now
    clock.advance(30 * 60_000)
    await svc.settle()
    assert len(_messages(receiver, "/duty")) == 2  # no repeat before 1h
    clock.advance(40 * 60_000)
    await svc.settle()
    assert len(_messages(receiver, "/duty")) == 3  # repeat of the still-firing group


async def test_silence_mutes_then_resolved_notice_still_goes(
    make_cluster, make_service, clock, receiver
) -> None:
    svc = await make_service(make_cluster("routes:\n  - {notify: [duty], group_wait: 0s}\n"))
    silence = await svc.add_silence(
        ["site=lago"], author="rossi", reason="boiler maintenance", end_on_resolve=True
    )
    await svc.on_transitions([transition()])
    await svc.settle()
    assert receiver.requests == []
    (alert,) = await svc.list_alerts()
    assert alert.silenced_by == silence.id
    clock.advance(60_000)
    await svc.on_transitions([transition("resolved", at_ms=clock.now_ms())])
    await svc.settle()
    (message,) = _messages(receiver, "/duty")
    assert "RESOLVED" in message
    (ended,) = await svc.list_silences()
    assert ended.expired_by == "recovery"  # ended on recovery
    events = [e.event for e in (await svc.get_alert(alert.id)).audit]
    assert "silenced" in events and "resolved" in events


async def test_inhibition_offline_meter_and_critical_over_warning(
    make_cluster, make_service, clock, receiver
) -> None:
    svc = await make_service(
        make_cluster("routes:\n  - {notify: [duty], group_wait: 0s, group_by: ['...']}\n")
    )
    await svc.on_transitions(
        [
            transition(rule="data-absence", severity=Severity.WARNING),
            transition(rule="power-overload"),  # same meter: inhibited by its absence
            transition(
                rule="power-high",
                severity=Severity.WARNING,
                site="sede",
                org="parco",
                meter="em-02",
            ),
            transition(rule="power-overload", site="sede", org="parco", meter="em-02"),
        ]
    )
    await svc.settle()
    messages = " ".join(_messages(receiver, "/duty"))
    alerts = {(a.rule, a.labels["site"]): a for a in await svc.list_alerts()}
    assert alerts[("power-overload", "lago")].inhibited
    assert alerts[("power-high", "sede")].inhibited
    assert "data-absence" in messages and "power-high" not in messages
    assert len(receiver.requests) == 2


async def test_storm_is_folded_into_one_summary(
    make_cluster, make_service, settings, clock, receiver
) -> None:
    svc = await make_service(
        make_cluster("routes:\n  - {notify: [duty], group_wait: 0s, group_by: ['...']}\n"),
        settings=settings.model_copy(update={"alert_storm_limit": 3}),
    )
    await svc.on_transitions([transition(meter=f"m{i:02d}") for i in range(12)])
    await svc.settle()
    assert len(receiver.requests) == 3
    clock.advance(61_000)
    await svc.settle()
    assert len(receiver.requests) == 4
    summary = json.loads(receiver.requests[-1].body)["message"]
    alerts = await svc.list_alerts()
    folded = [a for a in alerts if a.code in summary]
    assert len(folded) == 9  # nothing lost: every alert not sent alone is in the summary


def test_rotation_hands_off_in_local_time_across_dst_with_overrides() -> None:
    schedule = Schedule.model_validate(
        {
            "name": "park",
            "rotation": "daily",
            "handoff": "08:00",
            "start": date(2026, 3, 27),
            "members": ["a", "b"],
            "overrides": [{"start": "2026-03-30 12:00", "end": "2026-03-30 14:00", "contact": "z"}],
        }
    )
    # DST starts 2026-03-29 in Rome: 08:00 local is 07:00 UTC before, 06:00 UTC after
    before = on_duty(schedule, datetime(2026, 3, 28, 6, 59, tzinfo=UTC), "Europe/Rome")
    after = on_duty(schedule, datetime(2026, 3, 28, 7, 0, tzinfo=UTC), "Europe/Rome")
    assert (before.contact, after.contact) == ("a", "b")
    summer = on_duty(schedule, datetime(2026, 3, 30, 6, 0, tzinfo=UTC), "Europe/Rome")
    assert summer.contact == "b" and summer.since.hour == 8 and summer.until.hour == 12
    assert (
        on_duty(schedule, datetime(2026, 3, 30, 10, 30, tzinfo=UTC), "Europe/Rome").contact == "z"
    )


async def test_schedule_and_mute_interval_in_routes_and_ack_timeout(
    make_cluster, make_service, clock, receiver
) -> None:
    extra = """
    schedules:
      - {name: oncall, rotation: weekly, handoff: "09:00", handoff_day: monday, start: 2025-12-29,
         members: [duty, boss]}
    time_intervals:
      - {name: nights, time_intervals: [{times: [{start_time: "22:00", end_time: "24:00"}]}]}
    routes:
      - {notify: [oncall], group_wait: 0s, mute_time_intervals: [nights], escalate: chain}
    escalations:
      - {name: chain, ack_timeout: 1h, steps: [{after: 10m, notify: [rossi]}]}
    """
    svc = await make_service(make_cluster(extra))
    await svc.on_transitions([transition()])
    await svc.settle()
    assert _paths(receiver) == ["/duty"]  # the week of 2025-12-29: duty is on call
    (alert,) = await svc.list_alerts()
    await svc.ack(alert.id, by="duty")
    clock.advance(30 * 60_000)
    await svc.settle()
    assert _paths(receiver) == ["/duty"]  # acked: no escalation
    clock.advance(31 * 60_000)  # the ack lapses after 1h while still firing
    await svc.settle()
    clock.advance(10 * 60_000)
    await svc.settle()
    assert "/rossi" in _paths(receiver)
    events = [e.event for e in (await svc.get_alert(alert.id)).audit]
    assert "ack_expired" in events and "escalated" in events
    # at 22:30 local the route is muted
    clock.set(T0 + 13 * 3_600_000 + 30 * 60_000)
    await svc.on_transitions([transition(meter="em-09", at_ms=clock.now_ms())])
    await svc.settle()
    assert _paths(receiver).count("/duty") == 1
