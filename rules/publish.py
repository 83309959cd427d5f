"""Transitions over MQTT, for when the alert stage runs in another process.

Topic `{prefix}/_alerts/{site}/{rule}` (`_` for targets wider than a site), QoS 1, payload
`Transition.to_json()`; the alert stage subscribes to `{prefix}/_alerts/#` and decodes
with `Transition.from_json`. Not retained: a transition is an event, not a state.

    async with MqttTransitionPublisher(settings.mqtt, prefix="eco", client_id="n1-rules",
                                       protocol="5", tls=MqttTls.from_settings(settings)) as pub:
        rules = RulesStage(cluster, sinks=[pub])

or `MqttTransitionPublisher.from_settings(settings, client_id=…)`. The connection is the
project's `MqttPublisher` (reconnects, queues while the broker is away, TLS, a
`FatalError` on refused credentials). `on_transitions` returns once every transition is
acknowledged by the broker, or after `ack_timeout_s` with the rest still queued for
redelivery: a rules tick never waits out a broker outage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from ecocluster.core.mqtt import MqttTls
from ecocluster.core.settings import MqttTarget, Settings
from ecocluster.core.transitions import Transition
from ecocluster.ingest.mqtt_publisher import MqttPublisher

__all__ = ["MqttTransitionPublisher", "alert_topic", "alerts_filter"]

_log = logging.getLogger(__name__)


def alert_topic(prefix: str, t: Transition) -> str:
    return f"{prefix}/_alerts/{t.labels.get('site', '_')}/{t.rule}"


def alerts_filter(prefix: str) -> str:
    return f"{prefix}/_alerts/#"


class MqttTransitionPublisher:
    """A `TransitionSink` publishing each transition at QoS 1 (see the module)."""

    def __init__(
        self,
        target: MqttTarget,
        *,
        prefix: str,
        client_id: str = "ecocluster-rules",
        protocol: str = "3.1.1",
        tls: MqttTls | None = None,
        ack_timeout_s: float = 10.0,
        max_queued: int = 10_000,
        fallbacks: tuple[MqttTarget, ...] = (),
    ) -> None:
        self.prefix = prefix
        self.ack_timeout_s = ack_timeout_s
        self.client = MqttPublisher(
            target,
            client_id=client_id,
            protocol=protocol,
            tls=tls,
            max_queued=max_queued,
            name="rules publisher",
            fallbacks=fallbacks,
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, client_id: str) -> MqttTransitionPublisher:
        return cls(
            settings.mqtt,
            prefix=settings.topic_prefix,
            client_id=client_id,
            protocol=settings.mqtt_protocol,
            tls=MqttTls.from_settings(settings),
            fallbacks=settings.mqtt_fallbacks,
        )

    async def __aenter__(self) -> MqttTransitionPublisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start connecting in the background (never waits for the broker)."""
        await self.client.start()

    async def close(self) -> None:
        await self.client.close()

    async def on_transitions(self, transitions: Sequence[Transition]) -> None:
        """`TransitionSink`: queue every transition, then wait for the PUBACKs (bounded)."""
        acks = []
        for t in transitions:
            await self.client.wait_for_room()
            acks.append(self.client.publish_nowait(alert_topic(self.prefix, t), t.to_json()))
        if not acks:
            return
        done, pending = await asyncio.wait(acks, timeout=self.ack_timeout_s)
        for fut in done:
            fut.result()  # a refusal (ACL) or a fatal error surfaces here
        if pending:
            _log.warning(
                "%d transitions not yet acknowledged by the broker; they stay queued",
                len(pending),
            )
