"""The MQTT wire protocol the subscriber needs, as an asyncio `Protocol` (3.1.1 and 5.0).

Only the consumer side: CONNECT / CONNACK, SUBSCRIBE / SUBACK, PUBLISH in (QoS 0 and 1),
PUBACK out, PINGREQ / PINGRESP, DISCONNECT. Why not paho or aiomqtt: aiomqtt acknowledges
on receipt (we may acknowledge only after a durable write), and paho reads every packet with
several 1-byte `recv` calls in its own thread, which costs ~20 µs a message before any
work is done (bench/RESULTS.md, issue 3). Here `data_received` parses every complete packet
of a 64 KiB read in one loop, and the acknowledgements of a whole flush go out in one write.

We never set a Topic Alias Maximum, so a v5 broker sends full topics; we subscribe at
QoS ≤ 1, so QoS 2 never arrives (a QoS 2 PUBLISH is a protocol error here).
"""

from __future__ import annotations

import asyncio
import collections
import struct
import time
from collections.abc import Callable
from typing import Any, Final, NamedTuple

__all__ = [
    "ConnAck",
    "Inbound",
    "MqttProtocol",
    "ProtocolError",
    "connect_packet",
    "puback_packets",
    "subscribe_packet",
]

_U16: Final = struct.Struct("!H")
_PUBACK: Final = struct.Struct("!BBH")
PINGREQ: Final = b"\xc0\x00"
DISCONNECT: Final = b"\xe0\x00"
_PUBLISH, _CONNACK, _PUBACK_T, _SUBACK, _PINGRESP, _DISCONNECT = 3, 2, 4, 9, 13, 14


class ProtocolError(Exception):
    """The broker sent something this client cannot handle; the connection is dropped."""


class Inbound(NamedTuple):
    """One received message; `generation` is the connection it came on."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    recv_ms: int
    generation: int


class ConnAck(NamedTuple):
    session_present: bool
    code: int


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _text(value: str) -> bytes:
    raw = value.encode()
    return _U16.pack(len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def connect_packet(
    client_id: str,
    *,
    v5: bool,
    keepalive_s: int,
    username: str | None = None,
    password: str | None = None,
    session_expiry_s: int = 0,
    receive_maximum: int = 65535,
) -> bytes:
    """CONNECT with clean start off: a persistent session (MQTT 3.1.2.4 / 5 §3.1.2.4)."""
    flags = (0x80 if username else 0) | (0x40 if password is not None and username else 0)
    header = _text("MQTT") + bytes([5 if v5 else 4, flags]) + _U16.pack(keepalive_s)
    if v5:
        props = b"\x11" + struct.pack("!I", session_expiry_s) + b"\x21" + _U16.pack(receive_maximum)
        header += _varint(len(props)) + props
    payload = _text(client_id)
    if username:
        payload += _text(username)
        if password is not None:
            payload += _text(password)
    return _packet(0x10, header + payload)


def subscribe_packet(mid: int, filters: list[str], qos: int, *, v5: bool) -> bytes:
    body = _U16.pack(mid) + (b"\x00" if v5 else b"")
    for topic_filter in filters:
        body += _text(topic_filter) + bytes([qos])
    return _packet(0x82, body)


def puback_packets(mids: list[int]) -> bytes:
    """PUBACKs with success and no properties: the same four bytes in 3.1.1 and 5."""
    pack = _PUBACK.pack
    return b"".join([pack(0x40, 2, mid) for mid in mids])


class MqttProtocol(asyncio.Protocol):
    """Parses what the broker sends; PUBLISHes go straight into `pending`.

    `on_wake(before, after)` is called after each read that added messages, with the queue
    length before and after it."""

    def __init__(
        self,
        pending: collections.deque[Inbound],
        generation: int,
        *,
        v5: bool,
        on_wake: Callable[[int, int], None],
    ) -> None:
        self.pending = pending
        self.generation = generation
        self.v5 = v5
        self.on_wake = on_wake
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[ConnAck] = asyncio.get_running_loop().create_future()
        self.subacks: dict[int, asyncio.Future[list[int]]] = {}
        self.closed: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.last_read = time.monotonic()
        self._rest = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        futures: list[asyncio.Future[Any]] = [self.connack, *self.subacks.values()]
        for fut in futures:
            if not fut.done():
                fut.set_exception(ConnectionError("connection lost"))
        if not self.closed.done():
            self.closed.set_result(exc)

    def write(self, data: bytes) -> bool:
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(data)
        return True

    def fail(self, why: str) -> None:
        if not self.closed.done():
            self.closed.set_result(ProtocolError(why))
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._rest:
            data = self._rest + data
        self.last_read = time.monotonic()
        recv_ms = int(time.time() * 1000)
        append, generation, v5 = self.pending.append, self.generation, self.v5
        before = len(self.pending)
        n, pos = len(data), 0
        while n - pos >= 2:
            first = data[pos]
            # remaining length: 1–4 bytes, 7 bits each (MQTT 2.2.3)
            i, length, shift = pos + 1, 0, 0
            while True:
                if i >= n:
                    self._rest = data[pos:]
                    return self._woken(before)
                byte = data[i]
                length |= (byte & 0x7F) << shift
                i += 1
                if byte < 0x80:
                    break
                shift += 7
                if shift > 21:
                    return self.fail("malformed remaining length")
            end = i + length
            if end > n:
                break
            kind = first >> 4
            if kind == _PUBLISH:
                qos = (first >> 1) & 3
                j = i + 2 + ((data[i] << 8) | data[i + 1])
                topic = data[i + 2 : j].decode("utf-8", "replace")
                mid = 0
                if qos:
                    if qos > 1:
                        return self.fail("QoS 2 PUBLISH on a QoS ≤ 1 subscription")
                    mid = (data[j] << 8) | data[j + 1]
                    j += 2
                if v5:  # skip the properties
                    plen, shift = 0, 0
                    while True:
                        byte = data[j]
                        j += 1
                        plen |= (byte & 0x7F) << shift
                        if byte < 0x80:
                            break
                        shift += 7
                    j += plen
                append(Inbound(topic, data[j:end], mid, qos, recv_ms, generation))
            else:
                self._control(kind, data[i:end])
            pos = end
        self._rest = data[pos:] if pos < n else b""
        self._woken(before)

    def _woken(self, before: int) -> None:
        after = len(self.pending)
        if after > before:
            self.on_wake(before, after)

    def _control(self, kind: int, body: bytes) -> None:
        if kind == _CONNACK:
            if not self.connack.done() and len(body) >= 2:
                self.connack.set_result(ConnAck(bool(body[0] & 1), body[1]))
        elif kind == _SUBACK:
            mid = (body[0] << 8) | body[1]
            codes = body[2:]
            if self.v5:  # skip properties
                plen, k, shift = 0, 0, 0
                while True:
                    byte = codes[k]
                    k += 1
                    plen |= (byte & 0x7F) << shift
                    if byte < 0x80:
                        break
                    shift += 7
                codes = codes[k + plen :]
            fut = self.subacks.pop(mid, None)
            if fut is not None and not fut.done():
                fut.set_result(list(codes))
        elif kind == _DISCONNECT:
            code = body[0] if body else 0
            self.fail(f"broker disconnected us (reason {code:#04x})")
        elif kind in (_PINGRESP, _PUBACK_T):
            pass
        else:
            self.fail(f"unexpected packet type {kind}")
