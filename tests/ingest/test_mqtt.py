"""The MQTT wire layer and the subscriber: packets byte for byte, a parser fed in arbitrary
pieces and arbitrary bytes (never an exception, a protocol error instead), linear reassembly,
CONNACK properties, the error mapping, and the subscriber against real brokers (credentials
refused, TLS, shared subscriptions, site filters, keep-alive, session takeover)."""

from __future__ import annotations

import asyncio
import collections
import logging
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from ecocluster.core.errors import FatalError, TransientError, describe
from ecocluster.core.mqtt import (
    MqttConfigError,
    MqttPartlySubscribed,
    MqttProtocolError,
    MqttRefused,
    MqttUnavailable,
    connack_error,
    map_mqtt_errors,
)
from ecocluster.core.mqtt_wire import (
    MalformedPacket,
    PacketSplitter,
    connect_packet,
    decode_varint,
    encode_varint,
    parse_connack,
    puback_packets,
    subscribe_packet,
)
from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.ingest.mqtt import Inbound, MqttProtocol
from ecocluster.ingest.stage import IngestStage
from ecocluster.ingest.stores.memory import MemoryStore
from ecocluster.ingest.subscriber import MqttSubscriber, topic_filters
from tests.ingest.conftest import Publisher, make_settings, running, wait_until
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
        maximum_packet_size=65536 + 512,
    )
    # level 5, user+password flags, properties (13 bytes): session expiry 3600, receive
    # maximum 1000, maximum packet size 66048
    assert v5[2:14] == b"\x00\x04MQTT\x05\xc0\x00\x1e\x0d\x11"
    assert v5[14:26] == b"\x00\x00\x0e\x10\x21\x03\xe8\x27\x00\x01\x02\x00"
    assert v5.endswith(b"\x00\x03ing\x00\x01u\x00\x01p")


