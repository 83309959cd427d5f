"""The life of one MQTT client's connection: connect, hand over, keep alive, reconnect for
ever; shared by the subscriber and the publisher so that both behave the same way.

- Connect (TCP, TLS from `MqttTls`, CONNECT, CONNACK) with every failure mapped once by
  `map_mqtt_errors`; a refusing CONNACK becomes its error (`connack_error`).
- Transient failures back off with the kernel's `Backoff` and log one clear line: at once,
  then at most every `_LOG_EVERY_S` while the outage lasts. Fatal ones (credentials,
  configuration) end `run()` with the error.
- The CONNACK binds us (MQTT 5 §3.2.2.3): Server Keep Alive replaces ours [MQTT-3.2.2-21];
  Receive Maximum, Maximum Packet Size, Maximum QoS and Shared Subscription Available are
  handed to the owner's `on_connected`, which subscribes or resends.
- Two clients with one client id take the session from each other for ever. A v5 broker
  says so (DISCONNECT 0x8E); a 3.1.1 broker just closes, so three connections in a row
  that die within `_SHORT_LIVED_S` of their CONNACK count as the same. Either way we back
  off for `_TAKEOVER_BACKOFF_S` and say what is happening.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from ecocluster.core.errors import FatalError, describe
from ecocluster.core.mqtt import (
    PROTOCOL_HINT,
    MqttError,
    MqttSessionTakenOver,
    MqttTls,
    MqttUnavailable,
    connack_error,
    map_mqtt_errors,
)
from ecocluster.core.mqtt_wire import DISCONNECT_PACKET, PINGREQ_PACKET, ConnAck, connect_packet
from ecocluster.core.retry import Backoff
from ecocluster.core.settings import MqttTarget
from ecocluster.ingest.mqtt import MqttProtocol, close_quietly

__all__ = ["ClientOptions", "ConnectionLoop"]

_log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S: Final = 10.0
_LOG_EVERY_S: Final = 5.0
_SHORT_LIVED_S: Final = 5.0
_TAKEOVER_BACKOFF_S: Final = 30.0
_MAX_BACKOFF_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How one client connects. `name` is for log lines ("ingest", "rules publisher")."""

    target: MqttTarget
    client_id: str
    v5: bool
    name: str
    keepalive_s: int = 30
    clean_start: bool = False
    session_expiry_s: int = 0
    receive_maximum: int | None = 65535
    max_packet_size: int | None = None
    tls: MqttTls | None = None
    #: Other nodes of the same broker cluster: after a failed attempt the next one is tried.
    fallbacks: tuple[MqttTarget, ...] = ()


