"""The project's MQTT publishing client (rule transitions today, the alert stage next).

    async with MqttPublisher(settings.mqtt, client_id="node-1-rules", protocol="5",
                             tls=MqttTls.from_settings(settings)) as pub:
        await pub.publish("eco/_alerts/s1/overload", payload)        # returns after PUBACK
        fut = pub.publish_nowait("eco/_alerts/s1/overload", payload)  # queued; await later

Constructor: `MqttPublisher(target, *, client_id, protocol="3.1.1", tls=None, keepalive_s=30,
max_queued=10_000)`, or `MqttPublisher.from_settings(settings, client_id=…)`.

It connects and reconnects exactly like the ingest subscriber (the same `ConnectionLoop`:
backoff, TLS, one clear log line every few seconds while the broker is away, a
`FatalError` on refused credentials). Entering the context never waits for the broker:
messages queue while it is away (at most `max_queued`, then `publish` waits for room and
`publish_nowait` raises `MqttQueueFull`). QoS 1 messages stay queued until their PUBACK;
after a reconnect the unacknowledged ones are sent again (DUP set), then the rest, never
more in flight than the broker's Receive Maximum, never bigger than its Maximum Packet
Size. A clean session: the client's own queue is the state, so a restart of the broker
cannot lose it. The queue is in memory: what is unsent when the process exits is lost
(logged with its count).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Final

from ecocluster.core.mqtt import MqttConfigError, MqttError, MqttRefused, MqttTls, MqttUnavailable
from ecocluster.core.mqtt_wire import ConnAck, publish_header
from ecocluster.core.settings import MqttTarget, Settings
from ecocluster.ingest.mqtt import MqttProtocol
from ecocluster.ingest.mqtt_connection import ClientOptions, ConnectionLoop

__all__ = ["MqttPublisher", "MqttQueueFull"]

_log = logging.getLogger(__name__)
_CLOSE_DRAIN_S: Final = 5.0


class MqttQueueFull(MqttUnavailable):
    """The broker has been away long enough for the bounded publish queue to fill."""


@dataclass(eq=False, slots=True)
class _Outgoing:
    topic: bytes
    payload: bytes
    qos: int
    retain: bool
    done: asyncio.Future[None]
    mid: int = 0
    sent: bool = field(default=False)


class MqttPublisher:
    """See the module docstring. Usable once: `async with` (or `start()` / `close()`)."""

    def __init__(
        self,
        target: MqttTarget,
        *,
        client_id: str,
        protocol: str = "3.1.1",
        tls: MqttTls | None = None,
        keepalive_s: int = 30,
        max_queued: int = 10_000,
        name: str = "publisher",
        fallbacks: tuple[MqttTarget, ...] = (),
    ) -> None:
        self.v5 = protocol == "5"
        self.max_queued = max_queued
        self.options = ClientOptions(
            target=target,
            client_id=client_id,
            v5=self.v5,
            name=name,
            keepalive_s=keepalive_s,
            clean_start=True,
            receive_maximum=None,
            tls=tls,
            fallbacks=fallbacks,
        )
        self._loop = ConnectionLoop(self.options, self._new_protocol, self._on_connected)
        self._queue: collections.deque[_Outgoing] = collections.deque()  # not yet sent
        self._inflight: dict[int, _Outgoing] = {}  # sent, waiting for PUBACK (in order)
        self._window = 65535
        self._max_packet: int | None = None
        self._next_mid = 0
        self._room = asyncio.Event()
        self._room.set()
        self._task: asyncio.Task[None] | None = None
        self._fatal: BaseException | None = None
        self._closed = False

    @classmethod
    def from_settings(
        cls, settings: Settings, *, client_id: str, name: str = "publisher"
    ) -> MqttPublisher:
        """Broker, protocol, TLS and keep-alive from the node's settings."""
        return cls(
            settings.mqtt,
            client_id=client_id,
            protocol=settings.mqtt_protocol,
            tls=MqttTls.from_settings(settings),
            keepalive_s=settings.mqtt_keepalive_s,
            name=name,
        )

    # -- lifecycle --------------------------------------------------------------------------
    async def __aenter__(self) -> MqttPublisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start connecting in the background; returns at once (the broker may be away)."""
        if self._task is not None or self._closed:
            raise RuntimeError("an MqttPublisher runs once; create a new one")
        self._task = asyncio.create_task(self._run(), name=f"mqtt.{self.options.name}")

    async def close(self, drain_s: float = _CLOSE_DRAIN_S) -> None:
        """Wait up to `drain_s` for what is queued to be acknowledged, then disconnect."""
        if self._closed:
            return
        self._closed = True
        pending = [m.done for m in (*self._inflight.values(), *self._queue)]
        if pending and self._loop.connected.is_set() and self._fatal is None:
            await asyncio.wait(pending, timeout=drain_s)
        await self._loop.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        unsent = [m for m in (*self._inflight.values(), *self._queue) if not m.done.done()]
        if unsent:
            _log.error(
                "%s: closed with %d messages not acknowledged by %s; they are lost",
                self.options.name,
                len(unsent),
                self._loop.target,
            )
        for m in unsent:
            m.done.set_exception(MqttUnavailable("publisher closed before the broker acked"))
            m.done.exception()  # retrieved: the caller may be gone
        self._queue.clear()
        self._inflight.clear()

    async def _run(self) -> None:
        try:
            await self._loop.run()
        except Exception as exc:  # fatal: every waiting publish learns it
            self._fatal = exc
            for m in (*self._inflight.values(), *self._queue):
                if not m.done.done():
                    m.done.set_exception(exc)
                    m.done.exception()
            self._room.set()

    @property
    def connected(self) -> bool:
        return self._loop.connected.is_set()

    @property
    def queued(self) -> int:
        """Messages not yet acknowledged (in flight or waiting to be sent)."""
        return len(self._queue) + len(self._inflight)

    # -- publishing -------------------------------------------------------------------------
    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Queue (waiting for room) and return after the PUBACK (QoS 1) or the write (QoS 0)."""
        await self.wait_for_room()
        await self.publish_nowait(topic, payload, qos=qos, retain=retain)

    async def wait_for_room(self) -> None:
        """Until the queue has room for one more message (backpressure for producers)."""
        while self.queued >= self.max_queued and self._fatal is None:
            self._room.clear()
            await self._room.wait()

    def publish_nowait(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> asyncio.Future[None]:
        """Queue now; the future completes at the PUBACK. Raises `MqttQueueFull`."""
        if self._fatal is not None:
            raise self._fatal
        if self._closed or self._task is None:
            raise RuntimeError("the publisher is not running (use `async with`)")
        if qos not in (0, 1):
            raise ValueError("MqttPublisher sends QoS 0 or 1")
        if self.queued >= self.max_queued:
            raise MqttQueueFull(
                f"{self.options.name}: {self.queued} messages queued for {self._loop.target}"
                " (the broker has been away too long)"
            )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Outgoing(topic.encode(), payload, qos, retain, done))
        self._pump()
        return done

    def _pump(self) -> None:
        """Send queued messages while connected and the broker's window has room."""
        proto = self._loop.current
        if proto is None or proto.transport is None:
            return
        while self._queue and len(self._inflight) < self._window:
            m = self._queue.popleft()
            if not self._fits(m):
                continue
            if m.qos:
                m.mid = self._new_mid()
                self._inflight[m.mid] = m
            self._write(proto, m, dup=False)
            if not m.qos:
                m.done.set_result(None)
                self._room.set()

    def _fits(self, m: _Outgoing) -> bool:
        size = len(m.topic) + len(m.payload) + 16
        if self._max_packet is not None and size > self._max_packet:
            m.done.set_exception(
                MqttConfigError(
                    f"message on {m.topic.decode()!r} ({len(m.payload)} bytes) is over the"
                    f" broker's Maximum Packet Size of {self._max_packet} bytes"
                )
            )
            return False
        return True

    def _write(self, proto: MqttProtocol, m: _Outgoing, *, dup: bool) -> None:
        head = publish_header(
            m.topic, len(m.payload), qos=m.qos, mid=m.mid, v5=self.v5, retain=m.retain, dup=dup
        )
        proto.write(head + m.payload)
        m.sent = True

    def _new_mid(self) -> int:
        while True:
            self._next_mid = self._next_mid % 65535 + 1
            if self._next_mid not in self._inflight:
                return self._next_mid

    # -- connection callbacks ---------------------------------------------------------------
    def _new_protocol(self, generation: int) -> MqttProtocol:
        return MqttProtocol(generation, v5=self.v5, on_puback=self._on_puback)

    async def _on_connected(self, proto: MqttProtocol, connack: ConnAck) -> None:
        """Bind to the broker's limits, resend the unacknowledged (DUP), then the rest."""
        if self.v5 and connack.maximum_qos < 1:
            raise MqttConfigError(
                f"broker {self._loop.target} allows QoS 0 only; {self.options.name} needs"
                " QoS 1 (Maximum QoS 0 in its CONNACK)"
            )
        self._window = connack.receive_maximum if self.v5 else 65535
        self._max_packet = connack.maximum_packet_size if self.v5 else None
        for m in self._inflight.values():  # [MQTT-4.4.0-1]: resend in the original order
            self._write(proto, m, dup=True)
        if self._inflight:
            _log.info(
                "%s: resent %d unacknowledged messages", self.options.name, len(self._inflight)
            )
        # Sent from the loop's next turn: `current` is set once this callback returns.
        asyncio.get_running_loop().call_soon(self._pump)

    def _on_puback(self, mid: int, code: int) -> None:
        m = self._inflight.pop(mid, None)
        if m is None:
            return  # a late duplicate ack
        if code >= 0x80 and not m.done.done():
            error: MqttError = (
                MqttRefused(
                    f"broker {self._loop.target} refused a message on {m.topic.decode()!r}:"
                    " not authorised (check the ACL of our user)"
                )
                if code == 0x87
                else MqttUnavailable(
                    f"broker {self._loop.target} refused a message on"
                    f" {m.topic.decode()!r} (PUBACK reason {code:#04x})"
                )
            )
            m.done.set_exception(error)
        elif not m.done.done():
            m.done.set_result(None)
        self._room.set()
        self._pump()
