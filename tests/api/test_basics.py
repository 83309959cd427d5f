"""Smoke-level answers with the numbers in sight (see conftest's constant rates)."""

from __future__ import annotations

from tests.api.conftest import NOW, World


async def test_live_site_power_and_today(world: World) -> None:
    assert world.client is not None
    r = await world.client.get(
        "/api/v1/live", params={"site": "alpine-hotel"}, headers=world.auth("facility_manager")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    (site,) = body["sites"]
    assert site["power_w"] == 5000.0
    assert site["flow_lpm"] == 30.0
    # 12 hours since Rome midnight (23:00 UTC) at 5 kW: 144 readings × 5 min → 60 kWh
    assert abs(site["today_energy_kwh"] - 60.0) < 1e-6
    assert body["at_ms"] == NOW
    assert {r["meter"] for r in body["readings"]} == {"em-01", "wm-01"}
    assert [a["rule"] for a in body["alerts"]] == ["power-overload"]
