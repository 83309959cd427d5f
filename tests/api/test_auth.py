"""Tokens (hashed at rest, the CLI), rate limiting, CORS off by default, /metrics, errors."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from ecocluster.api import create_app
from ecocluster.api.cli import register
from ecocluster.api.tokens import TokenStore
from tests.api.conftest import World, build_world


def test_tokens_are_stored_hashed_and_revocable(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "t.sqlite")
    issued = store.create(role="facility_manager", org="alpine", name="Anna")
    raw = (tmp_path / "t.sqlite").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("t.sqlite-*")
    )
    assert issued.token.encode() not in raw
    rows = sqlite3.connect(tmp_path / "t.sqlite").execute("SELECT hash FROM tokens").fetchall()
    assert rows == [(hashlib.sha256(issued.token.encode()).hexdigest(),)]
    principal = store.verify(issued.token)
    assert principal is not None and (principal.role, principal.org) == (
        "facility_manager",
        "alpine",
    )
    assert store.revoke(issued.info.id) and store.verify(issued.token) is None
    with pytest.raises(ValueError, match="needs --org"):
        store.create(role="facility_manager", org=None, name="x")
    with pytest.raises(ValueError, match="unknown role"):
        store.create(role="admin", org=None, name="x")


def test_token_cli_create_list_revoke(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    args = [
        "token",
        "create",
        "--role",
        "emergency_coordinator",
        "--org",
        "alpine",
        "--name",
        "Mario Rossi",
        "--contact",
        "rossi",
        "--data-dir",
        str(tmp_path),
    ]
    made = runner.invoke(app, args)
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("eco_")
    listed = runner.invoke(app, ["token", "list", "--data-dir", str(tmp_path)])
    assert "Mario Rossi" in listed.stdout and token not in listed.stdout
    token_id = token.split("_")[1]
    assert (
        runner.invoke(app, ["token", "revoke", token_id, "--data-dir", str(tmp_path)]).exit_code
        == 0
    )
    assert TokenStore(tmp_path / "api-tokens.sqlite").verify(token) is None
    bad = runner.invoke(
        app,
        [
            "token",
            "create",
            "--role",
            "viewer",
            "--org",
            "alpine",
            "--name",
            "x",
            "--data-dir",
            str(tmp_path),
        ],
    )
    assert bad.exit_code == 2 and "whole territory" in bad.output


async def _client(world: World) -> httpx.AsyncClient:
    app = create_app(world.deps)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_rate_limit_per_token(tmp_path: Path, territory_path: Path) -> None:
    world = await build_world(tmp_path, territory_path, api_rate_per_s=1, api_rate_burst=3)
    async with await _client(world) as client:
        codes = [
            (await client.get("/api/v1/sites", headers=world.auth("coordinator"))).status_code
            for _ in range(5)
        ]
        assert codes == [200, 200, 200, 429, 429]
        r = await client.get("/api/v1/sites", headers=world.auth("coordinator"))
        assert r.json()["error"]["code"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
        other = await client.get("/api/v1/sites", headers=world.auth("facility_manager"))
        assert other.status_code == 200  # per token, not global


async def test_cors_is_off_by_default_and_on_when_configured(
    tmp_path: Path, territory_path: Path
) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    world = await build_world(tmp_path / "a", territory_path)
    async with await _client(world) as client:
        r = await client.options("/api/v1/sites", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
    world = await build_world(
        tmp_path / "b", territory_path, api_cors_origins=["https://park.example"]
    )
    async with await _client(world) as client:
        r = await client.options(
            "/api/v1/sites", headers=preflight | {"Origin": "https://park.example"}
        )
        assert r.headers["access-control-allow-origin"] == "https://park.example"


async def test_metrics_need_a_coordinator_and_show_api_counters(world: World) -> None:
    assert world.client is not None
    assert (await world.client.get("/api/v1/metrics")).status_code == 401
    assert (
        await world.client.get("/api/v1/metrics", headers=world.auth("facility_manager"))
    ).status_code == 403
    await world.client.get("/api/v1/sites", headers=world.auth("coordinator"))
    r = await world.client.get("/api/v1/metrics", headers=world.auth("coordinator"))
    assert r.status_code == 200
    assert 'ecocluster_api_requests_total{handler="sites",status="200"} 1.0' in r.text
    assert world.tokens["coordinator"] not in r.text


async def test_unknown_route_and_method_answer_json(world: World) -> None:
    assert world.client is not None
    r = await world.client.get("/api/v1/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await world.client.put("/api/v1/sites", headers=world.auth("coordinator"))
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
