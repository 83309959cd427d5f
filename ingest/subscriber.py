"""The MQTT side of ingest: one persistent-session subscription, as an owned object.

    async with MqttSubscriber(settings, batch_size=5000, flush_at=250) as sub:
        await sub.wait_subscribed()            # raises the fatal error, if any
        async for batch in sub:                # list[Inbound], oldest first
            ...                                # make the batch durable, then
            sub.ack(batch)                     # PUBACK each on the connection it came on

Constructor: `MqttSubscriber(settings, *, batch_size=…, flush_at=…, max_wait_s=…,
max_buffered=…)` (defaults: `ingest_batch_size`, the same, `ingest_flush_ms`, 200,000);
everything else (broker `MqttTarget`, client id, protocol, prefix, TLS, QoS, keep-alive,
Receive Maximum, share group, sites) comes from `Settings`.

The subscriber owns its connection task (`ConnectionLoop`: reconnect for ever with the
kernel's backoff; stop on refused credentials or a configuration the broker cannot serve)
and its receive buffer. Batches are cut by size, by age (`max_wait_s` after the first
message) and when the stream stalls with messages waiting: a broker whose inflight window
is full sends nothing until we acknowledge, so waiting for size alone would deadlock.

Message ids are per connection. Every connection gets a `generation` the moment it is
opened, before CONNECT: a resumed session's backlog arrives between CONNACK and SUBACK, and
its PUBACKs must go out on that connection (issue 9 #11). An ack for a connection that is
gone is dropped: the broker redelivers the message, and the same id may already name
another message on the new connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import Final

from ecocluster.core.mqtt import (
    MqttConfigError,
    MqttPartlySubscribed,
    MqttRefused,
    MqttTls,
    MqttUnavailable,
)
from ecocluster.core.mqtt_wire import ConnAck, puback_packets, subscribe_packet
from ecocluster.core.settings import Settings
from ecocluster.core.types import is_valid_id
from ecocluster.ingest.mqtt import Inbound, MqttProtocol
from ecocluster.ingest.mqtt_connection import CONNECT_TIMEOUT_S, ClientOptions, ConnectionLoop

__all__ = ["Inbound", "MqttSubscriber", "topic_filters"]

_log = logging.getLogger(__name__)
#: Room in a packet beyond its payload: fixed header, our topics (4 levels of ≤ 64
#: characters), packet id and properties.
PACKET_OVERHEAD: Final = 512
#: No new message for this long while some wait: the broker's window is probably full.
_IDLE_S: Final = 0.01
#: SUBACK codes meaning "shared subscriptions are not supported" (MQTT 5 §3.9.3).
_NO_SHARED: Final = 0x9E


def topic_filters(settings: Settings) -> list[str]:
    """`{prefix}/+/+/data|senml|status`, per site when `ingest_sites` is set, with the data
    filters shared (`$share/{group}/…`) when `ingest_share_group` is set. Status stays a
    plain subscription: retained messages and shared subscriptions do not mix reliably."""
    prefix = settings.topic_prefix
    bad = [site for site in settings.ingest_sites if not is_valid_id(site)]
    if bad:  # a "+" or "#" here would widen the subscription instead of narrowing it
        raise ValueError(f"ingest_sites: invalid site id {bad[0]!r}")
    sites = settings.ingest_sites or ["+"]
    share = settings.ingest_share_group
    filters = []
    for site in sites:
        for kind in ("data", "senml"):
            topic = f"{prefix}/{site}/+/{kind}"
            filters.append(f"$share/{share}/{topic}" if share else topic)
        filters.append(f"{prefix}/{site}/+/status")
    return filters


class MqttSubscriber:
    """An async context manager and async iterator of message batches (see the module)."""

    def __init__(
        self,
        settings: Settings,
        *,
        batch_size: int | None = None,
        flush_at: int | None = None,
        max_wait_s: float | None = None,
        max_buffered: int = 200_000,
        name: str = "ingest",
    ) -> None:
        self.settings = settings
        #: Who is connecting, in log lines ("ingest", "rules feed", "alerts", "api live").
        self.name = name
        self.filters = topic_filters(settings)
        self.qos = settings.mqtt_qos
        self.v5 = settings.mqtt_protocol == "5"
        if settings.ingest_share_group and not self.v5:
            raise MqttConfigError("a share group needs MQTT 5: set ECOCLUSTER_MQTT_PROTOCOL=5")
        self.batch_size = batch_size or settings.ingest_batch_size
        #: A batch is cut as soon as this many wait (≤ the broker's inflight window).
        self.flush_at = min(flush_at or self.batch_size, self.batch_size)
        self.max_wait_s = max_wait_s if max_wait_s is not None else settings.ingest_flush_ms / 1000
        self.max_buffered = max_buffered
        self.options = ClientOptions(
            target=settings.mqtt,
            client_id=settings.mqtt_client_id,
            v5=self.v5,
            name=name,
            keepalive_s=settings.mqtt_keepalive_s,
            session_expiry_s=settings.mqtt_session_expiry_s,
            receive_maximum=settings.mqtt_receive_maximum,
            max_packet_size=settings.max_payload_bytes + PACKET_OVERHEAD,
            tls=MqttTls.from_settings(settings),
            fallbacks=settings.mqtt_fallbacks,
        )
        self._loop = ConnectionLoop(self.options, self._new_protocol, self._subscribe)
        self._buffer: collections.deque[Inbound] = collections.deque()
        self._live: dict[int, MqttProtocol] = {}  # open connections by generation
        self._wakeup = asyncio.Event()
        self._signalled = False
        self._subscribed = asyncio.Event()
        self._paused: MqttProtocol | None = None
        self._fatal: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------------
    async def __aenter__(self) -> MqttSubscriber:
        if self._task is not None or self._closed:
            raise RuntimeError("an MqttSubscriber runs once; create a new one")
        self._task = asyncio.create_task(self._run(), name=f"{self.name}.mqtt")
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Disconnect cleanly; the persistent session keeps what we did not acknowledge."""
        self._closed = True
        await self._loop.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        try:
            await self._loop.run()
        except Exception as exc:  # fatal: handed to whoever waits for batches
            self._fatal = exc
            self._wakeup.set()
            self._subscribed.set()

    async def wait_subscribed(self) -> None:
        """Until the first SUBACK (raises the fatal error that ended the subscriber)."""
        await self._subscribed.wait()
        self._raise_if_fatal()

    @property
    def connected(self) -> asyncio.Event:
        """Set while a connection is up (to wait on; `is_connected` to read)."""
        return self._loop.connected

    @property
    def is_connected(self) -> bool:
        return self._loop.connected.is_set()

    @property
    def buffered(self) -> int:
        """Messages received but not yet handed out in a batch."""
        return len(self._buffer)

    @property
    def generation(self) -> int:
        """How many connections were opened so far (a reconnect increments it)."""
        return self._loop.generation

    def _raise_if_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    # -- batches ----------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[list[Inbound]]:
        return self

    async def __anext__(self) -> list[Inbound]:
        return await self.next_batch()

    async def next_batch(self, *, wait: bool = True) -> list[Inbound]:
        """The next batch (never empty when `wait`); without `wait`, what is buffered now
        (up to `batch_size`, possibly nothing): for the last flush at shutdown."""
        if wait:
            while not self._buffer:
                self._raise_if_fatal()
                self._rearm()
                await self._wakeup.wait()
            self._raise_if_fatal()
            if len(self._buffer) < self.flush_at:
                await self._gather()
        return self._take(self.batch_size)

    async def _gather(self) -> None:
        """Wait until the batch is big enough, old enough, or the stream stalls."""
        buffer = self._buffer
        deadline = buffer[0].recv_ms / 1000 + self.max_wait_s
        seen = -1
        while len(buffer) < self.flush_at and len(buffer) != seen and self._fatal is None:
            seen = len(buffer)
            remaining = deadline - time.time()
            if remaining <= 0:
                return
            self._rearm()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), min(remaining, _IDLE_S))
                if len(buffer) >= self.flush_at:
                    return

    def _rearm(self) -> None:
        self._wakeup.clear()
        self._signalled = False

    def _take(self, limit: int) -> list[Inbound]:
        buffer = self._buffer
        n = min(limit, len(buffer))
        out = [buffer.popleft() for _ in range(n)]
        paused = self._paused
        if paused is not None and len(buffer) < self.max_buffered // 2:
            self._paused = None
            if paused.transport is not None:
                paused.transport.resume_reading()
        return out

    def stop_receiving(self) -> None:
        """Stop reading from the broker (at shutdown, before the last `next_batch(wait=False)`
        calls): what is not received stays with the broker for our next session."""
        proto = self._loop.current
        if proto is not None and proto.transport is not None and self._paused is None:
            proto.transport.pause_reading()
            self._paused = proto

    def ack(self, messages: Iterable[Inbound]) -> int:
        """PUBACK the QoS 1 messages, each on the connection it came on (one write per
        connection); returns how many were sent. Acks for closed connections are dropped:
        the broker redelivers those messages."""
        by_generation: dict[int, list[int]] = {}
        for m in messages:
            if m.qos == 1:
                by_generation.setdefault(m.generation, []).append(m.mid)
        sent = 0
        for generation, mids in by_generation.items():
            proto = self._live.get(generation)
            if proto is not None and proto.write(puback_packets(mids)):
                sent += len(mids)
        return sent

    # -- connections ------------------------------------------------------------------------
    def _new_protocol(self, generation: int) -> MqttProtocol:
        proto = MqttProtocol(
            generation,
            v5=self.v5,
            inbound=self._buffer,
            on_wake=self._on_wake,
            max_packet_size=self.options.max_packet_size if self.v5 else None,
        )
        self._live[generation] = proto
        proto.closed.add_done_callback(lambda _f: self._live.pop(generation, None))
        return proto

    def _on_wake(self, before: int, after: int) -> None:
        # Wake the consumer for the first message (it starts the age clock) and when the
        # batch is full; not for every read in between.
        if not self._signalled and (before == 0 or after >= self.flush_at):
            self._signalled = True
            self._wakeup.set()
        if after >= self.max_buffered and self._paused is None:
            # Backpressure: stop reading the socket until the consumer catches up.
            proto = self._loop.current or self._live.get(self._loop.generation)
            if proto is not None and proto.transport is not None:
                proto.transport.pause_reading()
                self._paused = proto

    async def _subscribe(self, proto: MqttProtocol, connack: ConnAck) -> None:
        """After each CONNACK: check what the broker allows, then SUBSCRIBE and wait for
        the SUBACK (the session's backlog may already be arriving meanwhile)."""
        target, share = self._loop.target, self.settings.ingest_share_group
        if self.v5 and share and not connack.shared_subscription_available:
            raise MqttConfigError(
                f"broker {target} does not support shared subscriptions (CONNACK), but"
                f" ingest_share_group is {share!r}: drop it or use a broker that has them"
            )
        if self.v5 and connack.maximum_qos < self.qos:
            raise MqttConfigError(
                f"broker {target} allows QoS {connack.maximum_qos} only: messages could be"
                " lost; set ECOCLUSTER_MQTT_QOS=0 to accept that"
            )
        suback: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        proto.subacks[1] = suback
        proto.write(subscribe_packet(1, self.filters, self.qos, v5=self.v5))
        try:
            codes = await asyncio.wait_for(suback, CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise MqttUnavailable(f"broker {target} did not answer our SUBSCRIBE") from None
        self._check_suback(codes)
        self._subscribed.set()

    def _check_suback(self, codes: list[int]) -> None:
        target, share = self._loop.target, self.settings.ingest_share_group
        refused = [(f, c) for f, c in zip(self.filters, codes, strict=False) if c >= 0x80]
        if share and any(c == _NO_SHARED for _, c in refused):
            raise MqttConfigError(
                f"broker {target} refused the shared subscription (code 0x9e: not supported);"
                f" drop ingest_share_group {share!r} or use a broker that has them"
            )
        if refused and len(refused) == len(self.filters):
            raise MqttRefused(
                f"broker {target} refused every subscription (code {refused[0][1]:#04x}):"
                " check the ACL of our user"
            )
        if refused:
            raise MqttPartlySubscribed(
                f"broker {target} refused {len(refused)} of our {len(self.filters)}"
                f" subscriptions ({', '.join(f'{f} {c:#04x}' for f, c in refused[:3])}"
                f"{', …' if len(refused) > 3 else ''}): not running with part of our topics;"
                " check the broker's ACL for our user (on nats-server: one session's"
                " subscriptions share at most 65,535 max_ack_pending)"
            )
        downgraded = [f for f, c in zip(self.filters, codes, strict=False) if c < self.qos]
        if downgraded:
            _log.error(
                "broker %s granted QoS 0 only to %s: those messages can be lost",
                target,
                ", ".join(downgraded),
            )
