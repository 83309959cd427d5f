"""Nothing reachable without a token exposes a private organisation's site-level data, a
contact, an internal alert detail or a secret (issue 17 §3).

Generated, not listed: the requests are derived from the app itself, so a public route
added later is covered without touching this file:
- every OpenAPI operation without `security`, with every value of every enumerated query
  parameter, every public and private station id, several ranges, and both languages;
- every other route and mount of the app that answers without a token (the pages, the
  static assets: every file of every static directory).
The world (`public_world.py`) seeds the store with private firms' site-level data (a private
air station with its own values, private meters), contacts with phones, e-mails and Apprise
URLs holding passwords, alerts acknowledged with a comment and assigned, and settings
holding secrets (MQTT and database passwords, an InfluxDB token, the ack-link key).
Then every non-public API operation still answers 401 without a token.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Mount, Route

from ecocluster.api import create_app
from tests.api.public_world import PRIVATE_STRINGS, SECRETS, PublicWorld, build_public_world

#: Values tried for query parameters by name (besides each enum's values).
QUERY_VALUES: dict[str, list[str]] = {
    "station": ["aq-town", "aq-pass", "aq-zeta"],
    "start": ["-30h", "2026-11-24T00:00:00Z"],
    "end": ["now"],
    "from": ["2025-11"],
    "to": ["2026-11"],
    "days": ["1", "90"],
}
PATH_VALUES = {
    "token": "x" * 40,
    "gateway": "smseagle",
    "org": "zeta",
    "site": "aq-zeta",
    "meter": "aq-z9",
    "alert_id": "al0001aq-p",
    "silence_id": "s1",
}
LANGUAGES = [{}, {"Accept-Language": "it"}, {"Accept-Language": "en-GB,en;q=0.8"}]


@pytest.fixture
async def app_world(tmp_path: Path) -> AsyncIterator[tuple[PublicWorld, Any]]:
    world = await build_public_world(tmp_path)

    async def broker_up() -> None:  # no broker here; readiness must not try 127.0.0.1:1883
        return None

    world.deps.checks = {"broker": broker_up}
    yield world, create_app(world.deps)
    world.deps.token_store.close()


def _forbidden(world: PublicWorld) -> tuple[str, ...]:
    tokens = tuple(world.tokens.values())
    internal_ids = tuple(world.ids.values())
    codes = tuple(a.code for a in world.alerts.alerts.values())
    return (*PRIVATE_STRINGS, *tokens, *internal_ids, *codes)


def _public_operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if not op.get("security")
    ]


def _variants(op: dict[str, Any]) -> list[dict[str, str]]:
    """The query strings to try: none, then each parameter with each of its values."""
    out: list[dict[str, str]] = [{}]
    for p in op.get("parameters", []):
        if p["in"] != "query":
            continue
        schema = p.get("schema", {})
        options = schema.get("anyOf", [schema])
        enums = [v for o in options for v in o.get("enum", [])]
        values = [str(v) for v in enums] or QUERY_VALUES.get(p["name"], [])
        out.extend({p["name"]: v} for v in values)
    return out


def _url(path: str) -> str:
    for name, value in PATH_VALUES.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"no test value for a parameter of {path}"
    return path


def _check(url: str, r: httpx.Response, forbidden: tuple[str, ...]) -> list[str]:
    # Content-Length is a number like any 4-digit alert code: not a place data can leak.
    headers = "\n".join(f"{k}: {v}" for k, v in r.headers.items() if k != "content-length")
    text = r.text + "\n" + headers
    return [f"{url}: {r.status_code} shows {s!r}" for s in forbidden if _shows(text, s)]


def _shows(text: str, secret: str) -> bool:
    """Plain containment; a numeric code (`4803`) only as a whole number, not as the digits
    inside another one (a size, a coordinate, an ETag)."""
    if secret.isdigit():
        return re.search(rf"(?<![0-9A-Za-z.]){secret}(?![0-9A-Za-z])", text) is not None
    return secret in text


async def test_no_public_answer_leaks(app_world: tuple[PublicWorld, Any]) -> None:
    world, app = app_world
    forbidden = _forbidden(world)
    secrets = (*SECRETS, *world.tokens.values())
    transport = httpx.ASGITransport(app=app)
    leaks: list[str] = []
    fetched = 0
    async with httpx.AsyncClient(transport=transport, base_url="http://public.test") as client:
        schema = (await client.get("/api/v1/openapi.json")).json()
        public_ops = _public_operations(schema)
        public_paths = {p for _m, p, _o in public_ops}
        assert {"/api/v1/public/summary", "/api/v1/public/opendata"} <= public_paths
        assert len([p for p in public_paths if p.startswith("/api/v1/public/")]) >= 10
        for method, path, op in public_ops:
            for query in _variants(op):
                for headers in LANGUAGES:
                    r = await client.request(
                        method.upper(), _url(path), params=query, headers=headers
                    )
                    assert r.status_code != 500, (path, query, r.text[:200])
                    fetched += 1
                    leaks += _check(f"{method.upper()} {path} {query}", r, forbidden)
        # Routes outside the schema that answer without a token: pages and static files.
        for route in app.routes:
            if isinstance(route, Mount) and hasattr(route.app, "directory"):
                directory = Path(route.app.directory)  # type: ignore[attr-defined]
                for file in sorted(directory.iterdir()):  # noqa: ASYNC240 (a test)
                    r = await client.get(f"{route.path}/{file.name}")
                    assert r.status_code == 200, f"{route.path}/{file.name}"
                    fetched += 1
                    leaks += _check(f"{route.path}/{file.name}", r, forbidden)
            elif (
                isinstance(route, Route)
                and not getattr(route, "include_in_schema", True)
                and "GET" in (route.methods or set())
                and "{" not in route.path
            ):
                for headers in LANGUAGES:
                    r = await client.get(route.path, headers=headers)
                    fetched += 1
                    # The schema and its docs page describe the API (their examples may
                    # name a "rossi"): they hold no data, so only secrets count there.
                    data = not route.path.startswith("/api/v1/")
                    leaks += _check(route.path, r, forbidden if data else secrets)
    assert fetched > 150
    assert not leaks, "\n".join(leaks[:40])


async def test_the_world_really_holds_the_secrets(app_world: tuple[PublicWorld, Any]) -> None:
    """The leak test would pass vacuously if the private data were not there to leak."""
    world, app = app_world
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://public.test") as client:
        auth = {"Authorization": f"Bearer {world.tokens['coordinator']}"}
        alert = await client.get(f"/api/v1/alerts/{world.ids['private']}", headers=auth)
        assert "comment-xyzzy" in alert.text and "assignee-plugh" in alert.text
        hist = await client.get(
            "/api/v1/history",
            params={"quantity": "pm10_ugm3", "site": "aq-zeta", "start": "-2h", "end": "now"},
            headers=auth,
        )
        assert hist.status_code == 200 and "77.7" in hist.text
    assert "hunter2-apprise-pw" in world.cluster.contacts[0].notify[0].get_secret_value()


async def test_every_other_api_route_still_needs_a_token(
    app_world: tuple[PublicWorld, Any],
) -> None:
    _world, app = app_world
    transport = httpx.ASGITransport(app=app)
    failures = []
    checked = 0
    async with httpx.AsyncClient(transport=transport, base_url="http://public.test") as client:
        schema = (await client.get("/api/v1/openapi.json")).json()
        for path, item in schema["paths"].items():
            for method, op in item.items():
                if not op.get("security"):
                    assert not path.startswith("/api/v1/") or path.startswith(
                        ("/api/v1/public/", "/api/v1/health/", "/api/v1/inbound/")
                    ), f"{method.upper()} {path} has no auth and is not a public route"
                    continue
                required = {
                    p["name"]: "power_w"
                    for p in op.get("parameters", [])
                    if p["in"] == "query" and p.get("required")
                }
                r = await client.request(method.upper(), _url(path), params=required)
                checked += 1
                if r.status_code != 401:
                    failures.append(f"{method.upper()} {path}: {r.status_code}")
    assert checked > 20
    assert not failures, "\n".join(failures)
