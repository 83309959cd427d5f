"""One MQTT connection as an asyncio `Protocol` (3.1.1 and 5.0), for the subscriber and the
publisher alike.

Why not paho or aiomqtt: aiomqtt acknowledges on receipt (ingest may acknowledge only after
a durable write), and paho reads every packet with several 1-byte `recv` calls in its own
thread, ~20 µs a message before any work is done (bench/RESULTS.md, issue 3). Here
`data_received` parses every complete packet of a 64 KiB read in one loop, and the
acknowledgements of a whole flush go out in one write.

Nothing the broker sends can raise out of `data_received`: a malformed, short or
unexpected packet becomes an `MqttProtocolError` in `closed` and the connection is dropped
(the connection loop reconnects). Packets are reassembled by the kernel's `PacketSplitter`
in linear time. We never set a Topic Alias Maximum, so a v5 broker sends full topics; the
subscriber asks for QoS ≤ 1, so a QoS 2 PUBLISH is a protocol error here.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from ecocluster.core.mqtt import MqttError, MqttProtocolError, MqttSessionTakenOver, MqttUnavailable
from ecocluster.core.mqtt_wire import (
    CONNACK,
    DISCONNECT,
    PINGRESP,
    PUBACK,
    PUBLISH,
    SUBACK,
    ConnAck,
    MalformedPacket,
    PacketSplitter,
    decode_varint,
    parse_connack,
    parse_disconnect,
    parse_puback,
    parse_suback,
)

__all__ = ["ConnAck", "Inbound", "MqttProtocol"]

#: DISCONNECT reason "Session taken over" (MQTT 5 §3.14.2.1).
SESSION_TAKEN_OVER = 0x8E


class Inbound(NamedTuple):
    """One received message. `generation` numbers the connection it came on: its PUBACK
    must go out on that connection and no other (ids are per connection). `retain` is the
    PUBLISH's RETAIN flag: set on a copy the broker kept and replays on subscribe."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    recv_ms: int
    generation: int
    retain: bool = False
    #: The PUBLISH's DUP flag: a redelivery of a message this session may have seen.
    dup: bool = False


