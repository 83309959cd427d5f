"""Fixtures for the ingest tests: a small cluster, settings pointing at the harness's real
Mosquitto (and influxd), a publisher, and the stage running in the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from ecocluster.core.registry import Cluster, load_cluster
from ecocluster.core.settings import Settings, load_settings
from ecocluster.ingest.stage import IngestStage
from ecocluster.ingest.stores.base import Store
from tests.services import MosquittoServer

SMALL_CLUSTER = """
territory: {id: test, name: Test territory, timezone: Europe/Rome}
organisations:
  - {id: o1, name: Org one, kind: public}
  - {id: o2, name: Org two, kind: private}
sites:
  - {id: s1, org: o1, name: Site one, category: hotel, lat: 44.3, lon: 10.2, contracted_power_w: 36000}
  - {id: s2, org: o2, name: Site two, category: air_station, lat: 44.3, lon: 10.3}
meters:
  - {id: em-01, site: s1, quantities: [energy_kwh, power_w]}
  - {id: wm-01, site: s1, quantities: [water_m3, flow_lpm]}
  - {id: aq-01, site: s2, quantities: [no2_ugm3, o3_ugm3, so2_ugm3, co_mgm3, pm10_ugm3, temp_c, rh_pct]}
  - {id: em-02, site: s2, quantities: [energy_kwh, power_w]}
"""


@pytest.fixture(scope="session")
def small_cluster_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cluster") / "cluster.yaml"
    path.write_text(SMALL_CLUSTER)
    return path


@pytest.fixture(scope="session")
def small_cluster(small_cluster_path: Path) -> Cluster:
    return load_cluster(small_cluster_path)


def make_settings(**overrides: Any) -> Settings:
    return load_settings({k: v for k, v in overrides.items() if v is not None})


@pytest.fixture
def ingest_settings(tmp_path: Path, mosquitto: MosquittoServer, topic_prefix: str) -> Settings:
    return make_settings(
        mqtt_url=mosquitto.url,
        mqtt_client_id=f"ingest-{uuid.uuid4().hex[:8]}",
        topic_prefix=topic_prefix,
        data_dir=str(tmp_path / "data"),
        ingest_flush_ms=50,
    )


class Publisher:
    """A blocking QoS 1 publisher (paho, own network thread): returns once the broker has
    every message."""

    def __init__(self, url_port: int, *, protocol: int = paho.MQTTv311) -> None:
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=protocol)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(200)
        self.client.connect("127.0.0.1", url_port)
        self.client.loop_start()

    def publish(
        self, items: Iterable[tuple[str, bytes | str]], qos: int = 1, retain: bool = False
    ) -> int:
        infos = [self.client.publish(t, p, qos=qos, retain=retain) for t, p in items]
        for info in infos:
            info.wait_for_publish(30)
        return len(infos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(mosquitto: MosquittoServer) -> Iterator[Publisher]:
    pub = Publisher(mosquitto.port)
    yield pub
    pub.close()


@contextlib.asynccontextmanager
async def running(stage: IngestStage, timeout_s: float = 15.0) -> AsyncIterator[IngestStage]:
    """Run the stage in this loop until the block ends (then cancel: it flushes and stops)."""
    ready = asyncio.Event()
    task = asyncio.create_task(stage.run(ready), name="test.ingest")
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=timeout_s, return_when="FIRST_COMPLETED")
    if task in done:
        waiter.cancel()
        task.result()
    assert waiter in done, "ingest stage did not become ready"
    try:
        yield stage
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_until(predicate: Any, timeout_s: float = 20.0, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval_s)


async def stored_count(store: Store, quantity: str, where: dict[str, str] | None = None) -> int:
    batch = await store.query_range(quantity, 0, 2**62, where=where)
    return len(batch)
