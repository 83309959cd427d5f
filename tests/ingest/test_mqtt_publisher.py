"""The project's MQTT publisher against a real Mosquitto: started while the broker is down it
waits and says so, then delivers; refused credentials are a `FatalError` in one line; a
broker restart with messages queued loses none; TLS from the same settings as ingest."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from ecocluster.core.errors import FatalError
from ecocluster.core.mqtt import MqttRefused, MqttTls
from ecocluster.core.settings import _parse_mqtt_url
from ecocluster.ingest.mqtt_publisher import MqttPublisher, MqttQueueFull
from tests.ingest.test_mqtt import _TlsMosquitto, secured_mosquitto, tls_certs  # noqa: F401
from tests.services import MosquittoServer, free_port

pytestmark = pytest.mark.e2e


class Collector:
    """A paho subscriber (QoS 1, own thread) collecting payloads."""

    def __init__(self, port: int, topic: str) -> None:
        self.got: queue.Queue[bytes] = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        subscribed = threading.Event()
        self.client.on_message = lambda c, u, m: self.got.put(m.payload)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        assert subscribed.wait(10)

    def payloads(self, n: int, timeout_s: float = 10.0) -> list[bytes]:
        return [self.got.get(timeout=timeout_s) for _ in range(n)]

    def until(self, last: bytes, timeout_s: float = 10.0) -> list[bytes]:
        out = [self.got.get(timeout=timeout_s)]
        while out[-1] != last:
            out.append(self.got.get(timeout=timeout_s))
        return out

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def test_started_without_a_broker_it_waits_says_so_and_delivers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    broker = MosquittoServer(tmp_path / "late", port=port)
    target = _parse_mqtt_url(f"mqtt://127.0.0.1:{port}")
    with caplog.at_level(logging.WARNING, "ecocluster.ingest"):
        async with MqttPublisher(target, client_id="late-pub") as pub:  # does not raise
            sent = pub.publish_nowait("t/late", b"queued while away")
            await asyncio.sleep(1.5)
            assert not pub.connected and not sent.done() and pub.queued == 1
            await asyncio.to_thread(broker.start)
            try:
                collector = await asyncio.to_thread(Collector, port, "t/#")
                await asyncio.wait_for(sent, 20)  # PUBACKed once the broker is there
                await pub.publish("t/late", b"after")
                got = await asyncio.to_thread(collector.until, b"after")
                collector.close()
            finally:
                await asyncio.to_thread(broker.stop)
    # in order; the queued one may have reached the broker before the collector subscribed
    assert got in ([b"after"], [b"queued while away", b"after"])
    assert f"broker mqtt://127.0.0.1:{port} refused the TCP connection" in caplog.text
    assert "retrying in" in caplog.text


async def test_refused_credentials_are_fatal_in_one_line(
    secured_mosquitto: MosquittoServer,  # noqa: F811
) -> None:
    target = _parse_mqtt_url(f"mqtt://ingest:hunter2@127.0.0.1:{secured_mosquitto.port}")
    async with MqttPublisher(target, client_id="bad-pub", protocol="5") as pub:
        with pytest.raises(MqttRefused) as caught:
            await asyncio.wait_for(pub.publish("t/x", b"1"), 10)
    assert isinstance(caught.value, FatalError)
    message = str(caught.value)
    assert "refused our credentials" in message and "CONNACK code 0x8" in message
    assert "hunter2" not in message and "\n" not in message


async def test_a_broker_restart_loses_nothing_queued(tmp_path: Path) -> None:
    broker = MosquittoServer(tmp_path / "restart")
    await asyncio.to_thread(broker.start)
    collector = await asyncio.to_thread(Collector, broker.port, "r/#")
    target = _parse_mqtt_url(broker.url)
    try:
        async with MqttPublisher(target, client_id="restart-pub", max_queued=500) as pub:
            await pub.publish("r/0", b"0")
            await asyncio.to_thread(broker.stop)
            acks = [pub.publish_nowait(f"r/{i}", str(i).encode()) for i in range(1, 300)]
            with pytest.raises(MqttQueueFull):
                for i in range(300, 600):
                    pub.publish_nowait(f"r/{i}", b"overflow")
            await asyncio.to_thread(broker.start)
            await asyncio.wait_for(asyncio.gather(*acks), 30)
            # the ones queued before the queue was full go out too
            for _ in range(200):
                if pub.queued == 0:
                    break
                await asyncio.sleep(0.05)
            assert pub.queued == 0
    finally:
        collector.close()
        await asyncio.to_thread(broker.stop)
    assert all(a.done() and a.exception() is None for a in acks)


async def test_tls_settings_are_the_ingest_ones(
    tmp_path: Path,
    tls_certs: Path,  # noqa: F811
) -> None:
    broker = _TlsMosquitto(tmp_path / "tls", tls_certs)
    await asyncio.to_thread(broker.start)
    try:
        target = _parse_mqtt_url(f"mqtts://127.0.0.1:{broker.port}")
        tls = MqttTls(ca_file=tls_certs / "cert.pem")
        async with MqttPublisher(target, client_id="tls-pub", tls=tls) as pub:
            await asyncio.wait_for(pub.publish("t/tls", b"1"), 10)
        async with MqttPublisher(target, client_id="tls-untrusted") as untrusted:
            await asyncio.sleep(1.0)
            assert not untrusted.connected  # system CAs do not trust our self-signed one
    finally:
        await asyncio.to_thread(broker.stop)
