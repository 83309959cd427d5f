"""The API over the real alert service (`ecocluster.alerts.AlertService`, SQLite) through
`ServiceAlerts`: scope, ack with audit trail, the signed link the service issues, an
SMSEagle reply, silences; the same answers the in-memory port gives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ecocluster.alerts.clock import ManualClock
from ecocluster.alerts.service import AlertService
from ecocluster.api import create_app
from ecocluster.api.alert_adapter import ServiceAlerts
from ecocluster.core.transitions import Transition
from ecocluster.core.types import Severity
from tests.api.conftest import NOW, World, build_world


def firing(site: str, org: str, rule: str = "power-overload") -> Transition:
    return Transition(
        rule=rule,
        state="firing",
        previous="pending",
        severity=Severity.CRITICAL,
        labels={"rule": rule, "severity": "critical", "org": org, "site": site, "meter": "em-01"},
        value=61000.0,
        threshold=60000.0,
        since_ms=NOW - 120_000,
        at_ms=NOW,
    )


@pytest.fixture
async def real(tmp_path: Path, territory_path: Path) -> AsyncIterator[tuple[World, AlertService]]:
    world = await build_world(tmp_path, territory_path)
    service = AlertService(
        world.cluster,
        world.deps.settings,
        clock=ManualClock(NOW),
        db_url=f"sqlite:///{tmp_path / 'alerts.sqlite'}",
    )
    await service.start()
    await service.on_transitions([firing("alpine-hotel", "alpine"), firing("zeta-dairy", "zeta")])
    world.deps.alerts = ServiceAlerts(service, world.deps.settings)  # type: ignore[assignment]
    world.deps.__post_init__()
    app = create_app(world.deps)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        world.client = c
        yield world, service
    await service.close()


async def test_scope_ack_and_audit_trail(real: tuple[World, AlertService]) -> None:
    world, _service = real
    assert world.client is not None
    mine = await world.client.get("/api/v1/alerts", headers=world.auth("facility_manager"))
    assert [a["labels"]["site"] for a in mine.json()] == ["alpine-hotel"]
    everyone = await world.client.get("/api/v1/alerts", headers=world.auth("coordinator"))
    assert {a["labels"]["org"] for a in everyone.json()} == {"alpine", "zeta"}
    alert_id = mine.json()[0]["id"]
    zeta_id = next(a["id"] for a in everyone.json() if a["labels"]["org"] == "zeta")
    r = await world.client.get(f"/api/v1/alerts/{zeta_id}", headers=world.auth("facility_manager"))
    assert r.status_code == 403 and "zeta" not in r.text
    r = await world.client.post(
        f"/api/v1/alerts/{alert_id}/ack",
        headers=world.auth("emergency_coordinator"),
        json={"comment": "arrivo"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["acked_by"] == "rossi" and body["ack_comment"] == "arrivo"
    acked = [e for e in body["events"] if e["kind"] == "acked"]
    assert acked and acked[0]["by"] == "rossi" and acked[0]["channel"] == "api"
    assert (
        await world.client.get("/api/v1/alerts/999999", headers=world.auth("coordinator"))
    ).status_code == 404


async def test_signed_link_from_the_service(real: tuple[World, AlertService]) -> None:
    world, service = real
    assert world.client is not None and service.ctx is not None
    (alert,) = await service.list_alerts(org="alpine")
    token = service.ctx.links.token(alert.id, "rossi", NOW)
    page = await world.client.get(f"/a/{token}")
    assert page.status_code == 200 and alert.code in page.text
    assert (await service.get_alert(alert.id)).alert.acked_by is None
    done = await world.client.post(f"/a/{token}", data={"comment": "visto"})
    assert done.status_code == 200 and "rossi" in done.text
    detail = await service.get_alert(alert.id)
    assert (detail.alert.acked_by, detail.alert.ack_channel) == ("rossi", "link")
    assert (await world.client.get(f"/a/{token[:-3]}xyz")).status_code == 404


async def test_smseagle_reply_and_silences(real: tuple[World, AlertService]) -> None:
    world, service = real
    assert world.client is not None
    (alert,) = await service.list_alerts(org="alpine")
    r = await world.client.post(
        "/api/v1/inbound/sms/smseagle", data={"sender": "+393331234567", "msg": f"OK {alert.code}"}
    )
    assert r.status_code == 200 and r.json()["accepted"] is True, r.text
    assert (await service.get_alert(alert.id)).alert.ack_channel == "sms"
    r = await world.client.post("/api/v1/inbound/sms/carrier-pigeon", content=b"x")
    assert r.status_code == 400
    auth = world.auth("emergency_coordinator")
    r = await world.client.post(
        "/api/v1/silences",
        headers=auth,
        json={"matchers": {"site": "alpine-hotel"}, "duration": "1h", "reason": "manutenzione"},
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert r.json()["matchers"] == {"site": "alpine-hotel"} and r.json()["author"] == "rossi"
    listed = await world.client.get("/api/v1/silences", headers=auth)
    assert [s["id"] for s in listed.json()] == [sid]
    gone = await world.client.delete(f"/api/v1/silences/{sid}", headers=auth)
    assert gone.status_code == 200 and gone.json()["expired_by"] == "rossi"
    r = await world.client.get("/api/v1/health/ready")
    assert r.json()["checks"]["alerts"]["ok"] is True
