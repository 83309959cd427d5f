"""The shared-connection transport: one paho client publishes for every simulated meter,
the way a concentrator or a load generator does.

No paho network thread: `publish()` writes straight to the socket from the caller's
thread (paho does that when no loop thread is running), and `poll()` reads PUBACKs and
keeps the connection alive. A window on unacknowledged messages gives backpressure, so
a backfill runs "as fast as the broker takes it" without piling messages up in memory.

Two measured paho costs are avoided: paho's own inflight limit walks every outstanding
message on each PUBACK (`_update_inflight`, quadratic in the window), so it is switched
off (0 = unlimited) and the window is ours; and for QoS 0 batches `send_many()` writes
ready-made PUBLISH packets (MQTT 3.1.1 §3.3, v5 with an empty property block) in one
buffer on paho's socket, 3-4x faster than one `publish()` call per message. Connection,
keep-alive, retained statuses and QoS 1 stay with paho.
Per-device last wills are impossible on one connection: on start and on a clean stop
this transport publishes each meter's retained `online`/`offline` itself, and dropouts
publish the `offline` the broker would have sent.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import time
import uuid
from collections import deque
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ecocluster.core.mqtt import MqttTls
from ecocluster.core.mqtt_wire import decode_varint, encode_varint
from ecocluster.core.settings import MqttTarget

from .payloads import Encoder, Message

__all__ = ["MqttConnectError", "SharedConnection", "make_client"]

_log = logging.getLogger(__name__)
_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class MqttConnectError(ConnectionError):
    """The broker refused or did not answer a simulated device's CONNECT."""


def make_client(
    client_id: str,
    protocol: str,
    target: MqttTarget,
    *,
    username: str | None = None,
    password: str | None = None,
    tls: MqttTls | None = None,
) -> mqtt.Client:
    """A paho client for `target`; `mqtts://` brokers get the same TLS context as the
    ingest subscriber and the publisher (`MqttTls`: CA file, client certificate)."""
    proto = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=proto)
    user = username or target.username
    secret = password or (target.password.get_secret_value() if target.password else None)
    if user:
        client.username_pw_set(user, secret)
    if target.tls:
        client.tls_set_context((tls or MqttTls()).context())
    return client


