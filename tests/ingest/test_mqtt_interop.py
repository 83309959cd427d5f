"""The interop matrix (issue 9 #11, #15): every real broker the harness can start, each
behind a latency-injecting proxy (300 ms each way: a mountain site on a mobile link), with a
QoS 1 backlog queued for a persistent session, the session resumed, and a broker restart.
Exact counts: every message stored once, every one acknowledged (a new session with the
same client id gets nothing again).

Brokers: Mosquitto (MQTT 5 and 3.1.1), amqtt (the demo's embedded broker, 3.1.1) and
Debian's nats-server (JetStream's MQTT listener, 3.1.1). amqtt keeps no offline queue for an
anonymous session (amqtt 0.12 `_broadcast_message`), and the demo's broker is anonymous: its
backlog is published while the ingestor is connected, behind the same slow link.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.embedded_broker import EmbeddedBroker
from ecocluster.ingest.stage import IngestStage
from ecocluster.ingest.stores.memory import MemoryStore
from tests.ingest.conftest import Publisher, make_settings, running, wait_until
from tests.proxy import LatencyProxy
from tests.services import MosquittoServer
from tests.services_nats import NatsServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BACKLOG = 500
AFTER_RESTART = 100
LATENCY_S = 0.3


@dataclass
class Broker:
    """One broker of the matrix: its MQTT port and how to restart it in place."""

    kind: str
    port: int
    protocol: str
    server: Any

    async def restart(self) -> None:
        if isinstance(self.server, EmbeddedBroker):
            await self.server.stop()
            await self.server.start()
        else:
            await asyncio.to_thread(self.server.restart)


@contextlib.asynccontextmanager
async def start_broker(kind: str, workdir: Path) -> AsyncIterator[Broker]:
    if kind == "amqtt":
        embedded = EmbeddedBroker()
        await embedded.start()
        try:
            yield Broker(kind, embedded.port, "3.1.1", embedded)
        finally:
            await embedded.stop()
        return
    server: MosquittoServer | NatsServer
    if kind.startswith("mosquitto"):
        server = MosquittoServer(workdir / kind)
        port = server.port
    else:
        server = NatsServer(workdir / kind)
        port = server.mqtt_port
    await asyncio.to_thread(server.start)
    try:
        yield Broker(kind, port, "5" if kind == "mosquitto-v5" else "3.1.1", server)
    finally:
        await asyncio.to_thread(server.stop)


def _value(i: int) -> float:
    return round(10 + i / 1000, 3)  # a plausible temperature, distinct per message


def _messages(prefix: str, start: int, n: int, t0: int) -> list[tuple[str, bytes]]:
    return [
        (f"{prefix}/s2/aq-01/data", orjson.dumps({"ts": t0 + i, "m": {"temp_c": _value(i)}}))
        for i in range(start, start + n)
    ]


@pytest.mark.parametrize("kind", ["mosquitto-v5", "mosquitto-v311", "amqtt", "nats"])
async def test_backlog_resume_and_restart_through_a_slow_link(
    kind: str, small_cluster: Cluster, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    store = MemoryStore()
    t0 = int(time.time() * 1000) - 60_000
    async with start_broker(kind, tmp_path) as broker:
        proxy = LatencyProxy(broker.port, delay_s=LATENCY_S)
        proxy.start()
        settings: Settings = make_settings(
            mqtt_url=f"mqtt://127.0.0.1:{proxy.port}",
            mqtt_protocol=broker.protocol,
            mqtt_client_id=f"ingest-{uuid.uuid4().hex[:8]}",
            topic_prefix=prefix,
            data_dir=str(tmp_path / "data"),
            ingest_flush_ms=50,
        )

        def stage() -> IngestStage:
            return IngestStage(small_cluster, settings, store=store)

        pub = await asyncio.to_thread(Publisher, broker.port)
        try:
            offline_queue = kind != "amqtt"
            # 1. a persistent session exists, then the ingestor goes away
            async with running(stage(), timeout_s=20):
                pass
            # 2. a backlog is queued for it, 3. it comes back through the slow link
            if offline_queue:
                await asyncio.to_thread(pub.publish, _messages(prefix, 0, BACKLOG, t0))
            first = stage()
            async with running(first, timeout_s=20):
                if not offline_queue:
                    await asyncio.to_thread(pub.publish, _messages(prefix, 0, BACKLOG, t0))
                await wait_until(lambda: first.accepted >= BACKLOG, 30)
                await asyncio.sleep(2 * LATENCY_S + 0.5)  # the last PUBACKs reach the broker
                # 4. the broker restarts under it; it reconnects and resubscribes
                generation = first.subscriber.generation
                pub.close()
                await broker.restart()
                await wait_until(
                    lambda: (
                        first.subscriber.generation > generation and first.subscriber.is_connected
                    ),
                    30,
                )
                await asyncio.sleep(4 * LATENCY_S + 0.5)  # its SUBACK is on the way
                pub = await asyncio.to_thread(Publisher, broker.port)
                await asyncio.to_thread(pub.publish, _messages(prefix, BACKLOG, AFTER_RESTART, t0))
                await wait_until(lambda: first.accepted >= BACKLOG + AFTER_RESTART, 30)
                await asyncio.sleep(1.0)
            assert first.accepted == BACKLOG + AFTER_RESTART  # nothing twice, nothing lost
            # 5. everything was acknowledged: the resumed session has nothing left
            again = stage()
            async with running(again, timeout_s=20):
                await asyncio.sleep(2.0)
            assert again.accepted == 0
        finally:
            pub.close()
            proxy.stop()
    stored = await store.query_range("temp_c", 0, 2**62)
    assert sorted(stored.values.tolist()) == [_value(i) for i in range(BACKLOG + AFTER_RESTART)]
