"""Two alert workers on one real PostgreSQL, in-process and on a hand-driven clock: the
timer lease and its fencing, idempotent transitions, outbox leases."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from sqlalchemy import create_engine, select, text

from ecocluster.alerts.engine import escalate
from ecocluster.alerts.records import AlertRecord
from ecocluster.alerts.store import schema as t
from tests.alerts.conftest import transition

TEN_MIN = 600_000


@pytest.fixture
def db_url(postgres) -> str:  # type: ignore[override]
    return postgres.create_database(f"ha{uuid.uuid4().hex[:12]}")


@pytest.fixture
def worker_settings(settings):
    return lambda name: settings.model_copy(update={"alert_worker_id": name})


def _rows(db_url: str, sql: str, **params: object) -> list[tuple]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params).all()]
    finally:
        engine.dispose()


def _escalated_steps(db_url: str, alert_id: int) -> list[int]:
    rows = _rows(
        db_url,
        "SELECT detail FROM audit WHERE alert_id = :a AND event = 'escalated' ORDER BY id",
        a=alert_id,
    )
    return [json.loads(d)["step"] for (d,) in rows]


async def test_one_leader_and_a_stale_leader_is_fenced(
    make_cluster, make_service, worker_settings, clock, db_url
) -> None:
    cluster = make_cluster()
    a = await make_service(cluster, settings=worker_settings("wa"))
    b = await make_service(cluster, settings=worker_settings("wb"))
    assert a.status()["leader"] is True and b.status()["leader"] is False
    assert a.metrics.leader._value.get() == 1 and b.metrics.leader._value.get() == 0
    assert not await b.refresh_leadership()  # held by a
    await b.on_transitions([transition()])
    (alert,) = await b.list_alerts()
    clock.advance(TEN_MIN + 1_000)  # escalation step 1 is due
    assert await b.process_due() == 0  # a follower never runs timers

    # a stalls: PostgreSQL ends its lease session (as idle_session_timeout would) …
    killed = _rows(
        db_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name LIKE 'ecocluster-alerts-lease wa:%'",
    )
    assert killed == [(True,)]
    for _ in range(50):  # the server drops the lock as the session ends
        if await b.refresh_leadership():
            break
        await asyncio.sleep(0.05)
    assert b.status()["leader"] is True and b.status()["term"] == 2
    # … and a, waking up still believing it leads, tries the due step: fenced
    assert a.leader is not None and a.leader.leads
    assert await a.process_due() == 0
    assert a.status()["leader"] is False and a.metrics.fenced._value.get() == 1
    assert _escalated_steps(db_url, alert.id) == []

    assert await b.process_due() >= 1
    assert await b.process_due() == 0
    assert _escalated_steps(db_url, alert.id) == [1]
    duty = _rows(db_url, "SELECT count(*) FROM outbox WHERE kind = 'escalation'")
    assert duty == [(1,)]


async def test_a_stale_reader_cannot_fire_a_step_twice(
    make_cluster, make_service, worker_settings, clock, db_url
) -> None:
    """The row-level fence: `UPDATE … WHERE esc_step = :expected`."""
    svc = await make_service(make_cluster(), settings=worker_settings("wa"))
    await svc.on_transitions([transition()])
    clock.advance(TEN_MIN + 1_000)
    assert svc.db is not None and svc.ctx is not None
    stale = AlertRecord.from_row(await svc.db.run(lambda c: c.execute(select(t.alerts)).one()))
    assert stale.escalation_step == 0
    await svc.process_due()  # the leader fires step 1
    fired = await svc.db.run(escalate, svc.ctx, stale, clock.now_ms())  # a stale copy of it
    assert fired is False
    assert _escalated_steps(db_url, stale.id) == [1]
    assert _rows(db_url, "SELECT esc_step FROM alerts") == [(1,)]
    clock.advance(20 * 60_000)  # step 2 is still fired, once, on time
    await svc.process_due()
    assert _escalated_steps(db_url, stale.id) == [1, 2]


async def test_the_same_transitions_from_two_workers_apply_once(
    make_cluster, make_service, worker_settings, clock, db_url
) -> None:
    """Both workers receive every transition (MQTT 3.1.1): concurrent and replayed copies
    change nothing the second time."""
    cluster = make_cluster("routes:\n  - {notify: [duty], group_wait: 0s, group_by: ['...']}\n")
    a = await make_service(cluster, settings=worker_settings("wa"))
    b = await make_service(cluster, settings=worker_settings("wb"))
    t0 = clock.now_ms()
    fire = [transition(meter=f"m{i:02d}", at_ms=t0) for i in range(40)]
    await asyncio.gather(a.on_transitions(fire), b.on_transitions(fire))
    clock.advance(60_000)
    resolve = [transition("resolved", meter=f"m{i:02d}", at_ms=t0 + 60_000) for i in range(40)]
    await asyncio.gather(a.on_transitions(resolve), b.on_transitions(resolve))
    await b.on_transitions(fire)  # a late replay of the older firing: stale, ignored
    alerts = await a.list_alerts(limit=1000)
    assert len(alerts) == 40 and {x.state for x in alerts} == {"resolved"}
    assert {x.fired_count for x in alerts} == {1}
    events = _rows(db_url, "SELECT event, count(*) FROM audit GROUP BY event")
    assert dict(events)["fired"] == 40 and dict(events)["resolved"] == 40
    clock.advance(60_000)  # a genuinely new firing still fires
    await b.on_transitions([transition(meter="m00", at_ms=t0 + 120_000)])
    m00 = [x for x in await a.list_alerts(limit=1000) if x.labels["meter"] == "m00"]
    assert [(x.state, x.fired_count) for x in m00] == [("firing", 2)]
    assert dict(_rows(db_url, "SELECT event, count(*) FROM audit GROUP BY event"))["fired"] == 41


async def test_a_leased_row_waits_for_its_lease_and_a_late_outcome_is_refused(
    make_cluster, make_service, worker_settings, clock, receiver, db_url
) -> None:
    cluster = make_cluster("routes:\n  - {notify: [duty], group_wait: 0s, group_by: ['...']}\n")
    a = await make_service(cluster, settings=worker_settings("wa"))
    b = await make_service(cluster, settings=worker_settings("wb"))
    await a.on_transitions([transition()])
    await a.process_due()
    assert a.dispatcher is not None and b.dispatcher is not None
    (job,) = await a.db.run(a.dispatcher._claim, clock.now_ms())  # a claims, then stalls
    assert _rows(db_url, "SELECT claimed_by FROM outbox") == [(a.owner,)]
    assert await b.dispatch_due() == 0  # leased to a
    clock.advance(job.lease_ms - clock.now_ms() + 1)  # the lease runs out
    (taken,) = await b.db.run(b.dispatcher._claim, clock.now_ms())
    assert _rows(db_url, "SELECT claimed_by FROM outbox") == [(b.owner,)]
    await a.db.run(a.dispatcher._record, [(job, True, None)], clock.now_ms())  # too late
    assert _rows(db_url, "SELECT status, claimed_by FROM outbox") == [("sending", b.owner)]
    await b.db.run(b.dispatcher._record, [(taken, True, None)], clock.now_ms())
    assert _rows(db_url, "SELECT status FROM outbox") == [("sent",)]
    delivered = _rows(db_url, "SELECT count(*) FROM audit WHERE event = 'delivered'")
    assert delivered == [(1,)]
