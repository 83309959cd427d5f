"""Indicators checked against register deltas computed by hand, with a meter reset inside
the period; the real DuckDB store, and once the real influxd."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import yaml

from ecocluster.core.registry import Cluster, load_cluster
from ecocluster.core.types import ReadingBatch
from ecocluster.ingest.registers import RegisterTracker
from ecocluster.ingest.stores.duckdb import DuckDBStore
from ecocluster.ingest.stores.influx import InfluxStore
from ecocluster.rules.indicators import territory_indicators

ROME = ZoneInfo("Europe/Rome")
H = 3_600_000
DOC: dict[str, Any] = {
    "territory": {
        "id": "valley",
        "name": "Valley",
        "timezone": "Europe/Rome",
        "emission_factors": {
            "energy_kwh": {"kg_per_unit": 0.25, "year": 2023, "source": "test factor"}
        },
    },
    "organisations": [
        {"id": "hotel", "name": "Hotel", "kind": "private", "attributes": {"bed_nights": 400}},
        {
            "id": "dairy",
            "name": "Dairy",
            "kind": "private",
            "attributes": {"milk_litres": 20000, "employees": 4},
        },
    ],
    "sites": [
        {"id": "h1", "org": "hotel", "name": "H1", "category": "hotel", "lat": 44, "lon": 10},
        {"id": "d1", "org": "dairy", "name": "D1", "category": "dairy", "lat": 44, "lon": 10},
    ],
    "meters": [
        {"id": "em-h", "site": "h1", "quantities": ["energy_kwh"]},
        {"id": "em-d", "site": "d1", "quantities": ["energy_kwh", "water_m3"]},
    ],
}
#: 2026-01-01 00:00 in Rome; readings run hourly from 2025-12-31 22:00 to 2026-01-03 00:00.
Y0 = int(datetime(2026, 1, 1, tzinfo=ROME).timestamp() * 1000)
TS = Y0 + H * np.arange(-2, 48, dtype=np.int64)
#: The hotel's register: +10 kWh/h, reset at 2026-01-01 12:00 to 3.0, then +10 kWh/h again.
HOTEL = np.r_[1000 + 10.0 * np.arange(14), 3.0 + 10.0 * np.arange(36)]
DAIRY_KWH = 500 + 4.0 * np.arange(50)
DAIRY_M3 = 20 + 0.5 * np.arange(50)
# By hand, for readings in [2026-01-01 00:00, 2026-01-03 00:00):
# hotel: readings at 00:00 … 11:00 each +10 (12 × 10 = 120; 00:00's delta is from 23:00),
# the 12:00 reading drops 1130 → 3: a reset, booked as 3 (counted from zero), then 35
# rises of 10 (350): 120 + 3 + 350 = 473. Day 1: 120 + 3 + 11 × 10 = 233; day 2: 240.
# dairy: 48 × 4 = 192 kWh, 48 × 0.5 = 24 m³.
HOTEL_KWH = 473.0
DAIRY_TOTAL_KWH = 192.0


def _cluster(tmp_path: Path) -> Cluster:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(DOC, sort_keys=False))
    return load_cluster(path)


def _batch(cluster: Cluster) -> ReadingBatch:
    series = list(cluster.series)
    values = {
        ("em-h", "energy_kwh"): HOTEL,
        ("em-d", "energy_kwh"): DAIRY_KWH,
        ("em-d", "water_m3"): DAIRY_M3,
    }
    idx, vals = [], []
    for i, key in enumerate(series):
        idx.append(np.full(TS.shape, i, np.int64))
        vals.append(values[(key.meter, key.quantity)])
    raw = ReadingBatch(
        series,
        np.concatenate(idx),
        np.tile(TS, len(series)),
        np.concatenate(vals),
        np.full(TS.shape[0] * len(series), np.nan),
    )
    with_deltas, flags = RegisterTracker(cluster).apply(raw)
    assert len(flags.rows["reset"]) == 1  # the ingest stage saw the reset
    return with_deltas


async def _check(store: Any, cluster: Cluster) -> None:
    await store.write(_batch(cluster))
    now = Y0 + 48 * H
    report = await territory_indicators(cluster, store, year=2026, now_ms=now)
    energy = report.quantities["energy_kwh"]
    assert energy.by_org == pytest.approx({"hotel": HOTEL_KWH, "dairy": DAIRY_TOTAL_KWH})
    assert energy.total == pytest.approx(HOTEL_KWH + DAIRY_TOTAL_KWH)
    assert energy.by_day["h1"] == pytest.approx({"2026-01-01": 233.0, "2026-01-02": 240.0})
    assert energy.by_month["hotel"] == pytest.approx({"2026-01": HOTEL_KWH})
    assert energy.share("hotel") == pytest.approx(HOTEL_KWH / (HOTEL_KWH + DAIRY_TOTAL_KWH))
    # Previous year's same span (1-2 January 2025): no data → no trend.
    assert energy.previous_total == 0.0 and energy.trend is None
    assert energy.co2e_kg(energy.total) == pytest.approx(0.25 * (HOTEL_KWH + DAIRY_TOTAL_KWH))
    water = report.quantities["water_m3"]
    assert water.by_org == pytest.approx({"dairy": 24.0}) and water.factor is None
    rows = {(r["org"], r["quantity"]): r for r in report.org_rows()}
    assert rows[("hotel", "energy_kwh")]["ratios"] == pytest.approx({"bed_nights": HOTEL_KWH / 400})
    assert rows[("dairy", "water_m3")]["ratios"] == pytest.approx(
        {"milk_litres": 24.0 / 20000, "employees": 6.0}
    )
    csv_text = report.to_csv()
    assert csv_text.splitlines()[0].startswith("year,org,quantity,unit,value")
    assert "per_milk_litres" in csv_text.splitlines()[0]
    # A facility manager's view: their organisation only, the territory total unchanged.
    mine = await territory_indicators(
        cluster, store, year=2026, now_ms=now, orgs=frozenset({"dairy"})
    )
    assert set(mine.quantities["energy_kwh"].by_org) == {"dairy"}
    assert "h1" not in mine.quantities["energy_kwh"].by_day
    assert "hotel" not in str(mine.to_dict()["organisations"])


async def test_indicators_from_register_deltas_duckdb(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path)
    store = DuckDBStore(tmp_path / "store.duckdb")
    await store.open()
    try:
        await _check(store, cluster)
        # A trend: the same two days one year later, 10 % more for everyone.
        later = _batch(cluster)
        shift = int(datetime(2027, 1, 1, tzinfo=ROME).timestamp() * 1000) - Y0
        bigger = ReadingBatch(
            later.series,
            later.series_idx,
            later.ts_ms + shift,
            later.values * 1.1,
            later.deltas * 1.1,
        )
        await store.write(bigger)
        report = await territory_indicators(
            cluster,
            store,
            year=2027,
            now_ms=int(datetime(2027, 1, 3, tzinfo=ROME).timestamp() * 1000),
        )
        assert report.quantities["energy_kwh"].trend == pytest.approx(0.1)
    finally:
        await store.close()


async def test_indicators_from_register_deltas_influx(
    tmp_path: Path, influxd: Any, influx_db: str
) -> None:
    cluster = _cluster(tmp_path)
    store = InfluxStore(influxd.url, influx_db)
    await store.open()
    try:
        await _check(store, cluster)
    finally:
        await store.close()
