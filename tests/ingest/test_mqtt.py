"""The MQTT wire layer: packets byte for byte, a parser fed in arbitrary pieces, and the
subscriber against real brokers (credentials refused, shared subscriptions, site filters)."""

from __future__ import annotations

import asyncio
import collections
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.ingest.mqtt import (
    Inbound,
    MqttProtocol,
    connect_packet,
    puback_packets,
    subscribe_packet,
)
from ecocluster.ingest.stage import IngestStage
from ecocluster.ingest.stores.memory import MemoryStore
from ecocluster.ingest.subscriber import MqttSubscriber, SubscriberError, topic_filters
from tests.ingest.conftest import Publisher, running, wait_until
from tests.services import MosquittoServer, require_binary


def test_connect_packets_ask_for_a_persistent_session() -> None:
    v3 = connect_packet("ing", v5=False, keepalive_s=30)
    assert v3 == b"\x10\x0f\x00\x04MQTT\x04\x00\x00\x1e\x00\x03ing"  # clean session bit off
    v5 = connect_packet(
        "ing",
        v5=True,
        keepalive_s=30,
        username="u",
        password="p",
        session_expiry_s=3600,
        receive_maximum=1000,
    )
    # level 5, user+password flags, properties: session expiry 3600, receive maximum 1000
    assert v5[2:14] == b"\x00\x04MQTT\x05\xc0\x00\x1e\x08\x11"
    assert v5[14:21] == b"\x00\x00\x0e\x10\x21\x03\xe8"
    assert v5.endswith(b"\x00\x03ing\x00\x01u\x00\x01p")


