"""A territory for the public page's tests: public and private air stations, public and
private consumption, public and internal alerts, and secrets everywhere a leak could hide.

Values are constants chosen so every public figure can be computed by hand:

- `aq-town` (public body): PM2.5 12, PM10 20, NO2 30, O3 70, SO2 5 µg/m³ every 5 minutes
  → EAQI bands 2, 2, 3, 2, 1 → station band 3 (moderate), set by NO2.
- `aq-pass` (public body): NO2 250 in the last 3 hours (over the 200 hourly limit, EAQI
  band 6), PM10 60 all yesterday (over the 50 daily limit), O3 with only two readings in
  the last hour (no valid hour: the EEA's O3 requirement fails → no station band).
- `aq-zeta` (a private firm's station, not marked public): must never show (PRIVATE_*).
- Energy this month: town hall 10 kWh/h (public), hotel 20 kWh/h (private), ski lift
  5 kWh/h (private, meter marked public); the same month last year 8, 20 and 5 kWh/h.
  Water this year only (last year null).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import yaml

from ecocluster.api import ApiDeps, HotWindowLive, TokenStore
from ecocluster.core.registry import Cluster, load_cluster
from ecocluster.core.settings import Settings
from ecocluster.core.types import ReadingBatch, SeriesKey
from ecocluster.ingest.stores.memory import MemoryStore
from ecocluster.rules.engine import RuleEngine
from tests.api.conftest import Clock, make_tokens
from tests.api.memory_alerts import MemoryAlerts

#: 2026-11-24 11:00:00 UTC (12:00 in Rome), an hour boundary.
NOW = 1_795_518_000_000
HOUR = 3_600_000
STEP = 300_000
TZ = ZoneInfo("Europe/Rome")

APPRISE_SECRET = "hunter2-apprise-pw"
TOKEN_SECRET = "tok-5f3e9a1c-secret"
DB_SECRET = "pg-pass-77zz"
MQTT_SECRET = "mqtt-pass-q9q9"
INFLUX_SECRET = "influx-tok-4k4k"

DOC: dict[str, Any] = {
    "territory": {"id": "valley", "name": "Valle Verde", "timezone": "Europe/Rome"},
    "organisations": [
        {"id": "comune", "name": "Comune di Valle", "kind": "public"},
        {"id": "parco", "name": "Parco della Valle", "kind": "public"},
        {"id": "alpine", "name": "Alpine Resort SRL", "kind": "private"},
        {"id": "zeta", "name": "Zeta Latteria SpA", "kind": "private"},
    ],
    "sites": [
        {
            "id": "aq-town",
            "org": "comune",
            "name": "Stazione Municipio",
            "category": "air_station",
            "lat": 44.43,
            "lon": 10.40,
            "altitude_m": 700,
        },
        {
            "id": "aq-pass",
            "org": "parco",
            "name": "Stazione Passo",
            "category": "air_station",
            "lat": 44.30,
            "lon": 10.22,
            "altitude_m": 1261,
        },
        {
            "id": "aq-zeta",
            "org": "zeta",
            "name": "Centralina Zeta Privata",
            "category": "air_station",
            "lat": 44.41,
            "lon": 10.41,
        },
        {
            "id": "town-hall",
            "org": "comune",
            "name": "Municipio",
            "category": "town_hall",
            "lat": 44.44,
            "lon": 10.40,
        },
        {
            "id": "alpine-hotel",
            "org": "alpine",
            "name": "Hotel Alpino Segreto",
            "category": "hotel",
            "lat": 44.29,
            "lon": 10.24,
        },
        {
            "id": "alpine-lift",
            "org": "alpine",
            "name": "Seggiovia Alpina",
            "category": "ski_lift",
            "lat": 44.30,
            "lon": 10.23,
        },
        {
            "id": "zeta-dairy",
            "org": "zeta",
            "name": "Caseificio Zeta",
            "category": "dairy",
            "lat": 44.42,
            "lon": 10.41,
        },
    ],
    "meters": [
        {
            "id": "aq-01",
            "site": "aq-town",
            "interval": "5m",
            "quantities": ["pm25_ugm3", "pm10_ugm3", "no2_ugm3", "o3_ugm3", "so2_ugm3"],
        },
        {
            "id": "aq-02",
            "site": "aq-pass",
            "interval": "5m",
            "quantities": ["pm10_ugm3", "no2_ugm3", "o3_ugm3"],
        },
        {
            "id": "aq-z9",
            "site": "aq-zeta",
            "interval": "5m",
            "quantities": ["pm10_ugm3", "no2_ugm3", "o3_ugm3"],
        },
        {"id": "em-town", "site": "town-hall", "quantities": ["energy_kwh"]},
        {"id": "wm-town", "site": "town-hall", "quantities": ["water_m3"]},
        {"id": "em-hotel-secret", "site": "alpine-hotel", "quantities": ["energy_kwh"]},
        {"id": "em-lift", "site": "alpine-lift", "quantities": ["energy_kwh"], "public": True},
        {
            "id": "wm-zeta-secret",
            "site": "zeta-dairy",
            "quantities": ["water_m3"],
            "mqtt_username": "zeta-device",
            "mqtt_password": "devpass-zeta-xx1",
        },
    ],
    "contacts": [
        {
            "id": "rossi",
            "name": "Mario Rossi",
            "org": "comune",
            "roles": ["emergency_coordinator"],
            "phones": ["+39 333 1234567"],
            "emails": ["mario.rossi@example.org"],
            "notify": [f"mailto://mario:{APPRISE_SECRET}@smtp.example.org?to=mario@example.org"],
        },
        {
            "id": "verdi",
            "name": "Lucia Verdi",
            "org": "zeta",
            "roles": ["facility_manager"],
            "notify": [f"json://user:{APPRISE_SECRET}@hooks.example.org/zeta"],
        },
    ],
    "rules": [
        {
            "name": "no2-hourly",
            "type": "threshold",
            "quantity": "no2_ugm3",
            "above": 200,
            "window": "1h",
            "severity": "critical",
            "match": {"category": "air_station"},
            "public": True,
        },
        {
            "name": "power-overload",
            "type": "threshold",
            "quantity": "energy_kwh",
            "above": 1000,
            "severity": "warning",
            "description": "internal: call Zeta's boss",
        },
    ],
    "routes": [{"match": {"severity": "critical"}, "notify": ["rossi", "verdi"]}],
}
#: Strings a public answer must never contain.
PRIVATE_STRINGS = (
    "aq-zeta",
    "Centralina",
    "aq-z9",
    "zeta",
    "Zeta",
    "alpine-hotel",
    "Hotel Alpino",
    "em-hotel-secret",
    "wm-zeta-secret",
    "Caseificio",
    "Alpine Resort",
    "Mario",
    "Rossi",
    "rossi",
    "verdi",
    "Verdi",
    "333 1234567",
    "example.org",
    "internal: call",
    "power-overload",
    "comment-xyzzy",
    "assignee-plugh",
    "zeta-device",
    "devpass-zeta-xx1",
    APPRISE_SECRET,
    TOKEN_SECRET,
    DB_SECRET,
    MQTT_SECRET,
    INFLUX_SECRET,
    "333.3",
    "77.7",
)

#: Secrets proper: not even the API's static description may hold these.
SECRETS = (APPRISE_SECRET, TOKEN_SECRET, DB_SECRET, MQTT_SECRET, INFLUX_SECRET, "devpass-zeta-xx1")

AIR_TOWN = {
    "pm25_ugm3": 12.0,
    "pm10_ugm3": 20.0,
    "no2_ugm3": 30.0,
    "o3_ugm3": 70.0,
    "so2_ugm3": 5.0,
}


def write_doc(path: Path, doc: dict[str, Any] | None = None) -> Path:
    path.write_text(yaml.safe_dump(doc or DOC, sort_keys=False))
    return path


def _ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=TZ).timestamp() * 1000)


def _series_values(key: SeriesKey, ts: np.ndarray) -> np.ndarray:
    """Air values of one series at times `ts` (see the module docstring)."""
    q = key.quantity
    if key.site == "aq-town":
        return np.full(ts.shape, AIR_TOWN[q])
    if key.site == "aq-zeta":
        return np.full(ts.shape, 77.7)
    # aq-pass
    if q == "no2_ugm3":
        return np.where(ts >= NOW - 3 * HOUR, 250.0, 40.0)
    if q == "pm10_ugm3":
        yesterday = (ts >= _ms(2026, 11, 23, 0)) & (ts < _ms(2026, 11, 24, 0))
        return np.where(yesterday, 60.0, 20.0)
    return np.full(ts.shape, 50.0)  # O3


def air_readings(cluster: Cluster, hours: int = 60) -> ReadingBatch:
    ts_all = np.arange(NOW - hours * HOUR, NOW, STEP, dtype=np.int64)
    idx, tss, vals = [], [], []
    for i, key in enumerate(cluster.series):
        if key.quantity.endswith("_ugm3"):
            ts = ts_all
            if key.site == "aq-pass" and key.quantity == "o3_ugm3":
                ts = ts_all[(ts_all < NOW - HOUR) | (ts_all >= NOW - 2 * STEP)]
            idx.append(np.full(ts.shape, i, np.int64))
            tss.append(ts)
            vals.append(_series_values(key, ts))
    ts = np.concatenate(tss)
    return ReadingBatch(
        cluster.series, np.concatenate(idx), ts, np.concatenate(vals), np.full(ts.shape, np.nan)
    )


def register_readings(cluster: Cluster) -> ReadingBatch:
    """Hourly register readings (delta = the hour's use) this month to now and the same
    span last year."""
    this = np.arange(_ms(2026, 11, 1, 0), NOW, HOUR, dtype=np.int64)
    last = np.arange(_ms(2025, 11, 1, 0), _ms(2025, 11, 24, 12), HOUR, dtype=np.int64)
    rates = {
        "em-town": (10.0, 8.0),
        "em-hotel-secret": (20.0, 20.0),
        "em-lift": (5.0, 5.0),
        "wm-town": (2.0, None),
        "wm-zeta-secret": (3.0, None),
    }
    idx, tss, vals, deltas = [], [], [], []
    for i, key in enumerate(cluster.series):
        if key.meter not in rates:
            continue
        for ts, rate in ((last, rates[key.meter][1]), (this, rates[key.meter][0])):
            if rate is None:
                continue
            idx.append(np.full(ts.shape, i, np.int64))
            tss.append(ts)
            vals.append(1000 + rate * np.arange(ts.shape[0], dtype=np.float64))
            deltas.append(np.full(ts.shape, rate))
    return ReadingBatch(
        cluster.series,
        np.concatenate(idx),
        np.concatenate(tss),
        np.concatenate(vals),
        np.concatenate(deltas),
    )


@dataclass
class PublicWorld:
    cluster: Cluster
    deps: ApiDeps
    alerts: MemoryAlerts
    tokens: dict[str, str]
    ids: dict[str, str]


async def build_public_world(
    tmp_path: Path, *, store: Any = None, doc: dict[str, Any] | None = None, **settings: Any
) -> PublicWorld:
    tmp_path.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (test setup)
    cluster = load_cluster(write_doc(tmp_path / "valley.yaml", doc))
    clock = Clock(NOW)
    store = store if store is not None else MemoryStore()
    await store.open()
    await store.write(air_readings(cluster))
    await store.write(register_readings(cluster))
    alerts = MemoryAlerts(clock)
    ids = {}
    pub = alerts.fire(
        "no2-hourly",
        {"org": "parco", "site": "aq-pass", "meter": "aq-02"},
        severity="critical",
        value=250.0,
        threshold=200.0,
        at_ms=NOW - 2 * HOUR,
    )
    priv = alerts.fire(
        "no2-hourly",
        {"org": "zeta", "site": "aq-zeta", "meter": "aq-z9"},
        severity="critical",
        value=333.3,
        threshold=200.0,
        at_ms=NOW - HOUR,
    )
    old = alerts.fire(
        "no2-hourly",
        {"org": "comune", "site": "aq-town", "meter": "aq-01"},
        severity="critical",
        value=210.0,
        threshold=200.0,
        at_ms=NOW - 30 * HOUR,
    )
    internal = alerts.fire(
        "power-overload", {"org": "alpine", "site": "alpine-hotel", "meter": "em-hotel-secret"}
    )
    alerts.resolve(old.id)
    for a in (pub, priv, internal):
        await alerts.ack(a.id, by="rossi", comment="comment-xyzzy")
        await alerts.assign(a.id, assignee="assignee-plugh", by="rossi")
    ids.update(public=pub.id, private=priv.id, resolved=old.id, internal=internal.id)
    token_store = TokenStore(tmp_path / "tokens.sqlite")
    tokens = make_tokens(token_store)
    config: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "api_rate_per_s": 0,
        "mqtt_url": f"mqtt://ingest:{MQTT_SECRET}@127.0.0.1:1883",
        "influx_token": INFLUX_SECRET,
        "alert_db_url": f"postgresql+psycopg://eco:{DB_SECRET}@db.example.org/eco",
        "alert_link_secret": TOKEN_SECRET,
    } | settings
    deps = ApiDeps(
        cluster=cluster,
        settings=Settings(**config),
        store=store,
        live=HotWindowLive(RuleEngine(cluster)),
        alerts=alerts,
        tokens=token_store,
        clock=clock,
    )
    return PublicWorld(cluster, deps, alerts, tokens, ids)
