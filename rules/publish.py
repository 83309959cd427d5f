"""Transitions over MQTT, for when the alert stage runs in another process.

Topic `{prefix}/_alerts/{site}/{rule}` (`_` for targets wider than a site), QoS 1, payload
`Transition.to_json()`; the alert stage subscribes to `{prefix}/_alerts/#` and decodes
with `Transition.from_json`. Not retained: a transition is an event, not a state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

import paho.mqtt.client as mqtt

from ecocluster.core.settings import MqttTarget
from ecocluster.rules.transitions import Transition

__all__ = ["MqttTransitionPublisher", "TransitionPublisher", "alert_topic", "alerts_filter"]

_log = logging.getLogger(__name__)


def alert_topic(prefix: str, t: Transition) -> str:
    return f"{prefix}/_alerts/{t.labels.get('site', '_')}/{t.rule}"


def alerts_filter(prefix: str) -> str:
    return f"{prefix}/_alerts/#"


class TransitionPublisher(Protocol):
    async def start(self) -> None: ...

    async def on_transitions(self, transitions: Sequence[Transition]) -> None:
        """`TransitionSink`: publish and wait for the PUBACKs."""
        await self.publish(list(transitions))

    async def publish(self, transitions: list[Transition]) -> None: ...

    async def close(self) -> None: ...


class MqttTransitionPublisher:
    """paho-mqtt with its network thread; `publish` waits for every PUBACK (QoS 1).

    Usage: `pub = MqttTransitionPublisher(settings.mqtt, prefix="eco"); await pub.start()`.
    """

    def __init__(
        self,
        target: MqttTarget,
        *,
        prefix: str,
        client_id: str = "ecocluster-rules",
        timeout_s: float = 10.0,
    ) -> None:
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._target = target
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        if target.username:
            password = target.password.get_secret_value() if target.password else None
            self._client.username_pw_set(target.username, password)
        if target.tls:
            self._client.tls_set()
        self._client.max_inflight_messages_set(100)
        self._client.max_queued_messages_set(0)

    async def start(self) -> None:
        await asyncio.to_thread(self._client.connect, self._target.host, self._target.port, 30)
        self._client.loop_start()

    async def on_transitions(self, transitions: Sequence[Transition]) -> None:
        """`TransitionSink`: publish and wait for the PUBACKs."""
        await self.publish(list(transitions))

    async def publish(self, transitions: list[Transition]) -> None:
        infos = [
            self._client.publish(alert_topic(self.prefix, t), t.to_json(), qos=1)
            for t in transitions
        ]
        await asyncio.to_thread(self._wait_all, infos)

    def _wait_all(self, infos: list[mqtt.MQTTMessageInfo]) -> None:
        for info in infos:
            try:
                info.wait_for_publish(self.timeout_s)
            except (RuntimeError, ValueError) as exc:
                # Not connected right now: paho keeps QoS 1 messages queued and sends them
                # on reconnect; we only stop waiting here.
                _log.warning("transition publish pending (%s); paho retries on reconnect", exc)
                return

    async def close(self) -> None:
        await asyncio.to_thread(self._client.disconnect)
        self._client.loop_stop()