def test_subscribe_and_puback_packets() -> None:
    assert subscribe_packet(1, ["a/+"], 1, v5=False) == b"\x82\x08\x00\x01\x00\x03a/+\x01"
    assert subscribe_packet(1, ["a/+"], 1, v5=True) == b"\x82\x09\x00\x01\x00\x00\x03a/+\x01"
    assert puback_packets([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"


def _publish(topic: str, payload: bytes, mid: int, *, v5: bool) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic.encode() + mid.to_bytes(2, "big")
    if v5:
        body += b"\x02\x01\x01"  # properties (2 bytes): payload format indicator = UTF-8
    body += payload
    length = len(body)
    encoded = bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            break
    return b"\x32" + bytes(encoded) + body


@pytest.mark.parametrize("v5", [False, True])
@pytest.mark.parametrize("chunk", [1, 3, 7, 200, 100_000])
async def test_parser_handles_any_split(v5: bool, chunk: int) -> None:
    big = b"x" * 300  # a remaining length of two bytes
    stream = b"".join(
        _publish(f"eco/s{i}/m/data", big if i % 2 else b"{}", i + 1, v5=v5) for i in range(20)
    )
    pending: collections.deque[Inbound] = collections.deque()
    wakes: list[tuple[int, int]] = []
    proto = MqttProtocol(pending, 7, v5=v5, on_wake=lambda b, a: wakes.append((b, a)))
    for i in range(0, len(stream), chunk):
        proto.data_received(stream[i : i + chunk])
    assert [m.topic for m in pending] == [f"eco/s{i}/m/data" for i in range(20)]
    assert [m.mid for m in pending] == list(range(1, 21))
    assert all(m.qos == 1 and m.generation == 7 for m in pending)
    assert [len(m.payload) for m in pending] == [2 if i % 2 == 0 else 300 for i in range(20)]
    assert wakes and wakes[0][0] == 0


def test_topic_filters_for_sites_and_shared_groups(ingest_settings: Settings) -> None:
    s = ingest_settings.model_copy(update={"ingest_sites": ["s1"], "ingest_share_group": "ingest"})
    p = s.topic_prefix
    assert topic_filters(s) == [
        f"$share/ingest/{p}/s1/+/data",
        f"$share/ingest/{p}/s1/+/senml",
        f"{p}/s1/+/status",
    ]
    with pytest.raises(ValueError, match="invalid site id '#'"):
        topic_filters(ingest_settings.model_copy(update={"ingest_sites": ["#"]}))


@pytest.fixture(scope="module")
def secured_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> MosquittoServer:
    work = tmp_path_factory.mktemp("secured")
    # Mosquitto started as root reads the password file as user "mosquitto": keep it in a
    # directory that user can reach (pytest's tmp tree is private to root).
    shared = Path(tempfile.mkdtemp(prefix="ecocluster-pw-"))
    shared.chmod(0o755)
    passwd = shared / "passwd"
    passwd.touch()
    subprocess.run(
        [require_binary("mosquitto_passwd"), "-b", str(passwd), "ingest", "s3cret"], check=True
    )
    passwd.chmod(0o644)
    server = MosquittoServer(work, password_file=passwd)
    server.start()
    yield server  # type: ignore[misc]
    server.stop()
    shutil.rmtree(shared, ignore_errors=True)


@pytest.mark.e2e
async def test_wrong_credentials_stop_with_a_clear_error(
    ingest_settings: Settings, secured_mosquitto: MosquittoServer
) -> None:
    s = ingest_settings.model_copy(
        update={"mqtt_url": _secret(f"mqtt://ingest:wrong@127.0.0.1:{secured_mosquitto.port}")}
    )
    sub = MqttSubscriber(s)
    await sub.start()
    await asyncio.wait_for(sub.wakeup.wait(), 10)
    assert isinstance(sub.fatal, SubscriberError) and "refused our credentials" in str(sub.fatal)
    assert "wrong" not in str(sub.fatal)  # the password is never printed
    await sub.stop()


@pytest.mark.e2e
async def test_credentials_from_the_url(
    small_cluster: Cluster, ingest_settings: Settings, secured_mosquitto: MosquittoServer
) -> None:
    s = ingest_settings.model_copy(
        update={"mqtt_url": _secret(f"mqtt://ingest:s3cret@127.0.0.1:{secured_mosquitto.port}")}
    )
    stage = IngestStage(small_cluster, s, store=MemoryStore())
    async with running(stage):
        assert stage.subscriber.connected.is_set()


def _secret(url: str):  # type: ignore[no-untyped-def]
    from pydantic import SecretStr

    return SecretStr(url)


@pytest.mark.e2e
async def test_shared_subscription_splits_the_load_exactly(
    small_cluster: Cluster,
    ingest_settings: Settings,
    publisher: Publisher,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    stages = [
        IngestStage(
            small_cluster,
            ingest_settings.model_copy(
                update={
                    "ingest_share_group": "ingest",
                    "mqtt_client_id": f"shared-{i}-{uuid.uuid4().hex[:6]}",
                    "data_dir": tmp_path / f"node{i}",
                }
            ),
            store=store,
        )
        for i in range(2)
    ]
    t0 = int(time.time() * 1000) - 10_000
    msgs = [
        (f"{topic_prefix}/s2/aq-01/data", orjson.dumps({"ts": t0 + i, "m": {"temp_c": 1.0}}))
        for i in range(400)
    ]
    async with running(stages[0]), running(stages[1]):
        await asyncio.to_thread(publisher.publish, msgs)
        await wait_until(lambda: stages[0].accepted + stages[1].accepted >= 400, 15)
    assert stages[0].accepted > 0 and stages[1].accepted > 0  # both took a share
    assert stages[0].accepted + stages[1].accepted == 400
    assert len(await store.query_range("temp_c", 0, 2**62)) == 400


@pytest.mark.e2e
async def test_site_filter_receives_only_its_sites(
    small_cluster: Cluster,
    ingest_settings: Settings,
    publisher: Publisher,
    topic_prefix: str,
) -> None:
    store = MemoryStore()
    stage = IngestStage(
        small_cluster, ingest_settings.model_copy(update={"ingest_sites": ["s2"]}), store=store
    )
    async with running(stage):
        await asyncio.to_thread(
            publisher.publish,
            [
                (f"{topic_prefix}/s1/em-01/data", orjson.dumps({"m": {"power_w": 1.0}})),
                (f"{topic_prefix}/s2/em-02/data", orjson.dumps({"m": {"power_w": 2.0}})),
            ],
        )
        await wait_until(lambda: stage.accepted >= 1, 10)
        await asyncio.sleep(0.3)
    assert stage.accepted == 1
    assert [k.site for k in store.points] == ["s2"]


@pytest.mark.e2e
async def test_stage_stops_with_the_credentials_error(
    small_cluster: Cluster, ingest_settings: Settings, secured_mosquitto: MosquittoServer
) -> None:
    s = ingest_settings.model_copy(
        update={"mqtt_url": _secret(f"mqtt://ingest:nope@127.0.0.1:{secured_mosquitto.port}")}
    )
    stage = IngestStage(small_cluster, s, store=MemoryStore())
    with pytest.raises(SubscriberError, match="refused our credentials"):
        await asyncio.wait_for(stage.run(asyncio.Event()), 15)


class _TlsMosquitto(MosquittoServer):
    """Mosquitto with a TLS listener (self-signed certificate for 127.0.0.1)."""

    def __init__(self, workdir: Path, certs: Path) -> None:
        super().__init__(workdir)
        self.certs = certs

    def config_text(self) -> str:
        text = super().config_text()
        listener = f"listener {self.port} 127.0.0.1"
        tls = f"{listener}\ncertfile {self.certs / 'cert.pem'}\nkeyfile {self.certs / 'key.pem'}"
        return text.replace(listener, tls)


@pytest.fixture(scope="module")
def tls_certs() -> Iterator[Path]:
    """A self-signed certificate for 127.0.0.1, readable by the mosquitto user."""
    certs = Path(tempfile.mkdtemp(prefix="ecocluster-tls-"))
    certs.chmod(0o755)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(certs / "key.pem"),
            "-out",
            str(certs / "cert.pem"),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    for f in certs.iterdir():
        f.chmod(0o644)
    yield certs
    shutil.rmtree(certs, ignore_errors=True)


@pytest.mark.e2e
async def test_tls_from_an_mqtts_url(
    small_cluster: Cluster, ingest_settings: Settings, tmp_path: Path, tls_certs: Path
) -> None:
    certs = tls_certs
    broker = _TlsMosquitto(tmp_path / "tls", certs)
    broker.start()
    try:
        s = ingest_settings.model_copy(
            update={
                "mqtt_url": _secret(f"mqtts://127.0.0.1:{broker.port}"),
                "mqtt_ca_file": certs / "cert.pem",
            }
        )
        stage = IngestStage(small_cluster, s, store=MemoryStore())
        async with running(stage):
            assert stage.subscriber.connected.is_set()
        untrusted = MqttSubscriber(
            ingest_settings.model_copy(
                update={"mqtt_url": _secret(f"mqtts://127.0.0.1:{broker.port}")}
            )
        )
        await untrusted.start()
        await asyncio.sleep(1.0)
        assert not untrusted.connected.is_set()  # a certificate we do not trust: no connection
        await untrusted.stop()
    finally:
        broker.stop()
