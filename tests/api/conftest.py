"""A two-organisation territory with a day of readings, alerts and silences on both sides,
a token per role, and the app under test (in-process, through httpx's ASGI transport).

`alpine` is the caller's organisation in scoped tests; everything of `zeta` is the data a
scoped caller must never see: its ids (`ZETA_SECRETS`) must appear in no answer to them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from ecocluster.api import ApiDeps, HotWindowLive, TokenStore, create_app
from ecocluster.core.registry import Cluster, load_cluster
from ecocluster.core.settings import Settings
from ecocluster.core.types import CUMULATIVE_QUANTITIES, ReadingBatch
from ecocluster.ingest.stores.memory import MemoryStore
from ecocluster.rules.engine import RuleEngine
from tests.api.memory_alerts import MemoryAlerts

#: 2026-11-24 11:00:00 UTC (12:00 in Rome), a Tuesday; an hour boundary.
NOW = 1_795_518_000_000
STEP = 300_000
HOURS = 26

TERRITORY: dict[str, Any] = {
    "territory": {"id": "valley", "name": "Valley", "timezone": "Europe/Rome"},
    "organisations": [
        {"id": "alpine", "name": "Alpine Resort", "kind": "private"},
        {"id": "zeta", "name": "Zeta Latteria", "kind": "private"},
    ],
    "sites": [
        {
            "id": "alpine-hotel",
            "org": "alpine",
            "name": "Hotel Alpino",
            "category": "hotel",
            "lat": 44.29,
            "lon": 10.24,
        },
        {
            "id": "alpine-lift",
            "org": "alpine",
            "name": "Seggiovia",
            "category": "ski_lift",
            "lat": 44.30,
            "lon": 10.22,
        },
        {
            "id": "zeta-dairy",
            "org": "zeta",
            "name": "Caseificio Zeta",
            "category": "dairy",
            "lat": 44.43,
            "lon": 10.40,
        },
    ],
    "meters": [
        {"id": "em-01", "site": "alpine-hotel", "quantities": ["energy_kwh", "power_w"]},
        {"id": "wm-01", "site": "alpine-hotel", "quantities": ["water_m3", "flow_lpm"]},
        {"id": "em-02", "site": "alpine-lift", "quantities": ["energy_kwh", "power_w"]},
        {"id": "em-09", "site": "zeta-dairy", "quantities": ["energy_kwh", "power_w"]},
        {"id": "wm-09", "site": "zeta-dairy", "quantities": ["water_m3", "flow_lpm"]},
    ],
    "contacts": [
        {
            "id": "rossi",
            "name": "Mario Rossi",
            "org": "alpine",
            "roles": ["emergency_coordinator"],
            "phones": ["+39 333 1234567"],
        },
        {"id": "verdi", "name": "Lucia Verdi", "org": "zeta", "roles": ["facility_manager"]},
    ],
}
#: Per-meter constant power (W) / flow (l/min): answers in sight.
POWER_W = {"em-01": 5000.0, "em-02": 20000.0, "em-09": 7000.0}
FLOW_LPM = {"wm-01": 30.0, "wm-09": 12.0}
ZETA_SECRETS = ("zeta", "Zeta", "Caseificio", "verdi", "em-09", "wm-09")


def write_territory(path: Path, doc: dict[str, Any] | None = None) -> Path:
    path.write_text(yaml.safe_dump(doc or TERRITORY, sort_keys=False))
    return path


def day_of_readings(cluster: Cluster, end_ms: int = NOW, hours: int = HOURS) -> ReadingBatch:
    """Every series every 5 min over `hours` up to `end_ms` (exclusive of end): power and
    flow constant per meter; registers rising at that rate, deltas included."""
    ts = np.arange(end_ms - hours * 3_600_000, end_ms, STEP, dtype=np.int64)
    series = cluster.series
    idx, all_ts, values, deltas = [], [], [], []
    for i, key in enumerate(series):
        rate_w = POWER_W.get(key.meter, 0.0)
        rate_lpm = FLOW_LPM.get(key.meter, 0.0)
        if key.quantity == "power_w":
            v = np.full(ts.shape, rate_w)
            d = np.full(ts.shape, np.nan)
        elif key.quantity == "flow_lpm":
            v = np.full(ts.shape, rate_lpm)
            d = np.full(ts.shape, np.nan)
        elif key.quantity == "energy_kwh":
            step = rate_w / 1000 * STEP / 3_600_000
            v = 1000 + step * np.arange(ts.shape[0])
            d = np.r_[np.nan, np.full(ts.shape[0] - 1, step)]
        else:  # water_m3
            step = rate_lpm / 1000 * STEP / 60_000
            v = 50 + step * np.arange(ts.shape[0])
            d = np.r_[np.nan, np.full(ts.shape[0] - 1, step)]
        assert key.quantity in CUMULATIVE_QUANTITIES or np.isnan(d).all()
        idx.append(np.full(ts.shape, i, np.int64))
        all_ts.append(ts)
        values.append(v)
        deltas.append(d)
    return ReadingBatch(
        series,
        np.concatenate(idx),
        np.concatenate(all_ts),
        np.concatenate(values),
        np.concatenate(deltas),
    )


@dataclass
class Clock:
    now_ms: int = NOW

    def __call__(self) -> int:
        return self.now_ms


@dataclass
class World:
    cluster: Cluster
    deps: ApiDeps
    alerts: MemoryAlerts
    engine: RuleEngine
    tokens: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)
    client: httpx.AsyncClient | None = None

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


ROLE_TOKENS = {
    "coordinator": ("coordinator", None),
    "facility_manager": ("facility_manager", "alpine"),
    "emergency_coordinator": ("emergency_coordinator", "alpine"),
    "viewer": ("viewer", None),
    "emergency_territory": ("emergency_coordinator", None),
}


def make_tokens(store: TokenStore) -> dict[str, str]:
    out = {}
    for label, (role, org) in ROLE_TOKENS.items():
        contact = "rossi" if label == "emergency_coordinator" else None
        out[label] = store.create(role=role, org=org, name=f"{label} user", contact=contact).token
    return out


@pytest.fixture
def territory_path(tmp_path: Path) -> Path:
    return write_territory(tmp_path / "territory.yaml")


async def build_world(
    tmp_path: Path, territory_path: Path, *, store: Any = None, **settings: Any
) -> World:
    cluster = load_cluster(territory_path)
    clock = Clock()
    store = store if store is not None else MemoryStore()
    await store.open()
    batch = day_of_readings(cluster)
    await store.write(batch)
    engine = RuleEngine(cluster)
    engine.ingest(batch)
    alerts = MemoryAlerts(clock)
    ids = {
        "alpine_alert": alerts.fire(
            "power-overload",
            {"org": "alpine", "site": "alpine-hotel", "meter": "em-01"},
            severity="critical",
        ).id,
        "zeta_alert": alerts.fire(
            "burst", {"org": "zeta", "site": "zeta-dairy", "meter": "wm-09"}
        ).id,
    }
    s1 = await alerts.create_silence(_draft({"site": "alpine-lift"}, clock))
    s2 = await alerts.create_silence(_draft({"org": "zeta"}, clock))
    ids["alpine_silence"], ids["zeta_silence"] = s1.id, s2.id
    token_store = TokenStore(tmp_path / "tokens.sqlite")
    tokens = make_tokens(token_store)
    config = {"data_dir": tmp_path / "data", "api_rate_per_s": 0} | settings
    deps = ApiDeps(
        cluster=cluster,
        settings=Settings(**config),
        store=store,
        live=HotWindowLive(engine),
        alerts=alerts,
        tokens=token_store,
        clock=clock,
    )
    return World(cluster, deps, alerts, engine, tokens, ids)


def _draft(matchers: dict[str, str], clock: Callable[[], int]) -> Any:
    from ecocluster.api.alert_port import SilenceDraft

    return SilenceDraft(matchers, clock(), clock() + 3_600_000, "maintenance", "setup")


@pytest.fixture
async def world(tmp_path: Path, territory_path: Path) -> AsyncIterator[World]:
    w = await build_world(tmp_path, territory_path)
    app = create_app(w.deps)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        w.client = client
        yield w
    w.deps.token_store.close()
