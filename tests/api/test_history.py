"""History and consumption: the numbers in sight (constant rates), both formats, the bounds,
and the same answer from InfluxDB and DuckDB (real influxd, real DuckDB file)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import pytest

from ecocluster.api import create_app
from ecocluster.ingest.stores.duckdb import DuckDBStore
from ecocluster.ingest.stores.influx import InfluxStore
from tests.api.conftest import NOW, World, build_world
from tests.services import InfluxServer

H = 3_600_000


async def test_history_per_series_and_summed_per_site(world: World) -> None:
    assert world.client is not None
    auth = world.auth("coordinator")
    r = await world.client.get(
        "/api/v1/history",
        headers=auth,
        params={"quantity": "power_w", "start": "-2h", "every": "1h", "group": "series"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["every_ms"] == H and body["end_ms"] == NOW and body["start_ms"] == NOW - 2 * H
    by_meter = {s["key"]["meter"]: s for s in body["series"]}
    assert set(by_meter) == {"em-01", "em-02", "em-09"}
    assert by_meter["em-02"]["values"] == [20000.0, 20000.0]
    assert by_meter["em-02"]["ts_ms"] == [NOW - 2 * H, NOW - H]
    r = await world.client.get(
        "/api/v1/history",
        headers=auth,
        params={"quantity": "power_w", "start": "-2h", "every": "1h", "group": "org"},
    )
    sums = {s["key"]["org"]: s["values"] for s in r.json()["series"]}
    assert sums == {"alpine": [25000.0, 25000.0], "zeta": [7000.0, 7000.0]}


async def test_consumption_per_bucket_from_deltas(world: World) -> None:
    assert world.client is not None
    r = await world.client.get(
        "/api/v1/history",
        headers=world.auth("facility_manager"),
        params={
            "quantity": "energy_kwh",
            "field": "delta",
            "fn": "sum",
            "every": "1h",
            "start": "-3h",
            "group": "site",
        },
    )
    assert r.status_code == 200, r.text
    sites = {s["key"]["site"]: s["values"] for s in r.json()["series"]}
    assert sites == {
        "alpine-hotel": pytest.approx([5.0] * 3),
        "alpine-lift": pytest.approx([20.0] * 3),
    }
    r = await world.client.get(
        "/api/v1/consumption",
        headers=world.auth("facility_manager"),
        params={"by": "org", "start": "-10h"},
    )
    body = r.json()
    assert body["unit"] == "kWh" and [i["key"] for i in body["items"]] == ["alpine"]
    assert body["total"] == pytest.approx(250.0)


async def test_raw_readings_and_csv(world: World) -> None:
    assert world.client is not None
    params = {
        "quantity": "flow_lpm",
        "site": "alpine-hotel",
        "meter": "wm-01",
        "start": "-15m",
        "format": "csv",
    }
    r = await world.client.get(
        "/api/v1/history", headers=world.auth("facility_manager"), params=params
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [int(row["ts_ms"]) for row in rows] == [
        NOW - 15 * 60_000 + i * 300_000 for i in range(3)
    ]
    assert {row["meter"] for row in rows} == {"wm-01"}
    assert rows[0]["time"].endswith("Z") and float(rows[0]["value"]) == 30.0


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"start": "-1h", "end": "-2h"}, "start", "before"),
        ({"start": "-900d"}, "start", "400 days"),
        ({"start": "-30d", "every": "1s"}, "every", "too fine"),
        ({"start": "-1h", "every": "0m"}, "every", "longer than zero"),
        ({"start": "-1h", "every": "fortnight"}, "every", "not a duration"),
        ({"start": "yesterday-ish"}, "start", "not a time"),
        ({"site": "nowhere"}, "site", "unknown site"),
        ({"meter": "em-01"}, "meter", "needs site"),
        ({"group": "site"}, "every", "needs every"),
        ({"start": "-8d"}, "every", "7 days"),
        ({"field": "delta"}, "field", "registers"),
        ({"quantity": "bananas"}, "quantity", ""),
    ],
)
async def test_bad_parameters_are_clear_json_errors(
    world: World, params: dict[str, str], field: str, words: str
) -> None:
    assert world.client is not None
    query = {"quantity": "power_w"} | params
    r = await world.client.get("/api/v1/history", headers=world.auth("coordinator"), params=query)
    assert r.status_code in (404, 422), r.text
    error = r.json()["error"]
    assert error["field"] == field and words in error["message"]
    assert error["status"] == r.status_code


async def _history_via(world: World, params: dict[str, str]) -> dict:
    app = create_app(world.deps)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/api/v1/history", params=params, headers=world.auth("coordinator"))
        assert r.status_code == 200, r.text
        return r.json()


@pytest.mark.e2e
async def test_influxdb_and_duckdb_give_the_same_answer(
    tmp_path: Path, territory_path: Path, influxd: InfluxServer, influx_db: str
) -> None:
    duck = await build_world(
        tmp_path / "d", territory_path, store=DuckDBStore(tmp_path / "h.duckdb")
    )
    influx = await build_world(
        tmp_path / "i", territory_path, store=InfluxStore(influxd.url, influx_db)
    )
    cases = [
        {"quantity": "power_w", "start": "-6h", "every": "15m", "fn": "mean"},
        {"quantity": "power_w", "start": "-6h", "every": "1h", "fn": "max", "group": "site"},
        {
            "quantity": "energy_kwh",
            "start": "-24h",
            "every": "1h",
            "fn": "sum",
            "field": "delta",
            "group": "org",
        },
        {"quantity": "water_m3", "start": "-2h", "every": "10m", "fn": "last"},
        {"quantity": "flow_lpm", "start": "-30m", "site": "zeta-dairy", "meter": "wm-09"},
        {"quantity": "power_w", "start": "-5h", "every": "1h", "fn": "count", "group": "territory"},
    ]
    for params in cases:
        a, b = await _history_via(duck, params), await _history_via(influx, params)
        assert a["series"], params
        assert a == b, params
    for w in (duck, influx):
        await w.deps.store.close()
