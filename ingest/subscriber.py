"""The MQTT side of ingest: one persistent-session connection, reconnected for ever.

The wire protocol is `ingest.mqtt` (asyncio, no thread: acknowledgements only after a
durable write, and a whole burst parsed per socket read). This module owns the connection's
life: connect (TLS and credentials from `ECOCLUSTER_MQTT_URL`), subscribe to the filters
(kept as data, re-subscribed on every connect), keep-alive, and an explicit reconnect loop
with capped exponential backoff and jitter that logs once per outage and stops for good
when the broker refuses our credentials.

Message ids are per connection: after a reconnect the broker redelivers what we had not
acknowledged, so an ack for a message of an earlier connection is dropped (`generation`),
never sent on the new one, where the same id may name another message.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Iterable
from typing import Final

from ecocluster.core.settings import Settings
from ecocluster.core.types import is_valid_id
from ecocluster.ingest.errors import IngestError
from ecocluster.ingest.mqtt import (
    DISCONNECT,
    PINGREQ,
    Inbound,
    MqttProtocol,
    ProtocolError,
    connect_packet,
    puback_packets,
    subscribe_packet,
)

__all__ = ["Inbound", "MqttSubscriber", "SubscriberError", "topic_filters"]

_log = logging.getLogger(__name__)
#: CONNACK codes meaning "your credentials are wrong": stop, do not retry (3.1.1 and 5).
_REFUSED: Final = {4, 5, 0x86, 0x87, 0x8C}
_MIN_BACKOFF_S, _MAX_BACKOFF_S = 0.5, 30.0
_CONNECT_TIMEOUT_S: Final = 10.0


class SubscriberError(IngestError):
    """The broker refused us for good (bad credentials, not authorised)."""


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
    """Usage: `await sub.start()`; wait on `sub.wakeup`; `sub.drain()`; `sub.ack(messages)`."""

    def __init__(self, settings: Settings, *, max_pending: int = 200_000) -> None:
        self.settings = settings
        self.target = settings.mqtt
        self.filters = topic_filters(settings)
        self.qos = settings.mqtt_qos
        self.v5 = settings.mqtt_protocol == "5"
        self.pending: collections.deque[Inbound] = collections.deque()
        self.max_pending = max_pending
        self.generation = 0
        self.threshold = 1
        self.wakeup = asyncio.Event()
        self.connected = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.fatal: SubscriberError | None = None
        self._signalled = False
        self._paused = False
        self._protocol: MqttProtocol | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Start connecting in the background (returns at once)."""
        self._task = asyncio.create_task(self._connection_loop(), name="ingest.mqtt")

    async def stop(self) -> None:
        """Disconnect cleanly (the persistent session keeps what we have not acknowledged)."""
        self._stopping = True
        proto = self._protocol
        if proto is not None and proto.write(DISCONNECT) and proto.transport is not None:
            proto.transport.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _connection_loop(self) -> None:
        backoff, outage_logged, ever = _MIN_BACKOFF_S, False, False
        while not self._stopping:
            try:
                session_present = await self._connect()
            except SubscriberError as exc:
                self.fatal = exc
                self.wakeup.set()
                return
            except (OSError, TimeoutError, ConnectionError, ProtocolError, ssl.SSLError) as exc:
                if not outage_logged:
                    _log.warning(
                        "cannot reach the broker %s (%s); retrying with backoff up to %.0f s",
                        self.target,
                        exc or type(exc).__name__,
                        _MAX_BACKOFF_S,
                    )
                    outage_logged = True
            else:
                if ever and not session_present:
                    _log.warning(
                        "broker %s lost our session: messages sent while we were away may be lost",
                        self.target,
                    )
                _log.info(
                    "connected to %s (MQTT %s, session present: %s), %d filters",
                    self.target,
                    self.settings.mqtt_protocol,
                    session_present,
                    len(self.filters),
                )
                ever, outage_logged, backoff = True, False, _MIN_BACKOFF_S
                why = await self._serve()
                self.connected.clear()
                if self._stopping:
                    return
                _log.warning("lost the broker %s (%s); reconnecting", self.target, why or "closed")
                outage_logged = True
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    async def _connect(self) -> bool:
        s, loop = self.settings, asyncio.get_running_loop()
        tls = None
        if self.target.tls:
            tls = ssl.create_default_context(cafile=str(s.mqtt_ca_file) if s.mqtt_ca_file else None)
        self.generation += 1
        generation = self.generation
        _, proto = await asyncio.wait_for(
            loop.create_connection(
                lambda: MqttProtocol(self.pending, generation, v5=self.v5, on_wake=self._on_wake),
                self.target.host,
                self.target.port,
                ssl=tls,
            ),
            _CONNECT_TIMEOUT_S,
        )
        try:
            password = self.target.password.get_secret_value() if self.target.password else None
            proto.write(
                connect_packet(
                    s.mqtt_client_id,
                    v5=self.v5,
                    keepalive_s=s.mqtt_keepalive_s,
                    username=self.target.username,
                    password=password,
                    session_expiry_s=s.mqtt_session_expiry_s,
                    receive_maximum=s.mqtt_receive_maximum,
                )
            )
            connack = await asyncio.wait_for(proto.connack, _CONNECT_TIMEOUT_S)
            if connack.code in _REFUSED:
                raise SubscriberError(
                    f"broker {self.target} refused our credentials (code {connack.code:#04x})"
                )
            if connack.code:
                raise ConnectionError(f"broker refused the connection (code {connack.code:#04x})")
            suback = asyncio.get_running_loop().create_future()
            proto.subacks[1] = suback
            proto.write(subscribe_packet(1, self.filters, self.qos, v5=self.v5))
            codes = await asyncio.wait_for(suback, _CONNECT_TIMEOUT_S)
        except BaseException:
            if proto.transport is not None:
                proto.transport.close()
            raise
        refused = [f for f, c in zip(self.filters, codes, strict=False) if c >= 0x80]
        if refused:
            _log.error("broker refused subscriptions to %s", ", ".join(refused))
        self._protocol = proto
        self.connected.set()
        self.subscribed.set()
        return connack.session_present

    async def _serve(self) -> Exception | None:
        """Keep the connection alive until it is lost; returns why."""
        proto = self._protocol
        assert proto is not None
        keepalive = self.settings.mqtt_keepalive_s
        while not proto.closed.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(proto.closed), keepalive / 2)
            if proto.closed.done():
                break
            if time.monotonic() - proto.last_read > keepalive * 1.5:
                proto.fail("no answer from the broker within 1.5 × keepalive")
                break
            proto.write(PINGREQ)
        return proto.closed.result()

    # -- messages ---------------------------------------------------------------------------
    def _on_wake(self, before: int, after: int) -> None:
        # Wake the consumer for the first message (it starts the age clock) and when the
        # flush threshold is reached; not for every read in between.
        if not self._signalled and (before == 0 or after >= self.threshold):
            self._signalled = True
            self.wakeup.set()
        if after >= self.max_pending and not self._paused and self._protocol is not None:
            # Backpressure: stop reading the socket until the consumer catches up.
            transport = self._protocol.transport
            if transport is not None:
                transport.pause_reading()
                self._paused = True

    def rearm(self) -> None:
        """Call before `drain`: the next message (or reaching `threshold`) wakes us again."""
        self.wakeup.clear()
        self._signalled = False

    def drain(self, limit: int | None = None) -> list[Inbound]:
        pending = self.pending
        n = len(pending) if limit is None else min(limit, len(pending))
        out = [pending.popleft() for _ in range(n)]
        if self._paused and len(pending) < self.max_pending // 2:
            proto = self._protocol
            if proto is not None and proto.transport is not None:
                proto.transport.resume_reading()
            self._paused = False
        return out

    def ack(self, messages: Iterable[Inbound]) -> int:
        """Acknowledge QoS 1 messages of the current connection, in one write."""
        generation, proto = self.generation, self._protocol
        mids = [m.mid for m in messages if m.qos == 1 and m.generation == generation]
        if not mids or proto is None or not proto.write(puback_packets(mids)):
            return 0
        return len(mids)
