"""The core path: transition → alert → route → group_wait → outbox → Apprise → a real HTTP
receiver and a real SMTP server; acknowledgement stops escalation."""

from __future__ import annotations

import json

from ecocluster.alerts.clock import ManualClock
from tests.alerts.conftest import T0, transition
from tests.services import HttpReceiver, SmtpServer


def _bodies(receiver: HttpReceiver, path: str) -> list[dict]:
    return [json.loads(r.body) for r in receiver.requests if r.path == path]


async def test_firing_waits_group_wait_then_reaches_each_route(
    make_cluster, make_service, clock: ManualClock, receiver: HttpReceiver
) -> None:
    svc = await make_service(make_cluster())
    await svc.on_transitions([transition()])
    await svc.settle()
    assert receiver.requests == []  # inside group_wait (10s for walker, 30s default for rossi)
    clock.advance(10_000)
    await svc.settle()
    walker = _bodies(receiver, "/walker")
    assert len(walker) == 1 and "power-overload" in walker[0]["message"]
    assert _bodies(receiver, "/rossi") == []
    clock.advance(20_000)
    await svc.settle()
    (rossi,) = _bodies(receiver, "/rossi")
    (alert,) = await svc.list_alerts(state="firing")
    assert (
        f"ACK {alert.code}" in rossi["message"] and "https://eco.example.org/a/" in rossi["message"]
    )
    detail = await svc.get_alert(alert.code)
    events = [e.event for e in detail.audit]
    assert events[:2] == ["fired", "grouped"] and events.count("delivered") == 2
    assert set(alert.recipients) == {"rossi", "walker"}


async def test_duplicate_transitions_make_one_alert(make_cluster, make_service, clock) -> None:
    svc = await make_service(make_cluster())
    await svc.on_transitions([transition(), transition()])
    await svc.on_transitions([transition()])
    assert len(await svc.list_alerts()) == 1


async def test_escalation_climbs_until_acked(
    make_cluster, make_service, clock: ManualClock, receiver: HttpReceiver
) -> None:
    svc = await make_service(make_cluster())
    await svc.on_transitions([transition()])
    clock.advance(30_000)
    await svc.settle()
    clock.set(T0 + 10 * 60_000)
    await svc.settle()
    assert len(_bodies(receiver, "/duty")) == 1
    (alert,) = await svc.list_alerts()
    result = await svc.ack(alert.code, by="duty", comment="on my way", channel="api")
    assert result.changed and result.alert.acked_by == "duty"
    again = await svc.ack(alert.code, by="duty")
    assert not again.changed
    clock.set(T0 + 31 * 60_000)
    await svc.settle()
    assert _bodies(receiver, "/boss") == []  # the ack stopped the climb
    clock.set(T0 + 6 * 3_600_000)
    await svc.settle()
    assert len(_bodies(receiver, "/rossi")) == 1  # and the 4h repeats
    events = [e.event for e in (await svc.get_alert(alert.id)).audit]
    assert "escalated" in events and events.count("acked") == 1


async def test_resolved_inside_group_wait_still_tells_the_route_at_once(
    make_cluster, make_service, clock: ManualClock, receiver: HttpReceiver
) -> None:
    svc = await make_service(make_cluster())
    await svc.on_transitions([transition()])
    clock.advance(2_000)
    await svc.on_transitions([transition("resolved", at_ms=clock.now_ms())])
    await svc.settle()
    paths = sorted(r.path for r in receiver.requests)
    assert paths == ["/rossi", "/walker"]
    assert all(
        "RESOLVED" in json.loads(r.body)["message"] or "RIENTRATO" in json.loads(r.body)["message"]
        for r in receiver.requests
    )


async def test_rich_email_reaches_smtp_with_inline_chart(
    make_cluster, make_service, clock: ManualClock, receiver: HttpReceiver, smtp: SmtpServer
) -> None:
    receiver.status = 500  # walker's webhook is down: after the retries, e-mail takes over
    svc = await make_service(make_cluster())
    await svc.on_transitions([transition()])
    for _ in range(8):
        clock.advance(10_000)
        await svc.settle()
    mails = smtp.wait_for(1, timeout_s=5)
    assert mails, "the failover channel (mailto) received nothing"
    mail = mails[0]
    assert "walker@example.org" in mail.rcpt_tos
    types = [p.get_content_type() for p in mail.message.walk()]
    assert "text/html" in types and "text/plain" in types and "image/png" in types
    (alert,) = await svc.list_alerts()
    events = [e.event for e in (await svc.get_alert(alert.id)).audit]
    assert events.count("retried") >= 2 and "failover" in events and "delivered" in events
