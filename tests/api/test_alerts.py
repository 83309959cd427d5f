"""Alerts through the API: list/filter, detail with the audit trail, ack (idempotent, who),
assign, silences CRUD, the signed link (a GET never acks), inbound SMS replies, and a down
alert service answered 503, never 500."""

from __future__ import annotations

import pytest

from tests.api.conftest import World


async def test_list_filter_detail_ack_and_audit_trail(world: World) -> None:
    assert world.client is not None
    auth = world.auth("emergency_coordinator")
    r = await world.client.get("/api/v1/alerts", headers=auth, params={"severity": "critical"})
    assert [a["id"] for a in r.json()] == [world.ids["alpine_alert"]]
    alert_id = world.ids["alpine_alert"]
    r = await world.client.post(
        f"/api/v1/alerts/{alert_id}/ack", headers=auth, json={"comment": "on my way"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["acked_by"] == "rossi" and body["ack_channel"] == "api"
    assert [e["kind"] for e in body["events"]] == ["fired", "acked"]
    assert body["events"][-1]["by"] == "rossi" and body["events"][-1]["detail"] == "on my way"
    again = await world.client.post(
        f"/api/v1/alerts/{alert_id}/ack", headers=world.auth("coordinator"), json={}
    )
    assert again.json()["acked_by"] == "rossi"  # idempotent: the first ack stays
    r = await world.client.get("/api/v1/alerts", headers=auth, params={"acknowledged": "false"})
    assert r.json() == []


async def test_assign_needs_a_known_contact_and_the_right_role(world: World) -> None:
    assert world.client is not None
    alert_id = world.ids["alpine_alert"]
    url = f"/api/v1/alerts/{alert_id}/assign"
    r = await world.client.post(
        url, headers=world.auth("facility_manager"), json={"assignee": "rossi"}
    )
    assert r.status_code == 403
    r = await world.client.post(
        url, headers=world.auth("emergency_coordinator"), json={"assignee": "nobody"}
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "assignee"
    r = await world.client.post(
        url, headers=world.auth("emergency_coordinator"), json={"assignee": "rossi"}
    )
    assert r.status_code == 200 and r.json()["assignee"] == "rossi"
    assert r.json()["events"][-1]["kind"] == "assigned"


async def test_silences_crud_in_scope(world: World) -> None:
    assert world.client is not None
    auth = world.auth("emergency_coordinator")
    r = await world.client.post(
        "/api/v1/silences",
        headers=auth,
        json={
            "matchers": {"site": "alpine-hotel", "rule": "power-overload"},
            "duration": "2h",
            "reason": "boiler maintenance",
        },
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["active"] and created["author"] == "rossi"
    assert created["ends_ms"] - created["starts_ms"] == 2 * 3_600_000
    listed = await world.client.get("/api/v1/silences", headers=auth)
    assert {s["id"] for s in listed.json()} == {created["id"], world.ids["alpine_silence"]}
    r = await world.client.delete(f"/api/v1/silences/{created['id']}", headers=auth)
    assert r.status_code == 200 and r.json()["expired_by"] == "rossi" and not r.json()["active"]
    r = await world.client.post(
        "/api/v1/silences",
        headers=auth,
        json={"matchers": {"rule": "power-overload"}, "duration": "1h", "reason": "everywhere"},
    )
    assert r.status_code == 403  # a scoped caller must name their organisation or site
    r = await world.client.post(
        "/api/v1/silences",
        headers=auth,
        json={
            "matchers": {"site": "alpine-hotel"},
            "duration": "1h",
            "ends": "+2h",
            "reason": "both",
        },
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "ends"
    r = await world.client.post(
        "/api/v1/silences",
        headers=auth,
        json={
            "matchers": {"colour": "red", "site": "alpine-hotel"},
            "duration": "1h",
            "reason": "x y z",
        },
    )
    assert r.status_code == 422 and "unknown label" in r.json()["error"]["message"]


async def test_ack_link_get_shows_a_page_and_post_acks(world: World) -> None:
    assert world.client is not None
    alert_id = world.ids["alpine_alert"]
    token = world.alerts.link_for(alert_id, contact="rossi")
    page = await world.client.get(f"/a/{token}", headers={"Accept-Language": "it-IT"})
    assert page.status_code == 200 and '<form method="post"' in page.text
    assert "Confermo la presa in carico" in page.text
    assert page.headers["cache-control"] == "no-store" and "noindex" in page.headers["x-robots-tag"]
    assert world.alerts.alerts[alert_id].acked_by is None  # a link preview must not ack
    done = await world.client.post(
        f"/a/{token}", data={"comment": "vado io"}, headers={"Accept-Language": "en"}
    )
    assert done.status_code == 200 and "Alert acknowledged" in done.text and "rossi" in done.text
    record = world.alerts.alerts[alert_id]
    assert (record.acked_by, record.ack_channel, record.ack_comment) == ("rossi", "link", "vado io")
    forged = token[:-4] + "0000"
    assert (await world.client.get(f"/a/{forged}")).status_code == 404
    assert (await world.client.post(f"/a/{forged}")).status_code == 403


async def test_inbound_sms_reply_acks(world: World) -> None:
    assert world.client is not None
    world.alerts.phones["+393331234567"] = "rossi"
    code = world.alerts.alerts[world.ids["alpine_alert"]].code
    r = await world.client.post(
        "/api/v1/inbound/sms/generic", json={"from": "+393331234567", "text": f"ok {code}"}
    )
    assert r.status_code == 200 and r.json()["accepted"] is True
    assert world.alerts.alerts[world.ids["alpine_alert"]].ack_channel == "sms"
    r = await world.client.post("/api/v1/inbound/sms/generic", content=b"not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "inbound_rejected"


async def test_alert_service_down_or_absent_is_503(world: World) -> None:
    assert world.client is not None
    world.alerts.down = True
    r = await world.client.get("/api/v1/alerts", headers=world.auth("coordinator"))
    assert r.status_code == 503 and "alert database is down" in r.json()["error"]["message"]
    r = await world.client.get("/api/v1/health/ready")
    assert r.status_code == 503 and r.json()["checks"]["alerts"]["ok"] is False
    world.deps.alerts = None
    r = await world.client.get("/api/v1/alerts", headers=world.auth("coordinator"))
    assert r.status_code == 503 and "not running" in r.json()["error"]["message"]
    live = await world.client.get("/api/v1/live", headers=world.auth("coordinator"))
    assert live.status_code == 200 and live.json()["alerts"] is None


@pytest.mark.parametrize("role", ["viewer"])
async def test_viewer_cannot_ack(world: World, role: str) -> None:
    assert world.client is not None
    r = await world.client.post(
        f"/api/v1/alerts/{world.ids['alpine_alert']}/ack", headers=world.auth(role), json={}
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