class MqttProtocol(asyncio.Protocol):
    """Parses what the broker sends. PUBLISHes are appended to `inbound` (a subscriber's
    queue; None for a publisher), with `on_wake(before, after)` called after each read that
    added some; PUBACKs go to `on_puback(mid, reason)`; CONNACK and SUBACKs resolve futures.
    `closed` resolves with why the connection ended (None: closed by us)."""

    def __init__(
        self,
        generation: int,
        *,
        v5: bool,
        inbound: collections.deque[Inbound] | None = None,
        on_wake: Callable[[int, int], None] | None = None,
        on_puback: Callable[[int, int], None] | None = None,
        max_packet_size: int | None = None,
    ) -> None:
        self.generation = generation
        self.v5 = v5
        self.inbound = inbound
        self.on_wake = on_wake
        self.on_puback = on_puback
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.connack: asyncio.Future[ConnAck] = loop.create_future()
        self.subacks: dict[int, asyncio.Future[list[int]]] = {}
        self.closed: asyncio.Future[MqttError | None] = loop.create_future()
        self.last_read = time.monotonic()
        # v5: a packet over what we advertised is the broker's protocol error (§3.1.2.11.4);
        # 3.1.1 cannot advertise, so anything the protocol allows is taken (and refused by
        # size in the pipeline, dead-lettered rather than redelivered for ever).
        self._splitter = PacketSplitter(max_packet_size) if max_packet_size else PacketSplitter()

    # -- transport callbacks ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        why = MqttUnavailable(f"connection lost ({exc or 'closed by the broker'})")
        futures: list[asyncio.Future[Any]] = [self.connack, *self.subacks.values()]
        for fut in futures:
            if not fut.done():
                fut.set_exception(why)
                fut.exception()  # retrieved: nobody may be waiting any more
        self.subacks.clear()
        self._close_with(why if exc is not None else MqttUnavailable("closed by the broker"))

    def write(self, data: bytes) -> bool:
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(data)
        return True

    def fail(self, why: MqttError) -> None:
        """Drop the connection for `why` (the first reason given wins)."""
        self._close_with(why)
        if self.transport is not None:
            self.transport.close()

    def close(self, data: bytes = b"") -> None:
        """Close on our side (optionally writing a DISCONNECT first)."""
        if data:
            self.write(data)
        if not self.closed.done():
            self.closed.set_result(None)
        if self.transport is not None:
            self.transport.close()

    def _close_with(self, why: MqttError) -> None:
        if not self.closed.done():
            self.closed.set_result(why)

    # -- parsing --------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.last_read = time.monotonic()
        inbound = self.inbound
        before = len(inbound) if inbound is not None else 0
        try:
            self._parse(data)
        except MalformedPacket as exc:
            self.fail(MqttProtocolError(f"malformed packet from the broker: {exc}"))
        except MqttError as exc:
            self.fail(exc)
        except Exception as exc:  # any other surprise in a broker's bytes: same treatment
            self.fail(MqttProtocolError(f"unparsable packet from the broker ({exc!r})"))
        if inbound is not None and self.on_wake is not None and len(inbound) > before:
            self.on_wake(before, len(inbound))

    def _parse(self, data: bytes) -> None:
        recv_ms = time.time_ns() // 1_000_000
        inbound, generation, v5 = self.inbound, self.generation, self.v5
        for first, buf, start, end in self._splitter.feed(data):
            if first >> 4 != PUBLISH:
                self._control(first, memoryview(buf)[start:end])
                continue
            if inbound is None:
                continue  # a publisher has no subscriptions; nothing to deliver
            qos = (first >> 1) & 3
            if qos > 1:
                raise MqttProtocolError(f"QoS {qos} PUBLISH on a QoS ≤ 1 subscription")
            if end - start < 2:
                raise MalformedPacket("PUBLISH shorter than its topic length")
            j = start + 2 + ((buf[start] << 8) | buf[start + 1])
            mid = 0
            if qos:
                mid = (buf[j] << 8) | buf[j + 1] if j + 2 <= end else -1
                if mid <= 0:
                    raise MalformedPacket("QoS 1 PUBLISH without a packet id")
                j += 2
            if v5:
                plen, k = decode_varint(buf, j, end)
                if plen < 0:
                    raise MalformedPacket("PUBLISH ends inside its property length")
                j = k + plen
            if j > end:
                raise MalformedPacket("PUBLISH header longer than the packet")
            topic = buf[start + 2 : start + 2 + ((buf[start] << 8) | buf[start + 1])]
            inbound.append(
                Inbound(
                    topic.decode("utf-8", "replace"),
                    buf[j:end],
                    mid,
                    qos,
                    recv_ms,
                    generation,
                    bool(first & 1),
                    bool(first & 8),
                )
            )

    def _control(self, first: int, body: memoryview) -> None:
        kind = first >> 4
        if kind == PUBACK:
            mid, code = parse_puback(body, v5=self.v5)
            if self.on_puback is not None:
                self.on_puback(mid, code)
        elif kind == CONNACK:
            connack = parse_connack(body, v5=self.v5)
            if self.connack.done():
                raise MqttProtocolError("a second CONNACK")
            self.connack.set_result(connack)
        elif kind == SUBACK:
            mid, codes = parse_suback(body, v5=self.v5)
            fut = self.subacks.pop(mid, None)
            if fut is not None and not fut.done():
                fut.set_result(codes)
        elif kind == PINGRESP:
            pass
        elif kind == DISCONNECT:
            code, reason = parse_disconnect(body, v5=self.v5)
            text = f": {reason}" if reason else ""
            if code == SESSION_TAKEN_OVER:
                raise MqttSessionTakenOver(
                    f"the broker handed our session to another client with our client id{text}"
                )
            raise MqttUnavailable(f"the broker disconnected us (reason {code:#04x}{text})")
        else:
            raise MqttProtocolError(f"unexpected packet type {kind} from the broker")


def close_quietly(proto: MqttProtocol | None, data: bytes = b"") -> None:
    """Close a connection that may already be gone."""
    if proto is not None:
        with contextlib.suppress(Exception):
            proto.close(data)
