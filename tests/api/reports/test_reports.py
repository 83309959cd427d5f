"""The report routes through the real app (in-process ASGI): compliance JSON/CSV,
indicators JSON/CSV, the printable statement; auth and organisation scope on each."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pytest
import yaml

from ecocluster.api import ApiDeps, HotWindowLive, TokenStore, create_app
from ecocluster.api.app import API_PREFIX
from ecocluster.api.reports import compliance, indicators
from ecocluster.core.registry import load_cluster
from ecocluster.core.settings import Settings
from ecocluster.core.types import ReadingBatch
from ecocluster.ingest.registers import RegisterTracker
from ecocluster.ingest.stores.duckdb import DuckDBStore
from ecocluster.rules.engine import RuleEngine
from tests.api.conftest import TERRITORY, Clock, make_tokens

ROME = ZoneInfo("Europe/Rome")
H = 3_600_000
START = int(datetime(2026, 1, 1, tzinfo=ROME).timestamp() * 1000)
NOW = START + 10 * 24 * H


def _doc() -> dict[str, Any]:
    doc = copy.deepcopy(TERRITORY)
    doc["organisations"][0]["attributes"] = {"employees": 10}
    doc["sites"] += [
        {
            "id": "alpine-air",
            "org": "alpine",
            "name": "Aria Alpina",
            "category": "air_station",
            "lat": 44.3,
            "lon": 10.2,
        },
        {
            "id": "zeta-air",
            "org": "zeta",
            "name": "Aria Zeta",
            "category": "air_station",
            "lat": 44.4,
            "lon": 10.4,
            "compliance": {"pack": "who2021"},
        },
    ]
    doc["meters"] += [
        {"id": "aq-1", "site": "alpine-air", "quantities": ["pm10_ugm3"]},
        {"id": "aq-9", "site": "zeta-air", "quantities": ["pm10_ugm3"]},
    ]
    return doc


def _readings(cluster: Any) -> ReadingBatch:
    ts = START + H * np.arange(-1, 10 * 24, dtype=np.int64)
    series = list(cluster.series)
    idx, all_ts, vals = [], [], []
    for i, key in enumerate(series):
        if key.quantity == "pm10_ugm3":  # 2 days over 50 at alpine, every day at zeta
            day = (ts - START) // (24 * H)
            v = np.where(day < 2, 70.0, 30.0) if key.meter == "aq-1" else np.full(ts.shape, 60.0)
        elif key.quantity in ("energy_kwh", "water_m3"):
            v = 100.0 + np.arange(ts.shape[0]) * (2.0 if key.meter.startswith("em") else 0.1)
        else:
            v = np.full(ts.shape, 1000.0)
        idx.append(np.full(ts.shape, i, np.int64))
        all_ts.append(ts)
        vals.append(v)
    raw = ReadingBatch(
        series,
        np.concatenate(idx),
        np.concatenate(all_ts),
        np.concatenate(vals),
        np.full(sum(a.shape[0] for a in all_ts), np.nan),
    )
    return RegisterTracker(cluster).apply(raw)[0]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    path = tmp_path / "territory.yaml"
    path.write_text(yaml.safe_dump(_doc(), sort_keys=False))
    cluster = load_cluster(path)
    store = DuckDBStore(tmp_path / "store.duckdb")
    await store.open()
    await store.write(_readings(cluster))
    tokens = TokenStore(tmp_path / "tokens.sqlite")
    deps = ApiDeps(
        cluster=cluster,
        settings=Settings(data_dir=tmp_path / "data", api_rate_per_s=0),
        store=store,
        live=HotWindowLive(RuleEngine(cluster)),
        tokens=tokens,
        clock=Clock(NOW),
    )
    app = create_app(deps)
    app.include_router(compliance.router, prefix=API_PREFIX)
    app.include_router(indicators.router, prefix=API_PREFIX)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client, make_tokens(tokens)
    tokens.close()
    await store.close()


def _auth(tokens: dict[str, str], role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[role]}"}


async def test_compliance_report_json_csv_and_scope(api: Any) -> None:
    client, tokens = api
    url = f"{API_PREFIX}/reports/compliance"
    r = await client.get(url, params={"year": 2026}, headers=_auth(tokens, "coordinator"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["complete"] is False and "standard time" in body["time_base"]
    stations = {s["site"]: s for s in body["stations"]}
    assert set(stations) == {"alpine-air", "zeta-air"}
    assert stations["zeta-air"]["pack"] == "who2021"
    day = next(
        c
        for c in stations["alpine-air"]["checks"]
        if c["pack"] == "eu2008" and c["id"] == "pm10-day-limit"
    )
    assert day["count"] == 2 and day["status"] == "in_progress"
    assert [e["period"] for e in day["exceedances"]] == ["2026-01-01", "2026-01-02"]
    r = await client.get(
        url, params={"year": 2026, "format": "csv"}, headers=_auth(tokens, "coordinator")
    )
    assert r.headers["content-type"].startswith("text/csv")
    assert "2026-01-01=70" in r.text
    # A facility manager of alpine sees alpine's station only, and never zeta's.
    r = await client.get(url, params={"year": 2026}, headers=_auth(tokens, "facility_manager"))
    assert [s["site"] for s in r.json()["stations"]] == ["alpine-air"]
    assert "zeta" not in r.text.lower()
    r = await client.get(
        url, params={"site": "zeta-air"}, headers=_auth(tokens, "facility_manager")
    )
    assert r.status_code == 403 and "zeta" not in r.json()["error"]["message"].replace(
        "zeta-air", ""
    )
    assert (await client.get(url, headers=_auth(tokens, "viewer"))).status_code == 403
    assert (await client.get(url)).status_code == 401
    r = await client.get(url, params={"year": 2030}, headers=_auth(tokens, "coordinator"))
    assert r.status_code == 422 and r.json()["error"]["field"] == "year"


async def test_indicators_json_csv_and_scope(api: Any) -> None:
    client, tokens = api
    url = f"{API_PREFIX}/reports/indicators"
    r = await client.get(url, params={"year": 2026}, headers=_auth(tokens, "coordinator"))
    assert r.status_code == 200, r.text
    body = r.json()
    energy = body["quantities"]["energy_kwh"]
    # 3 energy meters × 240 hourly rises of 2 kWh (the first reading of the year is 00:00,
    # its delta from 31 Dec 23:00 is inside the year): 3 × 240 × 2 = 1440.
    assert energy["total"] == pytest.approx(1440.0)
    assert energy["emission_factor"] is None
    orgs = {(o["org"], o["quantity"]): o for o in body["organisations"]}
    assert orgs[("alpine", "energy_kwh")]["value"] == pytest.approx(960.0)
    assert orgs[("alpine", "energy_kwh")]["ratios"] == pytest.approx({"employees": 96.0})
    assert orgs[("alpine", "energy_kwh")]["share"] == pytest.approx(2 / 3)
    r = await client.get(url, params={"format": "csv"}, headers=_auth(tokens, "coordinator"))
    assert r.text.startswith("year,org,quantity") and "per_employees" in r.text
    r = await client.get(url, headers=_auth(tokens, "facility_manager"))
    assert {o["org"] for o in r.json()["organisations"]} == {"alpine"}
    assert "zeta" not in r.text.lower()
    r = await client.get(url, headers=_auth(tokens, "viewer"))
    assert r.json()["organisations"] == []
    assert r.json()["quantities"]["energy_kwh"]["total"] == pytest.approx(1440.0)
    assert r.json()["quantities"]["energy_kwh"]["by_site"] == {}


async def test_statement_page_is_printable_and_scoped(api: Any) -> None:
    client, tokens = api
    url = f"{API_PREFIX}/reports/statement"
    r = await client.get(url, params={"lang": "en"}, headers=_auth(tokens, "coordinator"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "<svg" in html and "@page" in html and "<script" not in html.lower()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "Annual environmental statement 2026" in html
    assert "pm10-day-limit" in html and "Zeta Latteria" in html
    assert "default-src 'none'" in r.headers["content-security-policy"]
    r = await client.get(url, headers=_auth(tokens, "facility_manager"))
    assert "Dichiarazione ambientale" in r.text
    assert "zeta" not in r.text.lower()
    r = await client.get(url, headers=_auth(tokens, "viewer"))
    assert r.status_code == 200 and "Alpine" not in r.text and "pm10" not in r.text
