"""One contract over both alert databases: SQLite (WAL) and a real PostgreSQL. Every test
runs on each; the schema the migrations build must equal the declared one."""

from __future__ import annotations

import json
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ecocluster.alerts.service import AckRefused, SilenceError
from ecocluster.alerts.store.db import AlertDatabase, safe_url
from ecocluster.alerts.store.schema import metadata
from tests.alerts.conftest import T0, transition


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[override]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'alerts.sqlite'}"
    pg = request.getfixturevalue("postgres")
    return pg.create_database(f"a{uuid.uuid4().hex[:12]}")


def test_migrations_build_exactly_the_declared_schema(db_url: str) -> None:
    db = AlertDatabase.open(db_url)
    try:
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
        db.migrate()  # idempotent
    finally:
        db.close()


def test_safe_url_hides_the_password() -> None:
    shown = safe_url("postgresql+psycopg://eco:s3cr3t@db.example.org/alerts")
    assert "s3cr3t" not in shown and "db.example.org" in shown


async def test_fire_dedupe_resolve_refire(make_cluster, make_service, clock) -> None:
    svc = await make_service(make_cluster())
    await svc.on_transitions([transition(), transition()])
    (alert,) = await svc.list_alerts()
    assert alert.state == "firing" and len(alert.code) == 4
    clock.advance(60_000)
    await svc.on_transitions([transition("resolved", at_ms=clock.now_ms())])
    await svc.on_transitions([transition("resolved", at_ms=clock.now_ms())])
    (resolved,) = await svc.list_alerts(state="resolved")
    assert resolved.ends_ms == clock.now_ms()
    clock.advance(60_000)
    await svc.on_transitions([transition(at_ms=clock.now_ms())])
    (again,) = await svc.list_alerts()
    assert again.id == alert.id and again.fired_count == 2 and again.state == "firing"
    events = [e.event for e in (await svc.get_alert(alert.id)).audit]
    assert events.count("fired") == 2 and events.count("resolved") == 1


async def test_ack_is_idempotent_and_scoped(make_cluster, make_service) -> None:
    svc = await make_service(make_cluster())
    await svc.on_transitions([transition()])  # hotel's alert: walker's org
    (alert,) = await svc.list_alerts()
    with pytest.raises(AckRefused):
        await svc.ack(alert.code, by="duty", channel="sms", contact_id="duty")  # parco, not told
    first = await svc.ack(alert.code, by="walker", contact_id="walker", comment="checking")
    second = await svc.ack(alert.code, by="walker", contact_id="walker")
    assert first.changed and not second.changed and second.alert.ack_comment == "checking"
    events = [e.event for e in (await svc.get_alert(alert.code)).audit]
    assert events.count("acked") == 1 and "ack_refused" in events


async def test_silences_crud_and_validation(make_cluster, make_service, clock) -> None:
    svc = await make_service(make_cluster())
    with pytest.raises(SilenceError):
        await svc.add_silence(["site=lago"], author="rossi", reason="  ")
    with pytest.raises(SilenceError):
        await svc.add_silence(["site=~("], author="rossi", reason="works")
    silence = await svc.add_silence(
        ["site=lago", "severity=~critical|warning"],
        author="rossi",
        reason="maintenance of the boiler",
    )
    assert [s.id for s in await svc.list_silences(active_only=True)] == [silence.id]
    expired = await svc.expire_silence(silence.id, by="rossi")
    assert expired.expired_ms == clock.now_ms() and await svc.list_silences(active_only=True) == []


async def test_outbox_rows_are_claimed_once_across_workers(
    make_cluster, make_service, clock, receiver
) -> None:
    """Two services on one database dispatch concurrently: every row is sent exactly once
    (SKIP LOCKED on PostgreSQL, the single writer on SQLite)."""
    cluster = make_cluster("routes:\n  - {notify: [duty], group_wait: 0s, group_by: ['...']}\n")
    a = await make_service(cluster)
    b = await make_service(cluster)
    await a.on_transitions([transition(site="lago", meter=f"m{i}") for i in range(6)])
    await a.process_due()
    import asyncio

    await asyncio.gather(a.dispatch_due(), b.dispatch_due())
    assert len(receiver.wait_for(6, 5)) == 6
    detail = await a.get_alert(1)
    assert [n.status for n in detail.notifications] == ["sent"]
    _ = json, T0