class ConnectionLoop:
    """Keeps one connection up until cancelled; `run()` raises only a `FatalError`.

    `make_protocol(generation)` builds each connection's protocol (the owner wires its
    queues into it); `on_connected(proto, connack)` runs after every accepted CONNACK and
    may raise an `MqttError` (transient: reconnect; fatal: stop). `current` is the live
    connection once `on_connected` returned, and `connected` is set while it is."""

    def __init__(
        self,
        options: ClientOptions,
        make_protocol: Callable[[int], MqttProtocol],
        on_connected: Callable[[MqttProtocol, ConnAck], Awaitable[None]],
    ) -> None:
        self.options = options
        self._targets = (options.target, *options.fallbacks)
        self._at = 0  # index of the broker node tried next
        self._make_protocol = make_protocol
        self._on_connected = on_connected
        self.generation = 0
        self.current: MqttProtocol | None = None
        self.connected = asyncio.Event()
        self.keepalive_s = options.keepalive_s
        self._opening: MqttProtocol | None = None
        self._backoff = Backoff(initial_s=0.5, max_s=_MAX_BACKOFF_S)
        self._short_lived = 0
        self._ever_connected = False
        self._stopping = False

    async def run(self) -> None:
        o = self.options
        down_since: float | None = None
        last_log = 0.0
        while True:
            try:
                proto, _ = await self._connect()
            except FatalError:
                raise
            except MqttError as exc:
                now = time.monotonic()
                down_since = down_since if down_since is not None else now
                self._at = (self._at + 1) % len(self._targets)  # the next node, if any
                delay = self._backoff.next_delay()
                if now - last_log >= _LOG_EVERY_S:
                    last_log = now
                    _log.warning(
                        "%s: %s; retrying in %.1f s (attempt %d, down %.0f s)",
                        o.name,
                        describe(exc),
                        delay,
                        self._backoff.attempts,
                        now - down_since,
                    )
                await asyncio.sleep(delay)
                continue
            down_since = None
            why = await self._serve(proto)
            self.connected.clear()
            self.current = None
            if self._stopping:
                return
            await asyncio.sleep(self._delay_after(why))
            last_log = time.monotonic()

    async def close(self) -> None:
        """Send DISCONNECT on the live connection (a persistent session stays on the broker)
        and end `run()`."""
        self._stopping = True
        close_quietly(self.current, DISCONNECT_PACKET)
        close_quietly(self._opening)

    # -- one connection -----------------------------------------------------------------------
    @property
    def target(self) -> MqttTarget:
        """The broker node this client is connected to, or tries next."""
        return self._targets[self._at]

    async def _connect(self) -> tuple[MqttProtocol, ConnAck]:
        o, loop = self.options, asyncio.get_running_loop()
        if self._at:  # on a fallback node: name it in every message of this connection
            o = dataclasses.replace(o, target=self.target)
        self.generation += 1
        proto = self._make_protocol(self.generation)
        self._opening = proto
        ssl_context = (o.tls or MqttTls()).context() if o.target.tls else None
        password = o.target.password.get_secret_value() if o.target.password else None
        try:
            with map_mqtt_errors(o.target, "connecting to"):
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    await loop.create_connection(
                        lambda: proto, o.target.host, o.target.port, ssl=ssl_context
                    )
                    proto.write(
                        connect_packet(
                            o.client_id,
                            v5=o.v5,
                            keepalive_s=o.keepalive_s,
                            username=o.target.username,
                            password=password,
                            clean_start=o.clean_start,
                            session_expiry_s=o.session_expiry_s,
                            receive_maximum=o.receive_maximum,
                            maximum_packet_size=o.max_packet_size,
                        )
                    )
                    connack = await self._connack(proto)
                    refused = connack_error(connack.code, v5=o.v5, target=o.target)
                    if refused is not None:
                        raise refused
                    self._bind(connack)
                    await self._on_connected(proto, connack)
        except BaseException:
            close_quietly(proto)
            raise
        finally:
            self._opening = None
        self.current = proto
        self.connected.set()
        self._log_connected(connack)
        return proto, connack

    async def _connack(self, proto: MqttProtocol) -> ConnAck:
        try:
            return await proto.connack
        except MqttUnavailable as exc:
            hint = f" (a broker that speaks only MQTT 3.1.1 may do that: {PROTOCOL_HINT})"
            raise MqttUnavailable(
                f"broker {self.target} closed the connection before its CONNACK"
                + (hint if self.options.v5 else "")
            ) from exc

    def _bind(self, connack: ConnAck) -> None:
        server_keepalive = connack.server_keepalive_s if self.options.v5 else None
        self.keepalive_s = (
            server_keepalive if server_keepalive is not None else self.options.keepalive_s
        )
        if server_keepalive is not None and server_keepalive != self.options.keepalive_s:
            _log.info(
                "%s: broker sets keep-alive to %d s (we asked %d s)",
                self.options.name,
                server_keepalive,
                self.options.keepalive_s,
            )

    def _log_connected(self, connack: ConnAck) -> None:
        o = self.options
        if self._ever_connected and not connack.session_present and not o.clean_start:
            _log.warning(
                "%s: broker %s lost our session: messages sent while we were away may be lost",
                o.name,
                self.target,
            )
        self._ever_connected = True
        _log.info(
            "%s: connected to %s as %r (MQTT %s, session present: %s)",
            o.name,
            self.target,
            o.client_id,
            "5" if o.v5 else "3.1.1",
            connack.session_present,
        )

    async def _serve(self, proto: MqttProtocol) -> MqttError | None:
        """Keep the connection alive until it is lost; returns why (None: closed by us).
        PINGREQ every half keep-alive; silence for 1.5 keep-alives is a dead link."""
        keepalive = self.keepalive_s
        started = time.monotonic()
        while not proto.closed.done():
            wait = keepalive / 2 if keepalive else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(proto.closed), wait)
            if proto.closed.done():
                break
            if time.monotonic() - proto.last_read > keepalive * 1.5:
                proto.fail(MqttUnavailable(f"no answer within {keepalive * 1.5:.0f} s"))
                break
            proto.write(PINGREQ_PACKET)
        why = proto.closed.result()
        if time.monotonic() - started >= _SHORT_LIVED_S or why is None:
            self._short_lived = 0
            self._backoff.reset()
        else:
            self._short_lived += 1
        return why

    def _delay_after(self, why: MqttError | None) -> float:
        o = self.options
        delay = self._backoff.next_delay()
        if isinstance(why, MqttSessionTakenOver) or self._short_lived >= 3:
            delay = max(delay, _TAKEOVER_BACKOFF_S * (0.75 + 0.25 * delay / _MAX_BACKOFF_S))
            what = (
                describe(why)
                if isinstance(why, MqttSessionTakenOver)
                else f"the broker closed our connection {self._short_lived} times in a row"
                " right after accepting it"
            )
            _log.error(
                "%s: %s. Another client is probably connected with the same client id %r"
                " (two nodes sharing ECOCLUSTER_MQTT_CLIENT_ID?); each takes the session from"
                " the other. Backing off %.0f s; give every node its own client id",
                o.name,
                what,
                o.client_id,
                delay,
            )
        else:
            _log.warning(
                "%s: lost the broker %s (%s); reconnecting in %.1f s",
                o.name,
                self.target,
                describe(why) if why is not None else "closed",
                delay,
            )
        return delay
