"""The public API (issue 17): the summary computed by hand, caching (ETag, 304, one
computation per period under a crowd), open data in CSV and JSON with a licence, bounded
ranges, the switch, and the same answer from DuckDB and InfluxDB."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecocluster.api import create_app
from ecocluster.api.public import PublicCache
from ecocluster.ingest.stores.duckdb import DuckDBStore
from ecocluster.ingest.stores.influx import InfluxStore
from tests.api.public_world import NOW, PublicWorld, build_public_world
from tests.services import InfluxServer

SUMMARY = "/api/v1/public/summary"
DATASET_URLS = [
    f"/api/v1/public/opendata/{d}.{f}"
    for d in ("stations-hourly", "eaqi-now", "consumption-monthly", "alerts")
    for f in ("json", "csv")
]


async def _client(world: PublicWorld) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(world.deps))
    return httpx.AsyncClient(transport=transport, base_url="http://public.test")


@pytest.fixture
async def pw(tmp_path: Path) -> AsyncIterator[tuple[PublicWorld, httpx.AsyncClient]]:
    world = await build_public_world(tmp_path)
    async with await _client(world) as client:
        yield world, client
    world.deps.token_store.close()


def _station(body: dict[str, Any], station_id: str) -> dict[str, Any]:
    return next(s for s in body["stations"] if s["id"] == station_id)


async def test_summary_by_hand(pw: tuple[PublicWorld, httpx.AsyncClient]) -> None:
    _world, client = pw
    r = await client.get(SUMMARY)
    assert r.status_code == 200
    body = r.json()
    assert body["territory"] == {"id": "valley", "name": "Valle Verde", "timezone": "Europe/Rome"}
    assert body["generated_at"] == "2026-11-24T11:00:00Z"
    assert body["licence"]["id"] == "CC-BY-4.0"
    assert [s["id"] for s in body["stations"]] == ["aq-town", "aq-pass"]  # not the private one

    town = _station(body, "aq-town")
    eaqi = town["eaqi"]
    assert (eaqi["band"], eaqi["level"], eaqi["pollutant"]) == (3, "moderate", "no2")
    assert eaqi["at"] == "2026-11-24T10:00:00Z"  # the last complete hour
    bands = {p["pollutant"]: (p["value"], p["band"], p["captured"]) for p in eaqi["pollutants"]}
    assert bands == {
        "pm2_5": (12.0, 2, True),
        "pm10": (20.0, 2, True),
        "no2": (30.0, 3, True),
        "o3": (70.0, 2, True),
        "so2": (5.0, 1, True),
    }
    assert town["exceedances"] == []
    chart = town["chart"]
    assert (chart["from"], chart["to"], chart["step_s"]) == (
        "2026-11-22T11:00:00Z",
        "2026-11-24T11:00:00Z",
        3600,
    )
    no2 = next(s for s in chart["series"] if s["pollutant"] == "no2")
    assert len(no2["points"]) == 48 and no2["points"][-1] == ["2026-11-24T10:00:00Z", 30.0]

    passo = _station(body, "aq-pass")
    # O3 has two readings in the last hour: not a valid hour, and the EEA needs O3 at a
    # background station → no station band, while NO2's own band (250 → 6) is shown.
    assert passo["eaqi"]["band"] is None and passo["eaqi"]["missing"] == ["o3"]
    o3 = next(p for p in passo["eaqi"]["pollutants"] if p["pollutant"] == "o3")
    assert (o3["value"], o3["band"], o3["captured"]) == (None, None, False)
    kinds = {(e["pollutant"], e["kind"], e["averaging"]): e for e in passo["exceedances"]}
    hourly = kinds[("no2", "limit_value", "1h")]
    assert (hourly["value"], hourly["limit"], hourly["since"]) == (
        250.0,
        200.0,
        "2026-11-24T08:00:00Z",
    )
    daily = kinds[("pm10", "limit_value", "24h")]  # yesterday 00:00-24:00 CET at 60
    assert (daily["value"], daily["limit"], daily["since"]) == (60.0, 50.0, "2026-11-22T23:00:00Z")
    rule = kinds[("no2", "alert_rule", "1h")]
    assert (rule["value"], rule["limit"]) == (250.0, 200.0)
    assert ("no2", "alert_threshold", "1h") not in kinds  # 400 not reached

    energy, water = body["consumption"]
    hours = 23 * 24 + 12  # 1 Nov 00:00 CET → 24 Nov 12:00 CET
    assert energy["month"] == "2026-11" and energy["to_date"] is True
    assert energy["this_month"] == pytest.approx(hours * (10 + 20 + 5))
    assert energy["same_month_last_year"] == pytest.approx(hours * (8 + 20 + 5))
    assert energy["change_pct"] == pytest.approx(round(2 / 33 * 100, 2))
    assert water["this_month"] == pytest.approx(hours * (2 + 3))
    assert water["same_month_last_year"] is None and water["change_pct"] is None


async def test_public_alerts_are_short_lines_without_internal_detail(
    pw: tuple[PublicWorld, httpx.AsyncClient],
) -> None:
    world, client = pw
    alerts = (await client.get(SUMMARY)).json()["alerts"]
    assert len(alerts) == 3  # two open, one resolved; the internal rule's alert is absent
    internal_ids = {world.ids[k] for k in ("public", "private", "resolved", "internal")}
    assert not {a["id"] for a in alerts} & internal_ids
    by_place = {a["place"]: a for a in alerts}
    passo = by_place["Stazione Passo"]
    assert passo["state"] == "open" and passo["severity"] == "critical"
    assert "250" in passo["text_en"] and "NO₂" in passo["text_it"]
    private = by_place["Valle Verde"]  # a private firm's station: territory, no value
    assert "333" not in private["text_it"] and private["text_en"].endswith("Valle Verde")
    resolved = by_place["Stazione Municipio"]
    assert resolved["state"] == "resolved" and resolved["resolved_at"] == "2026-11-24T11:00:00Z"
    assert set(resolved) == {
        "id",
        "state",
        "severity",
        "text_it",
        "text_en",
        "place",
        "since",
        "resolved_at",
    }


async def test_alerts_older_than_the_window_drop_out(tmp_path: Path) -> None:
    world = await build_public_world(tmp_path, public_alert_days=1)
    world.deps.clock.now_ms = NOW + 2 * 86_400_000  # type: ignore[attr-defined]
    async with await _client(world) as client:
        alerts = (await client.get(SUMMARY)).json()["alerts"]
    assert [a["state"] for a in alerts] == ["open", "open"]


async def test_etag_cache_control_304_and_no_cookie(
    pw: tuple[PublicWorld, httpx.AsyncClient],
) -> None:
    _world, client = pw
    for url in (SUMMARY, "/api/v1/public/opendata", *DATASET_URLS):
        r = await client.get(url)
        assert r.status_code == 200, url
        etag = r.headers["etag"]
        assert etag.startswith('"') and not etag.startswith("W/"), url
        assert r.headers["cache-control"] == "public, max-age=60"
        assert "set-cookie" not in r.headers and "vary" not in r.headers
        again = await client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"", url
        assert again.headers["etag"] == etag
        listed = await client.get(url, headers={"If-None-Match": f'"nope", W/{etag}'})
        assert listed.status_code == 304
        stale = await client.get(url, headers={"If-None-Match": '"something-else"'})
        assert stale.status_code == 200 and stale.content == r.content


async def test_a_crowd_costs_one_computation(pw: tuple[PublicWorld, httpx.AsyncClient]) -> None:
    _world, client = pw
    results = await asyncio.gather(*(client.get(SUMMARY) for _ in range(40)))
    assert {r.status_code for r in results} == {200}
    assert len({r.headers["etag"] for r in results}) == 1
    cache = client._transport.app.state.public_cache  # type: ignore[attr-defined]
    assert cache.computations["summary"] == 1


async def test_cache_expires_after_max_age_and_failures_are_not_cached() -> None:
    now = [0.0]
    cache = PublicCache(60, clock=lambda: now[0])
    calls = []

    async def build() -> tuple[bytes, str, dict[str, str]]:
        calls.append(1)
        await asyncio.sleep(0.01)
        return f"body{len(calls)}".encode(), "text/plain", {}

    first = await asyncio.gather(*(cache.get(("k",), build) for _ in range(10)))
    assert len(calls) == 1 and {e.body for e in first} == {b"body1"}
    now[0] = 59.9
    assert (await cache.get(("k",), build)).body == b"body1"
    now[0] = 60.0
    assert (await cache.get(("k",), build)).body == b"body2"

    async def broken() -> tuple[bytes, str, dict[str, str]]:
        raise RuntimeError("store down")

    with pytest.raises(RuntimeError):
        await cache.get(("x",), broken)
    assert (await cache.get(("x",), build)).body == b"body3"  # tried again, not cached
    off = PublicCache(0)
    await off.get(("k",), build)
    await off.get(("k",), build)
    assert off.computations["k"] == 2


async def test_open_data_catalogue_and_datasets(
    pw: tuple[PublicWorld, httpx.AsyncClient],
) -> None:
    _world, client = pw
    cat = (await client.get("/api/v1/public/opendata")).json()
    assert cat["licence"]["url"] == "https://creativecommons.org/licenses/by/4.0/"
    urls = {u for d in cat["datasets"] for u in d["formats"].values()}
    assert urls == set(DATASET_URLS)
    for url in DATASET_URLS:
        r = await client.get(url)
        assert r.status_code == 200, (url, r.text[:300])
        assert r.headers["link"] == '<https://creativecommons.org/licenses/by/4.0/>; rel="license"'
        if url.endswith(".json"):
            body = r.json()
            assert body["licence"]["id"] == "CC-BY-4.0" and body["fields"]
            assert all(set(row) == set(body["fields"]) for row in body["rows"])
        else:
            assert r.headers["content-type"].startswith("text/csv")
            rows = list(csv.DictReader(io.StringIO(r.text)))
            assert rows and all(row["licence"] == "CC-BY-4.0" for row in rows)


async def test_hourly_dataset_has_the_capture_flag(
    pw: tuple[PublicWorld, httpx.AsyncClient],
) -> None:
    _world, client = pw
    r = await client.get(
        "/api/v1/public/opendata/stations-hourly.csv",
        params={"start": "2026-11-24T09:00:00Z", "end": "2026-11-24T11:00:00Z", "pollutant": "o3"},
    )
    rows = list(csv.DictReader(io.StringIO(r.text)))
    got = {(row["station"], row["hour_start"]): (row["value"], row["valid"]) for row in rows}
    assert got == {
        ("aq-town", "2026-11-24T09:00:00Z"): ("70.0", "true"),
        ("aq-town", "2026-11-24T10:00:00Z"): ("70.0", "true"),
        ("aq-pass", "2026-11-24T09:00:00Z"): ("50.0", "true"),
        ("aq-pass", "2026-11-24T10:00:00Z"): ("", "false"),
    }
    only = await client.get(
        "/api/v1/public/opendata/stations-hourly.json", params={"station": "aq-town"}
    )
    assert {row["station"] for row in only.json()["rows"]} == {"aq-town"}
    assert len(only.json()["rows"]) == 48 * 5


async def test_monthly_dataset_scopes(pw: tuple[PublicWorld, httpx.AsyncClient]) -> None:
    _world, client = pw
    r = await client.get(
        "/api/v1/public/opendata/consumption-monthly.json",
        params={"from": "2025-11", "to": "2026-11"},
    )
    rows = [row for row in r.json()["rows"] if row["quantity"] == "energy_kwh"]
    nov25 = {row["scope"]: row for row in rows if row["month"] == "2025-11"}
    last_year_hours = 30 * 24  # the whole of November 2025 has no data past 24 Nov 12:00
    assert nov25["territory"]["value"] == pytest.approx(564 * 33)
    assert nov25["organisation"]["org"] == "comune"
    assert nov25["organisation"]["value"] == pytest.approx(564 * 8)
    assert nov25["private_organisations"]["value"] == pytest.approx(564 * 25)
    assert (nov25["meter"]["site"], nov25["meter"]["meter"]) == ("alpine-lift", "em-lift")
    assert last_year_hours > 564
    nov26 = {row["scope"]: row for row in rows if row["month"] == "2026-11"}
    assert nov26["territory"]["to_date"] is True
    dec25 = {row["scope"]: row for row in rows if row["month"] == "2025-12"}
    assert dec25["territory"]["value"] is None  # no data is not zero


@pytest.mark.parametrize(
    ("url", "params", "field"),
    [
        ("stations-hourly.json", {"start": "2020-01-01", "end": "2026-11-24"}, "start"),
        ("stations-hourly.csv", {"start": "2026-11-24", "end": "2026-11-23"}, "start"),
        ("stations-hourly.json", {"start": "yesterday-ish"}, "start"),
        ("stations-hourly.json", {"end": "3000-01-01"}, "end"),
        ("consumption-monthly.json", {"from": "2020-01", "to": "2026-11"}, "from"),
        ("consumption-monthly.csv", {"from": "2026-13"}, "from"),
        ("consumption-monthly.json", {"to": "2027-02"}, "to"),
        ("consumption-monthly.json", {"from": "2026-11", "to": "2026-01"}, "from"),
        ("alerts.json", {"days": "400"}, "days"),
    ],
)
async def test_absurd_ranges_are_refused_naming_the_parameter(
    pw: tuple[PublicWorld, httpx.AsyncClient], url: str, params: dict[str, str], field: str
) -> None:
    _world, client = pw
    r = await client.get(f"/api/v1/public/opendata/{url}", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


async def test_a_private_station_is_unknown(pw: tuple[PublicWorld, httpx.AsyncClient]) -> None:
    _world, client = pw
    for station in ("aq-zeta", "nowhere"):
        r = await client.get(
            "/api/v1/public/opendata/stations-hourly.json", params={"station": station}
        )
        assert r.status_code == 404 and "aq-zeta" not in r.text


async def test_licence_is_configurable(tmp_path: Path) -> None:
    world = await build_public_world(
        tmp_path,
        public_licence_id="IODL-2.0",
        public_licence_name="Italian Open Data License v2.0",
        public_licence_url="https://www.dati.gov.it/iodl/2.0/",
        public_licence_attribution="Unione dei Comuni",
        public_cache_max_age_s=300,
    )
    async with await _client(world) as client:
        body = (await client.get(SUMMARY)).json()
        csv_answer = await client.get("/api/v1/public/opendata/alerts.csv")
    assert body["licence"] == {
        "id": "IODL-2.0",
        "name": "Italian Open Data License v2.0",
        "url": "https://www.dati.gov.it/iodl/2.0/",
        "attribution": "Unione dei Comuni",
    }
    assert csv_answer.headers["link"] == '<https://www.dati.gov.it/iodl/2.0/>; rel="license"'
    assert csv_answer.headers["cache-control"] == "public, max-age=300"


async def test_page_and_assets_are_served(pw: tuple[PublicWorld, httpx.AsyncClient]) -> None:
    _world, client = pw
    page = await client.get("/public")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "set-cookie" not in page.headers
    asset = await client.get("/public/static/public.js")
    assert asset.status_code == 200


async def test_switched_off_every_public_url_is_404(tmp_path: Path) -> None:
    world = await build_public_world(tmp_path, public_enabled=False)
    async with await _client(world) as client:
        for url in (
            "/public",
            "/public/static/public.js",
            SUMMARY,
            "/api/v1/public/opendata",
            *DATASET_URLS,
        ):
            r = await client.get(url)
            assert r.status_code == 404, url
        schema = (await client.get("/api/v1/openapi.json")).json()
        assert not [p for p in schema["paths"] if "/public" in p]
        assert (await client.get("/api/v1/health/live")).status_code == 200


async def test_switch_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from ecocluster.core.settings import load_settings

    monkeypatch.setenv("ECOCLUSTER_PUBLIC_ENABLED", "false")
    assert load_settings({}).public_enabled is False
    monkeypatch.delenv("ECOCLUSTER_PUBLIC_ENABLED")
    assert load_settings({}).public_enabled is True


async def _all_public_answers(world: PublicWorld) -> dict[str, Any]:
    async with await _client(world) as client:
        out: dict[str, Any] = {SUMMARY: (await client.get(SUMMARY)).json()}
        for url in DATASET_URLS:
            r = await client.get(url, params={"start": "-30h"} if "hourly" in url else None)
            assert r.status_code == 200, (url, r.text[:300])
            out[url] = r.json() if url.endswith(".json") else r.text
    return out


async def test_duckdb_and_influxdb_give_the_same_answer(
    tmp_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    duck = await build_public_world(tmp_path / "d", store=DuckDBStore(tmp_path / "p.duckdb"))
    influx = await build_public_world(tmp_path / "i", store=InfluxStore(influxd.url, influx_db))
    a, b = await _all_public_answers(duck), await _all_public_answers(influx)
    assert a[SUMMARY]["stations"][0]["eaqi"]["band"] == 3
    assert a == b
    for w in (duck, influx):
        w.deps.token_store.close()
        await w.deps.store.close()


async def test_summary_survives_the_alert_service_being_down(tmp_path: Path) -> None:
    world = await build_public_world(tmp_path)
    world.alerts.down = True
    async with await _client(world) as client:
        r = await client.get(SUMMARY)
    assert r.status_code == 200
    body = r.json()
    assert body["alerts"] == [] and _station(body, "aq-town")["eaqi"]["band"] == 3


async def test_public_alerts_from_the_real_alert_service(tmp_path: Path) -> None:
    import copy

    from ecocluster.alerts.clock import ManualClock
    from ecocluster.alerts.service import AlertService
    from ecocluster.api.alert_adapter import ServiceAlerts
    from ecocluster.core.transitions import Transition
    from ecocluster.core.types import Severity
    from tests.api.public_world import DOC

    doc = copy.deepcopy(DOC)
    for contact in doc["contacts"]:
        contact["notify"] = []  # nothing to send to: this test reads the alert list only
    world = await build_public_world(tmp_path, doc=doc)
    service = AlertService(
        world.cluster,
        world.deps.settings,
        clock=ManualClock(NOW),
        db_url=f"sqlite:///{tmp_path / 'alerts.sqlite'}",
    )
    await service.start()

    def firing(rule: str, org: str, site: str, meter: str, value: float) -> Transition:
        labels = {"rule": rule, "severity": "critical", "org": org, "site": site, "meter": meter}
        return Transition(
            rule=rule, state="firing", previous="pending", severity=Severity.CRITICAL,
            labels=labels, value=value, threshold=200.0, since_ms=NOW - 600_000, at_ms=NOW,
        )  # fmt: skip

    try:
        await service.on_transitions(
            [
                firing("no2-hourly", "parco", "aq-pass", "aq-02", 250.0),
                firing("no2-hourly", "zeta", "aq-zeta", "aq-z9", 333.3),
                firing("power-overload", "alpine", "alpine-hotel", "em-hotel-secret", 5000.0),
            ]
        )
        world.deps.alerts = ServiceAlerts(service, world.deps.settings)  # type: ignore[assignment]
        world.deps.__post_init__()
        async with await _client(world) as client:
            body = (await client.get(SUMMARY)).json()
            internal = await service.list_alerts()
        lines = body["alerts"]
        assert sorted(a["place"] for a in lines) == ["Stazione Passo", "Valle Verde"]
        assert all(a["state"] == "open" for a in lines)
        text = str(body)
        assert len(internal) == 3
        public_ids = {a["id"] for a in lines}
        for record in internal:
            assert str(record.id) not in public_ids
            assert f"'{record.code}'" not in text and f" {record.code} " not in text
        assert "333" not in text and "alpine-hotel" not in text
        passo = _station(body, "aq-pass")
        assert any(e["kind"] == "alert_rule" for e in passo["exceedances"])
    finally:
        await service.close()


async def test_distinct_queries_compute_a_few_at_a_time() -> None:
    cache = PublicCache(60, max_concurrent=2)
    running, peak = 0, 0

    async def build() -> tuple[bytes, str, dict[str, str]]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return b"x", "text/plain", {}

    await asyncio.gather(*(cache.get(("q", i), build) for i in range(10)))
    assert peak == 2 and cache.computations["q"] == 10