def test_subscribe_and_puback_packets() -> None:
    assert subscribe_packet(1, ["a/+"], 1, v5=False) == b"\x82\x08\x00\x01\x00\x03a/+\x01"
    assert subscribe_packet(1, ["a/+"], 1, v5=True) == b"\x82\x09\x00\x01\x00\x00\x03a/+\x01"
    assert puback_packets([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"


@pytest.mark.parametrize("n", [0, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455])
def test_varint_round_trip_at_every_width(n: int) -> None:
    raw = encode_varint(n)
    assert len(raw) == 1 + (n > 127) + (n > 16_383) + (n > 2_097_151)
    assert decode_varint(raw, 0, len(raw)) == (n, len(raw))
    assert decode_varint(raw[:-1], 0, len(raw) - 1) == (-1, 0)  # incomplete: wait for more
    with pytest.raises(MalformedPacket):
        decode_varint(b"\xff\xff\xff\xff\x01", 0, 5)


def _publish(topic: str, payload: bytes, mid: int, *, v5: bool, retain: bool = False) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic.encode() + mid.to_bytes(2, "big")
    if v5:
        body += b"\x02\x01\x01"  # properties (2 bytes): payload format indicator = UTF-8
    body += payload
    return bytes([0x32 | retain]) + encode_varint(len(body)) + body


def _protocol(v5: bool, **kwargs: object) -> tuple[MqttProtocol, collections.deque[Inbound]]:
    inbound: collections.deque[Inbound] = collections.deque()
    return MqttProtocol(7, v5=v5, inbound=inbound, **kwargs), inbound  # type: ignore[arg-type]


@pytest.mark.parametrize("v5", [False, True])
@pytest.mark.parametrize("chunk", [1, 3, 7, 200, 100_000])
async def test_parser_handles_any_split(v5: bool, chunk: int) -> None:
    big = b"x" * 300  # a remaining length of two bytes
    stream = b"".join(
        _publish(f"eco/s{i}/m/data", big if i % 2 else b"{}", i + 1, v5=v5, retain=i == 3)
        for i in range(20)
    )
    wakes: list[tuple[int, int]] = []
    proto, pending = _protocol(v5, on_wake=lambda b, a: wakes.append((b, a)))
    for i in range(0, len(stream), chunk):
        proto.data_received(stream[i : i + chunk])
    assert not proto.closed.done()
    assert [m.topic for m in pending] == [f"eco/s{i}/m/data" for i in range(20)]
    assert [m.mid for m in pending] == list(range(1, 21))
    assert all(m.qos == 1 and m.generation == 7 for m in pending)
    assert [len(m.payload) for m in pending] == [2 if i % 2 == 0 else 300 for i in range(20)]
    assert [m.retain for m in pending] == [i == 3 for i in range(20)]  # the RETAIN flag
    assert wakes and wakes[0][0] == 0


BAD_PACKETS = {
    "varint of 5 bytes": b"\x32\xff\xff\xff\xff\x01",
    "publish shorter than its topic": b"\x32\x01\x00",
    "topic longer than the packet": b"\x32\x04\x00\x09ab",
    "qos 1 without packet id": b"\x32\x03\x00\x01a",
    "qos 3": b"\x36\x05\x00\x01a\x00\x01",
    "qos 2": b"\x34\x05\x00\x01a\x00\x01",
    "connack short": b"\x20\x01\x00",
    "connack reserved flags": b"\x20\x02\x02\x00",
    "suback empty": b"\x90\x02\x00\x01",
    "puback short": b"\x40\x01\x00",
    "unexpected type": b"\x10\x00",
    "reserved type 0": b"\x00\x00",
}


@pytest.mark.parametrize("raw", BAD_PACKETS.values(), ids=BAD_PACKETS.keys())
async def test_every_malformed_packet_is_a_protocol_error_not_an_exception(raw: bytes) -> None:
    proto, pending = _protocol(False)
    proto.data_received(raw)  # must not raise
    assert isinstance(proto.closed.result(), MqttProtocolError)
    assert not pending


async def test_v5_property_overflow_and_oversize_packets_are_protocol_errors() -> None:
    proto, _ = _protocol(True)
    body = b"\x00\x01a\x00\x01\x09\x01\x01"  # property length 9 > what is left
    proto.data_received(b"\x32" + encode_varint(len(body)) + body)
    assert isinstance(proto.closed.result(), MqttProtocolError)
    # over the Maximum Packet Size we advertised: the broker broke [MQTT-3.1.2-24]
    proto, _ = _protocol(True, max_packet_size=1024)
    proto.data_received(_publish("a", b"x" * 2000, 1, v5=True)[:100])
    assert "over the 1024 allowed" in str(proto.closed.result())


async def test_session_taken_over_is_named() -> None:
    proto, _ = _protocol(True)
    proto.data_received(b"\xe0\x02\x8e\x00")  # DISCONNECT, reason 0x8E, no properties
    assert "another client with our client id" in str(proto.closed.result())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.booleans(), st.integers(1, 64))
def test_arbitrary_bytes_never_raise_out_of_the_parser(noise: bytes, v5: bool, chunk: int) -> None:
    async def feed() -> None:
        proto, pending = _protocol(v5, max_packet_size=4096)
        proto.connack.add_done_callback(lambda f: f.exception())
        stream = _publish("eco/s/m/data", b"{}", 1, v5=v5) + noise
        for i in range(0, len(stream), chunk):
            proto.data_received(stream[i : i + chunk])
        if proto.closed.done():
            assert isinstance(proto.closed.result(), MqttProtocolError | MqttUnavailable)
        assert pending[0].topic == "eco/s/m/data"  # what came before the noise was kept

    asyncio.run(feed())


async def test_reassembly_of_a_large_packet_is_linear() -> None:
    """32 MiB in 16 KiB reads: quadratic re-concatenation copies ~32 GiB (minutes)."""
    payload = b"y" * (32 << 20)
    raw = _publish("eco/s/m/data", payload, 9, v5=False)
    proto, pending = _protocol(False)
    view = memoryview(raw)
    started = time.perf_counter()
    for i in range(0, len(raw), 16384):
        proto.data_received(bytes(view[i : i + 16384]))
    elapsed = time.perf_counter() - started
    assert len(pending) == 1 and pending[0].payload == payload
    assert elapsed < 5.0
    splitter = PacketSplitter()
    assert not list(splitter.feed(raw[:1000])) and splitter.buffered == 1000


def test_connack_properties_are_parsed() -> None:
    props = (
        b"\x13\x00\x0a"  # server keep alive 10
        b"\x21\x00\x14"  # receive maximum 20
        b"\x27\x00\x00\x04\x00"  # maximum packet size 1024
        b"\x2a\x00"  # shared subscriptions: no
        b"\x24\x00"  # maximum QoS 0
        b"\x1f\x00\x02hi"  # reason string
        b"\x26\x00\x01k\x00\x01v"  # a user property
    )
    body = b"\x01\x00" + encode_varint(len(props)) + props
    c = parse_connack(body, v5=True)
    assert c.session_present and c.code == 0
    assert (c.server_keepalive_s, c.receive_maximum, c.maximum_packet_size) == (10, 20, 1024)
    assert not c.shared_subscription_available and c.maximum_qos == 0
    assert c.reason_string == "hi"
    plain = parse_connack(b"\x00\x00\x00", v5=True)
    assert plain.shared_subscription_available and plain.receive_maximum == 65535
    assert plain.server_keepalive_s is None
    with pytest.raises(MalformedPacket):
        parse_connack(b"\x00\x00\x05\x13\x00", v5=True)


@pytest.mark.parametrize(
    ("exc", "cls", "text"),
    [
        (ConnectionRefusedError(111, "refused"), MqttUnavailable, "refused the TCP connection"),
        (TimeoutError(), MqttUnavailable, "did not answer in time"),
        (socket.gaierror(-2, "Name or service not known"), MqttUnavailable, "not resolved"),
        (ConnectionResetError(104, "reset"), MqttUnavailable, "reset"),
        (OSError(113, "No route to host"), MqttUnavailable, "No route to host"),
        (ssl.SSLCertVerificationError(1, "bad"), MqttUnavailable, "not trusted"),
        (ssl.SSLError(1, "wrong version"), MqttUnavailable, "TLS"),
        (MalformedPacket("short"), MqttProtocolError, "malformed"),
        (EOFError(), MqttUnavailable, "EOFError"),
    ],
)
def test_socket_tls_and_codec_errors_are_mapped_in_one_place(
    exc: BaseException, cls: type, text: str
) -> None:
    with pytest.raises(cls, match=text) as caught, map_mqtt_errors("mqtt://h:1", "connecting to"):
        raise exc
    assert isinstance(caught.value, TransientError)
    assert caught.value.__cause__ is exc
    assert "()" not in describe(caught.value)


def test_timeouts_describe_themselves() -> None:
    assert describe(TimeoutError()) == "TimeoutError"  # not "" nor "()"


@pytest.mark.parametrize(
    ("code", "v5", "cls"),
    [
        (4, False, MqttRefused),
        (5, False, MqttRefused),
        (0x86, True, MqttRefused),
        (0x87, True, MqttRefused),
        (3, False, MqttUnavailable),
        (0x89, True, MqttUnavailable),
        (2, False, MqttConfigError),
        (0x01, True, MqttConfigError),
        (0x84, True, MqttConfigError),
    ],
)
def test_connack_codes_map_to_fatal_or_transient(code: int, v5: bool, cls: type) -> None:
    error = connack_error(code, v5=v5, target="mqtt://u@h:1")
    assert isinstance(error, cls)
    assert isinstance(error, FatalError) == (cls is not MqttUnavailable)
    if v5 and code in (0x01, 0x84):
        assert "does not speak MQTT 5" in str(error) and "ECOCLUSTER_MQTT_PROTOCOL" in str(error)
    assert connack_error(0, v5=v5, target="x") is None


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
    async with MqttSubscriber(s) as sub:
        with pytest.raises(MqttRefused, match="refused our credentials") as caught:
            await asyncio.wait_for(sub.wait_subscribed(), 10)
        with pytest.raises(MqttRefused):  # and the batches say so too
            await sub.next_batch()
    assert isinstance(caught.value, FatalError)
    assert "wrong" not in str(caught.value)  # the password is never printed
    assert "\n" not in str(caught.value)


@pytest.mark.e2e
async def test_credentials_from_the_url(
    small_cluster: Cluster, ingest_settings: Settings, secured_mosquitto: MosquittoServer
) -> None:
    s = ingest_settings.model_copy(
        update={"mqtt_url": _secret(f"mqtt://ingest:s3cret@127.0.0.1:{secured_mosquitto.port}")}
    )
    stage = IngestStage(small_cluster, s, store=MemoryStore())
    async with running(stage):
        assert stage.subscriber.is_connected


def _secret(url: str) -> SecretStr:
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
    ts = int(time.time() * 1000) - 1000
    async with running(stage):
        await asyncio.to_thread(
            publisher.publish,
            [
                (f"{topic_prefix}/s1/em-01/data", orjson.dumps({"ts": ts, "m": {"power_w": 1.0}})),
                (f"{topic_prefix}/s2/em-02/data", orjson.dumps({"ts": ts, "m": {"power_w": 2.0}})),
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
    with pytest.raises(MqttRefused, match="refused our credentials"):
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
            assert stage.subscriber.is_connected
        untrusted = MqttSubscriber(
            ingest_settings.model_copy(
                update={"mqtt_url": _secret(f"mqtts://127.0.0.1:{broker.port}")}
            )
        )
        async with untrusted:
            await asyncio.sleep(1.0)
            assert not untrusted.is_connected  # a certificate we do not trust: no connection
    finally:
        broker.stop()


def test_a_share_group_needs_mqtt_5_in_the_settings() -> None:
    with pytest.raises(ValueError, match="ingest_share_group needs MQTT 5"):
        make_settings(ingest_share_group="ingest", mqtt_protocol="3.1.1")


async def _fake_broker(connack: bytes) -> tuple[asyncio.Server, int]:
    """A broker that answers every CONNECT with `connack` and ignores the rest."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(connack)
        await writer.drain()
        await reader.read(1024)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_broker_without_shared_subscriptions_fails_loudly(tmp_path: Path) -> None:
    props = b"\x2a\x00"  # Shared Subscription Available: 0
    server, port = await _fake_broker(b"\x20\x05\x00\x00\x02" + props)
    async with server:
        s = make_settings(
            mqtt_url=f"mqtt://127.0.0.1:{port}", ingest_share_group="ingest", data_dir=str(tmp_path)
        )
        async with MqttSubscriber(s) as sub:
            with pytest.raises(MqttConfigError, match="does not support shared subscriptions"):
                await asyncio.wait_for(sub.wait_subscribed(), 10)


@pytest.mark.e2e
async def test_a_v5_client_on_a_311_only_broker_says_how_to_switch(tmp_path: Path) -> None:
    from tests.services_nats import NatsServer

    nats = NatsServer(tmp_path / "nats")
    await asyncio.to_thread(nats.start)
    try:
        s = make_settings(mqtt_url=nats.url, mqtt_protocol="5", data_dir=str(tmp_path))
        async with MqttSubscriber(s) as sub:
            with pytest.raises(MqttConfigError) as caught:
                await asyncio.wait_for(sub.wait_subscribed(), 10)
    finally:
        await asyncio.to_thread(nats.stop)
    assert "does not speak MQTT 5" in str(caught.value)
    assert "ECOCLUSTER_MQTT_PROTOCOL=3.1.1" in str(caught.value)


class _KeepAliveMosquitto(MosquittoServer):
    def config_text(self) -> str:
        return super().config_text() + "max_keepalive 10\n"


@pytest.mark.e2e
@pytest.mark.slow
async def test_server_keep_alive_is_honoured(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Mosquitto with `max_keepalive 10` tells a v5 client "10 s" in its CONNACK and drops
    it after 15 s of silence if it keeps to its own 30 s [MQTT-3.2.2-21]."""
    broker = _KeepAliveMosquitto(tmp_path / "ka")
    await asyncio.to_thread(broker.start)
    try:
        s = make_settings(mqtt_url=broker.url, mqtt_keepalive_s=30, data_dir=str(tmp_path))
        with caplog.at_level(logging.INFO, "ecocluster.ingest"):
            async with MqttSubscriber(s) as sub:
                await asyncio.wait_for(sub.wait_subscribed(), 10)
                await asyncio.sleep(28)
                assert sub.is_connected and sub.generation == 1  # never reconnected
    finally:
        await asyncio.to_thread(broker.stop)
    assert "broker sets keep-alive to 10 s" in caplog.text


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_two_ingestors_with_one_client_id_back_off_and_say_why(
    protocol: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = MosquittoServer(tmp_path / "takeover")
    await asyncio.to_thread(broker.start)
    try:
        s = make_settings(
            mqtt_url=broker.url,
            mqtt_protocol=protocol,
            mqtt_client_id="same-id",
            data_dir=str(tmp_path),
        )
        with caplog.at_level(logging.WARNING, "ecocluster.ingest"):
            async with MqttSubscriber(s) as a, MqttSubscriber(s) as b:
                await asyncio.sleep(8)
                connections = a.generation + b.generation
    finally:
        await asyncio.to_thread(broker.stop)
    # without backoff they take the session from each other every second or so
    assert connections <= 8
    assert "same client id 'same-id'" in caplog.text
    assert "two nodes sharing ECOCLUSTER_MQTT_CLIENT_ID" in caplog.text


@pytest.mark.e2e
async def test_a_partly_refused_subscription_is_never_run_with(
    ingest_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broker that grants some of our filters and refuses others (here nats-server: one
    session's subscriptions share at most 65,535 `max_ack_pending`, so with 30,000 each the
    third is refused) must not leave ingest running without the refused sites: it retries
    and says which filters; with room for all of them it subscribes."""
    from tests.services_nats import NatsServer

    s = ingest_settings.model_copy(update={"mqtt_protocol": "3.1.1", "ingest_sites": ["s1", "s2"]})
    tight = NatsServer(tmp_path_factory.mktemp("nats-tight"), max_ack_pending=30_000)
    tight.start()
    try:
        s_tight = s.model_copy(update={"mqtt_url": _secret(tight.url)})
        async with MqttSubscriber(s_tight) as sub:
            with pytest.raises(TimeoutError):  # never "subscribed" with part of the topics
                await asyncio.wait_for(sub.wait_subscribed(), 4)
    finally:
        tight.stop()
    said = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert said and "of our 6 subscriptions" in said[0], said
    assert f"{s.topic_prefix}/s2/+/senml" in said[0], said  # a refused one is named
    roomy = NatsServer(tmp_path_factory.mktemp("nats-roomy"), max_ack_pending=1000)
    roomy.start()
    try:
        s_roomy = s.model_copy(update={"mqtt_url": _secret(roomy.url)})
        async with MqttSubscriber(s_roomy) as sub:
            await asyncio.wait_for(sub.wait_subscribed(), 30)
    finally:
        roomy.stop()


def test_partly_subscribed_is_transient_and_names_the_filters() -> None:
    exc = MqttPartlySubscribed("broker x refused 1 of our 6 subscriptions (eco/s2/+/data 0x80)")
    assert isinstance(exc, TransientError) and not isinstance(exc, FatalError)
