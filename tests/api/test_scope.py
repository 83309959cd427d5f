"""No route leaks another organisation's data: a table over every operation of the OpenAPI
schema and every role, so a route added later is covered (or fails here until it says how
to fill its parameters).

For each secured operation, the request is aimed at the other organisation (`zeta`): path
parameters name its organisation, site, meter, alert or silence, and each optional
org/site/meter filter is tried with zeta's values, then with none. Then:
- no token → 401, a malformed or revoked one → 401;
- the coordinator → 2xx (so the aimed requests are real, not rejected for bad input);
- scoped roles (facility manager and emergency coordinator of `alpine`, viewer) → never a
  zeta identifier in the answer, and the aimed-by-path requests are refused (403).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import ZETA_SECRETS, World

#: Operations without bearer auth: each authenticates another way (said why).
PUBLIC = {
    ("get", "/api/v1/health/live"): "liveness probe, no data",
    ("get", "/api/v1/health/ready"): "readiness probe, names parts only",
    ("get", "/a/{token}"): "the signed link is the credential",
    ("post", "/a/{token}"): "the signed link is the credential",
    ("post", "/api/v1/inbound/sms/{gateway}"): "the gateway's signature or secret",
}
#: Streams never end: only their refusals are checked here (test_stream covers the rest).
STREAMING = {("get", "/api/v1/stream")}
REQUIRED_QUERY = {"quantity": "power_w"}
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/api/v1/alerts/{alert_id}/ack"): {"comment": "seen"},
    ("post", "/api/v1/alerts/{alert_id}/assign"): {"assignee": "rossi"},
    ("post", "/api/v1/silences"): {
        "matchers": {"site": "zeta-dairy"},
        "duration": "1h",
        "reason": "works",
    },
}
SCOPED = ("facility_manager", "emergency_coordinator", "viewer")


def _path_values(world: World) -> dict[str, str]:
    return {
        "org": "zeta",
        "site": "zeta-dairy",
        "meter": "em-09",
        "alert_id": world.ids["zeta_alert"],
        "silence_id": world.ids["zeta_silence"],
    }


def _requests(world: World, schema: dict[str, Any]) -> list[tuple[str, str, str, dict, Any, bool]]:
    """(method, template, url, query, body, aimed_by_path) for every secured operation."""
    out = []
    values = _path_values(world)
    secrets = {**values, "org": "zeta"}
    for template, item in schema["paths"].items():
        for method, op in item.items():
            if (method, template) in PUBLIC:
                assert "security" not in op, f"{method} {template} is public but declares auth"
                continue
            if template.startswith("/api/v1/public/"):  # no token by design: test_public_scope
                assert "security" not in op, f"{method} {template} is public but declares auth"
                continue
            assert op.get("security"), (
                f"{method.upper()} {template} has no auth: add it or list it in PUBLIC"
            )
            params = op.get("parameters", [])
            url = template
            for p in params:
                if p["in"] == "path":
                    assert p["name"] in values, f"{template}: no test value for {{{p['name']}}}"
                    url = url.replace("{" + p["name"] + "}", values[p["name"]])
            base_query = {
                p["name"]: REQUIRED_QUERY[p["name"]]
                for p in params
                if p["in"] == "query" and p.get("required")
            }
            body = BODIES.get((method, template))
            if "requestBody" in op:
                assert body is not None, f"{method} {template}: no test body"
            aimed = "{" in template
            out.append((method, template, url, base_query, body, aimed))
            for p in params:
                if p["in"] == "query" and p["name"] in ("org", "site", "meter"):
                    query = base_query | {p["name"]: secrets[p["name"]]}
                    if p["name"] == "meter":
                        query["site"] = "zeta-dairy"
                    out.append((method, template, url, query, body, True))
    return out


async def _send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    query: dict,
    body: Any,
    headers: dict[str, str],
) -> httpx.Response:
    return await client.request(method.upper(), url, params=query, json=body, headers=headers)


async def test_every_route_is_covered_and_public_ones_are_listed(world: World) -> None:
    assert world.client is not None
    schema = (await world.client.get("/api/v1/openapi.json")).json()
    ops = {(m, p) for p, item in schema["paths"].items() for m in item}
    assert set(PUBLIC) <= ops
    assert len(_requests(world, schema)) > 25


async def test_no_token_or_a_bad_one_is_401(world: World) -> None:
    assert world.client is not None
    schema = (await world.client.get("/api/v1/openapi.json")).json()
    revoked = world.deps.token_store.create(role="coordinator", org=None, name="gone")
    world.deps.token_store.revoke(revoked.info.id)
    bad_headers = [
        {},
        {"Authorization": "Bearer eco_nope_x"},
        {"Authorization": "Basic Zm9v"},
        {"Authorization": f"Bearer {revoked.token}"},
    ]
    failures = []
    for method, _template, url, query, body, _aimed in _requests(world, schema):
        for headers in bad_headers:
            r = await _send(world.client, method, url, query, body, headers)
            if r.status_code != 401 or r.json()["error"]["code"] != "unauthorized":
                failures.append(f"{method.upper()} {url} {query} {headers}: {r.status_code}")
    assert not failures, "\n".join(failures)


async def test_coordinator_reaches_everything_aimed_at(world: World) -> None:
    assert world.client is not None
    schema = (await world.client.get("/api/v1/openapi.json")).json()
    failures = []
    for method, template, url, query, body, _aimed in _requests(world, schema):
        if (method, template) in STREAMING:
            continue
        r = await _send(world.client, method, url, query, body, world.auth("coordinator"))
        if not 200 <= r.status_code < 300:
            failures.append(f"{method.upper()} {url} {query}: {r.status_code} {r.text[:200]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("role", SCOPED)
async def test_scoped_roles_never_see_the_other_organisation(world: World, role: str) -> None:
    assert world.client is not None
    schema = (await world.client.get("/api/v1/openapi.json")).json()
    secrets = (*ZETA_SECRETS, world.ids["zeta_alert"], world.ids["zeta_silence"])
    failures = []
    seen_ok = 0
    for method, template, url, query, body, aimed in _requests(world, schema):
        if (method, template) in STREAMING and not aimed:
            continue
        r = await _send(world.client, method, url, query, body, world.auth(role))
        leaked = [s for s in secrets if s in r.text]
        if leaked:
            failures.append(f"{method.upper()} {url} {query}: {r.status_code} leaks {leaked}")
        elif aimed and r.status_code != 403:
            failures.append(f"{method.upper()} {url} {query}: {r.status_code}, expected 403")
        elif r.status_code >= 500 or r.status_code in (401, 404, 422):
            failures.append(f"{method.upper()} {url} {query}: {r.status_code} {r.text[:120]}")
        seen_ok += r.status_code == 200
    assert not failures, "\n".join(failures)
    # the role really reads something: its own data (viewers: the territory page)
    assert seen_ok >= (1 if role == "viewer" else 8)


async def test_viewer_reads_territory_aggregates_only(world: World) -> None:
    assert world.client is not None
    auth = world.auth("viewer")
    r = await world.client.get(
        "/api/v1/history",
        headers=auth,
        params={"quantity": "power_w", "group": "territory", "every": "1h", "start": "-3h"},
    )
    assert r.status_code == 200, r.text
    (series,) = r.json()["series"]
    assert series["key"] == {"quantity": "power_w"}
    assert series["values"][-1] == 5000.0 + 20000.0 + 7000.0
    r = await world.client.get("/api/v1/consumption", headers=auth, params={"by": "territory"})
    assert r.status_code == 200 and r.json()["items"][0]["key"] == "territory"
    r = await world.client.get("/api/v1/live/territory", headers=auth)
    body = r.json()
    assert body["by_org"] == [] and body["sites"] == []
    assert body["totals"]["power_w"] == 32000.0
    assert body["open_alerts_by_severity"] == {"critical": 1, "warning": 1}
    r = await world.client.get("/api/v1/history", headers=auth, params={"quantity": "power_w"})
    assert r.status_code == 403