class SharedConnection:
    """`open()`, then `send()` many messages, `poll()` while idle, `close()`."""

    def __init__(
        self,
        target: MqttTarget,
        encoder: Encoder,
        *,
        qos: int = 0,
        protocol: str = "3.1.1",
        client_id: str | None = None,
        window: int = 4000,
        tls: MqttTls | None = None,
    ) -> None:
        self.target = target
        self.encoder = encoder
        self.qos = qos
        self.window = window
        self.client_id = client_id or f"ecocluster-sim-{uuid.uuid4().hex[:8]}"
        self.client = make_client(self.client_id, protocol, target, tls=tls)
        self.client.max_inflight_messages_set(0)  # unlimited: our window bounds it
        self._v5 = protocol == "5"
        self._mid = 0
        self._acks: _AckReader | None = None  # set while QoS 1 runs own the socket
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        # No on_publish callback: with the VERSION2 API paho builds a Properties and a
        # ReasonCode object per call, a third of the publishing cost. QoS 1 completion is
        # read from the message infos instead.
        self._pending: deque[mqtt.MQTTMessageInfo] = deque()
        self._connected: bool | None = None
        self._refusal = ""
        self.sent = 0

    def _on_connect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: object, props: object
    ) -> None:
        failed = bool(getattr(rc, "is_failure", False))
        self._connected = not failed
        self._refusal = str(rc)
        # MQTT 5 §3.2.2.3.3: never more unacknowledged QoS 1 messages than the broker's
        # Receive Maximum (Mosquitto announces its max_inflight_messages, 20 by default).
        receive_max = getattr(props, "ReceiveMaximum", None)
        if isinstance(receive_max, int) and receive_max > 0:
            self.window = min(self.window, receive_max)

    def open(self, meters: Sequence[int] = (), timeout_s: float = 10.0) -> None:
        try:
            self.client.connect(self.target.host, self.target.port, keepalive=30)
        except OSError as exc:
            raise MqttConnectError(f"cannot reach broker {self.target}: {exc}") from None
        deadline = time.monotonic() + timeout_s
        while self._connected is None and time.monotonic() < deadline:
            self.client.loop(timeout=0.05)
        if not self._connected:
            sock = self.client.socket()
            if sock is not None:
                sock.close()
            reason = self._refusal or "no CONNACK"
            raise MqttConnectError(f"broker {self.target} refused the simulator: {reason}")
        _log.info("simulator connected to %s as %s", self.target, self.client_id)
        for idx in meters:
            self.send(self.encoder.status(idx, True))

    def send(self, msg: Message) -> None:
        self._release()
        qos = 1 if msg.retain else self.qos
        info = self.client.publish(msg.topic, msg.payload, qos=qos, retain=msg.retain)
        self.sent += 1
        if qos:
            self._pending.append(info)
            if len(self._pending) > self.window:
                self._settle(self.window // 2)
        elif self.client.want_write():
            self._settle(0)

    def send_many(self, messages: Sequence[Message]) -> None:
        """Publish a batch (a backfill's hot path). Runs of plain data messages go out as
        ready-made PUBLISH packets in one socket write each; retained statuses go
        through paho's `publish()`."""
        run: list[Message] = []
        for msg in messages:
            if msg.retain:
                self._send_run(run)
                run = []
                self.send(msg)
            else:
                run.append(msg)
        self._send_run(run)

    def _send_run(self, messages: list[Message]) -> None:
        if not messages:
            return
        if self._acks is None:
            self._settle(0)  # paho must have nothing unwritten or unacknowledged of its own
        sock = self.client.socket()
        if sock is None:
            raise MqttConnectError(f"lost the connection to {self.target}")
        if self.qos == 0:
            _write_all(sock, _publish_packets(messages, None, v5=self._v5))  # type: ignore[arg-type]
        else:
            self._send_run_qos1(sock, messages)  # type: ignore[arg-type]
        self.sent += len(messages)
        # our writes bypass paho's keep-alive clock; tell it the link is busy (paho >= 2.0)
        if hasattr(self.client, "_last_msg_out"):
            self.client._last_msg_out = time.monotonic()

    def _send_run_qos1(self, sock: socket.socket, messages: list[Message]) -> None:
        """QoS 1 with our own packet ids and PUBACK reading, at most `window` unacked.
        Safe because paho has no message in flight (settled above) and does not touch
        the socket until every id we used is acknowledged."""
        if self._acks is None:
            self._acks = _AckReader(sock)
        acks = self._acks
        step = max(1, self.window // 4)
        for i in range(0, len(messages), step):
            part = messages[i : i + step]
            while len(acks.waiting) + len(part) > self.window:
                acks.read(timeout_s=10.0)
            mids = [self._next_mid() for _ in part]
            acks.waiting.update(mids)
            _write_all(sock, _publish_packets(part, mids, v5=self._v5))
            acks.read(timeout_s=0.0)

    def _release(self) -> None:
        """Wait for every PUBACK of our own packet ids, then give the socket back to paho."""
        acks, self._acks = self._acks, None
        if acks is None:
            return
        deadline = time.monotonic() + 30.0
        while acks.waiting:
            if time.monotonic() > deadline:
                raise MqttConnectError(f"{len(acks.waiting)} QoS 1 messages never acknowledged")
            acks.read(timeout_s=1.0)
        if acks.saw_pingresp and hasattr(self.client, "_ping_t"):
            self.client._ping_t = 0  # the PINGRESP paho waits for was read here

    def _next_mid(self) -> int:
        self._mid = self._mid % 65535 + 1
        return self._mid

    def _settle(self, keep: int, timeout_s: float = 30.0) -> bool:
        """Service the socket until at most `keep` QoS 1 messages await their PUBACK and
        paho has no unwritten bytes left."""
        self._release()
        pending = self._pending
        deadline = time.monotonic() + timeout_s
        while True:
            while pending and pending[0].is_published():
                pending.popleft()
            if len(pending) <= keep and not self.client.want_write():
                return True
            if time.monotonic() > deadline:
                return False
            if self.client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                raise MqttConnectError(f"lost the connection to {self.target}")

    def poll(self, timeout_s: float) -> None:
        if self._acks is not None:
            self._acks.read(timeout_s=max(timeout_s, 0.0))
            return
        self.client.loop(timeout=max(timeout_s, 0.0))

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until every message was written (QoS 0) or acknowledged (QoS 1)."""
        return self._settle(0, timeout_s)

    def close(self, meters: Sequence[int] = ()) -> None:
        for idx in meters:
            self.send(self.encoder.status(idx, False))
        self.drain()
        self.client.disconnect()
        self.client.loop(timeout=0.05)


@lru_cache(maxsize=65536)
def _topic_field(topic: str, v5_props: bytes) -> bytes:
    encoded = topic.encode()
    return len(encoded).to_bytes(2, "big") + encoded


def _publish_packets(messages: Sequence[Message], mids: list[int] | None, *, v5: bool) -> bytes:
    """PUBLISH packets back to back (MQTT 3.1.1 §3.3): fixed header (0x30, or 0x32 with
    QoS 1), remaining length, topic (2-byte length + UTF-8), packet id if QoS 1, [v5:
    property length 0], payload."""
    props = b"\x00" if v5 else b""
    parts: list[bytes] = []
    add = parts.append
    if mids is None:
        for msg in messages:
            topic = _topic_field(msg.topic, props)
            add(b"\x30" + encode_varint(len(topic) + len(props) + len(msg.payload)))
            add(topic + props if v5 else topic)
            add(msg.payload)
        return b"".join(parts)
    for msg, mid in zip(messages, mids, strict=True):
        topic = _topic_field(msg.topic, props)
        add(b"\x32" + encode_varint(len(topic) + 2 + len(props) + len(msg.payload)))
        add(topic + mid.to_bytes(2, "big") + props)
        add(msg.payload)
    return b"".join(parts)


class _AckReader:
    """Reads the broker's packets while the simulator owns the socket: PUBACKs (§3.4)
    clear ids from `waiting`; a PINGRESP is noted; anything else is skipped."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.waiting: set[int] = set()
        self.saw_pingresp = False
        self._buf = b""

    def read(self, timeout_s: float) -> None:
        readable, _, _ = select.select([self.sock], [], [], timeout_s)
        if not readable:
            return
        try:
            _quick_ack(self.sock)
            chunk = self.sock.recv(1 << 16)
        except (BlockingIOError, ssl.SSLWantReadError):
            return
        except OSError as exc:
            raise MqttConnectError(f"lost the connection to the broker: {exc}") from None
        if not chunk:
            raise MqttConnectError("the broker closed the connection")
        buf = self._buf + chunk
        pos = 0
        whole = len(buf) - len(buf) % 4
        if whole:
            # the usual case: nothing but 4-byte PUBACKs (0x40 0x02 id id), checked and
            # decoded in one numpy pass instead of a Python loop per packet
            quads = np.frombuffer(buf, np.uint8, count=whole).reshape(-1, 4)
            if np.all((quads[:, 0] == 0x40) & (quads[:, 1] == 0x02)):
                ids = quads[:, 2].astype(np.int64) * 256 + quads[:, 3]
                self.waiting.difference_update(ids.tolist())
                pos = whole
        while True:
            parsed = _packet_at(buf, pos)
            if parsed is None:
                break
            kind, body_start, end = parsed
            if kind == 0x40 and end - body_start >= 2:
                self.waiting.discard(int.from_bytes(buf[body_start : body_start + 2], "big"))
            elif kind == 0xD0:
                self.saw_pingresp = True
            elif kind == 0xE0:
                raise MqttConnectError("the broker sent DISCONNECT")
            pos = end
        self._buf = buf[pos:]


def _quick_ack(sock: socket.socket) -> None:
    """ACK the broker's segments at once (Linux `TCP_QUICKACK`, which the kernel resets,
    hence on every read). Mosquitto writes PUBACKs with Nagle on: while our delayed ACK
    (up to 40 ms) is pending it holds the next ones back, and a small window stalls on
    that (measured: window 1,000 went from ~20k to ~60k msg/s)."""
    if _TCP_QUICKACK is not None:
        with contextlib.suppress(OSError):  # not TCP (a test double, a Unix socket)
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)


def _packet_at(buf: bytes, pos: int) -> tuple[int, int, int] | None:
    """(packet type, body start, end) of the complete packet at `pos`, or None."""
    if pos + 2 > len(buf):
        return None
    length, body_start = decode_varint(buf, pos + 1, len(buf))
    if length < 0:
        return None
    end = body_start + length
    return (buf[pos] & 0xF0, body_start, end) if end <= len(buf) else None


def _write_all(sock: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
        except (BlockingIOError, ssl.SSLWantWriteError):
            select.select([], [sock], [], 1.0)
            continue
        except OSError as exc:
            raise MqttConnectError(f"lost the connection to the broker: {exc}") from None
        view = view[sent:]
