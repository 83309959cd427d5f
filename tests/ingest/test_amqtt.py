"""The demo's embedded broker (amqtt) speaks MQTT 3.1.1 only: the ingest stage must work there."""

from __future__ import annotations

import asyncio
import time

import orjson
import paho.mqtt.client as paho
import pytest

from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.ingest.stage import IngestStage
from ecocluster.ingest.stores.memory import MemoryStore
from tests.ingest.conftest import running, wait_until

pytestmark = pytest.mark.e2e


def _publish(port: int, topic: str, n: int) -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.connect("127.0.0.1", port)
    client.loop_start()
    now = int(time.time() * 1000)
    infos = [
        client.publish(topic, orjson.dumps({"ts": now - 5000 + i, "m": {"power_w": 1.0}}), qos=1)
        for i in range(n)
    ]
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


async def test_ingest_over_amqtt_311(
    small_cluster: Cluster, ingest_settings: Settings, topic_prefix: str
) -> None:
    from pydantic import SecretStr

    from ecocluster.embedded_broker import EmbeddedBroker  # the demo's own broker

    broker = EmbeddedBroker()
    await broker.start()
    try:
        settings = ingest_settings.model_copy(
            update={"mqtt_url": SecretStr(broker.url), "mqtt_protocol": "3.1.1"}
        )
        store = MemoryStore()
        stage = IngestStage(small_cluster, settings, store=store)
        async with running(stage):
            await asyncio.to_thread(_publish, broker.port, f"{topic_prefix}/s1/em-01/data", 300)
            await wait_until(lambda: stage.accepted >= 300, 15)
        assert len(await store.query_range("power_w", 0, 2**62)) == 300
    finally:
        await broker.stop()
