"""A real node for end-to-end API tests: Mosquitto → ingest (DuckDB) → rules hot window →
the API served by uvicorn on a free port, with the live feed wired as the node wires it
(ingest's sinks: the rules stage and the API's `ReadingFeed`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecocluster.api import ApiDeps, EventHub, HotWindowLive, ReadingFeed, TokenStore
from ecocluster.api.stage import ApiStage
from ecocluster.core.registry import Cluster, load_cluster
from ecocluster.core.settings import Settings
from ecocluster.ingest.stage import IngestStage
from ecocluster.ingest.stores.duckdb import DuckDBStore
from ecocluster.rules.stage import RulesStage
from tests.api.conftest import STEP, day_of_readings, make_tokens
from tests.api.memory_alerts import MemoryAlerts
from tests.services import MosquittoServer


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Node:
    cluster: Cluster
    settings: Settings
    api: ApiStage
    alerts: Any
    tokens: dict[str, str]
    prefix: str

    @property
    def url(self) -> str:
        return self.api.url


@contextlib.asynccontextmanager
async def running_node(
    tmp_path: Path,
    territory_path: Path,
    mosquitto: MosquittoServer,
    prefix: str,
    *,
    alerts: Any = None,
) -> AsyncIterator[Node]:
    cluster = load_cluster(territory_path)
    settings = Settings(
        mqtt_url=mosquitto.url,
        topic_prefix=prefix,
        data_dir=tmp_path / "data",
        mqtt_client_id=f"api-{uuid.uuid4().hex[:8]}",
        ingest_flush_ms=20,
        api_port=0,
        api_rate_per_s=0,
        mqtt_protocol="3.1.1",
    )
    store = DuckDBStore(tmp_path / "node.duckdb")
    await store.open()
    end = wall_ms() // STEP * STEP
    history = day_of_readings(cluster, end_ms=end)
    await store.write(history)
    rules = RulesStage(cluster, sinks=[], tick_s=1.0)
    rules.engine.ingest(history)
    hub = EventHub()
    feed = ReadingFeed(hub, {s.id: s.org for s in cluster.sites})
    ingest = IngestStage(cluster, settings, store=store, sinks=[rules, feed])
    if alerts is None:
        alerts = MemoryAlerts(wall_ms)
        alerts.fire(
            "power-overload",
            {"org": "alpine", "site": "alpine-hotel", "meter": "em-01"},
            severity="critical",
            value=61000,
            threshold=60000,
            at_ms=end - 3_600_000,
        )
        alerts.fire("burst", {"org": "zeta", "site": "zeta-dairy", "meter": "wm-09"})
    token_store = TokenStore(tmp_path / "tokens.sqlite")
    tokens = make_tokens(token_store)
    deps = ApiDeps(
        cluster=cluster,
        settings=settings,
        store=store,
        live=HotWindowLive(rules.engine),
        alerts=alerts,
        tokens=token_store,
        hub=hub,
    )
    api = ApiStage(deps)
    stages = [ingest, rules, api]
    readies = [asyncio.Event() for _ in stages]
    tasks = [
        asyncio.create_task(s.run(r), name=f"test.{s.name}")
        for s, r in zip(stages, readies, strict=True)
    ]
    try:
        waiting = asyncio.gather(*(r.wait() for r in readies))
        done, _ = await asyncio.wait([waiting, *tasks], timeout=20, return_when="FIRST_COMPLETED")
        for task in tasks:
            if task in done:
                task.result()
        assert waiting in done, "the node did not become ready"
        yield Node(cluster, settings, api, alerts, tokens, prefix)
    finally:
        for task in reversed(tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        token_store.close()
