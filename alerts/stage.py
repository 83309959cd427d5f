"""`AlertStage` ("alerts"): runs what makes the alert service move on its own — group and
escalation timers, the outbox dispatcher, the optional inbound SMTP listener — and, for
`ecocluster run --only alerts`, the MQTT consumer of `{prefix}/_alerts/#` (QoS 1,
persistent session, each message acknowledged only after its transition is committed).

The loop sleeps until the earliest due time (a group flush, an escalation step, a retry)
or until the service signals new work (`service.wakeup`), so a firing transition with
`group_wait: 0s` reaches Apprise within one database round trip.

Several alert workers on one PostgreSQL: each consumes transitions and delivers outbox
rows; a third task keeps the timer lease fresh (`alert_leader_poll_s`) and only its holder
runs the timers. Over MQTT 3.1.1 (the default, and NATS's MQTT listener) every worker
receives every transition — applying one twice is a no-op (see `engine`), and a killed
worker loses nothing because the others had it too. With MQTT 5 and `alert_share_group`,
workers share `$share/{group}/{prefix}/_alerts/#` instead (less duplicated work; what a
broker does with a dead member's unacknowledged messages is its own policy).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from ecocluster.alerts.clock import Clock, as_clock
from ecocluster.alerts.service import AlertService
from ecocluster.core.errors import TransientError, describe
from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.core.transitions import Transition

__all__ = ["AlertStage", "alerts_filter"]

_log = logging.getLogger(__name__)
_IDLE_S = 5.0
_RETRY_S = 1.0


def alerts_filter(prefix: str, share_group: str | None = None) -> str:
    topic = f"{prefix}/_alerts/#"
    return f"$share/{share_group}/{topic}" if share_group else topic


class AlertStage:
    """Usage: `await AlertStage(cluster, settings, service).run(ready)` in the node's
    TaskGroup; `consume_mqtt=True` when the alert stage runs alone."""

    name = "alerts"

    def __init__(
        self,
        cluster: Cluster,
        settings: Settings,
        service: AlertService,
        *,
        clock: Clock | Callable[[], int] | None = None,
        consume_mqtt: bool = False,
    ) -> None:
        self.cluster = cluster
        self.settings = settings
        self.service = service
        self.clock = as_clock(clock) if clock is not None else service.clock
        self.consume_mqtt = consume_mqtt
        self.consumed = 0

    async def run(self, ready: asyncio.Event) -> None:
        started_here = self.service.db is None
        if started_here:
            await self.service.start()
        smtp = await self._start_smtp()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._timers(), name="alerts.timers")
                if self.service.db is not None and not self.service.db.is_sqlite:
                    tasks.create_task(self._lease(), name="alerts.lease")
                if self.consume_mqtt:
                    tasks.create_task(self._consume(ready), name="alerts.mqtt")
                else:
                    ready.set()
        finally:
            if smtp is not None:
                smtp.stop()
            if started_here:
                await self.service.close()

    async def _timers(self) -> None:
        service = self.service
        # several workers share PostgreSQL: rows another worker wrote (the leader's group
        # flushes, escalations) wake nobody here, so look at least every poll interval
        shared = service.db is not None and not service.db.is_sqlite
        idle_s = min(_IDLE_S, self.settings.alert_leader_poll_s) if shared else _IDLE_S
        while True:
            service.wakeup.clear()
            try:
                worked = await service.process_due()
                worked += await service.dispatch_due()
                if worked:
                    continue  # more may be due at once (retries, the next batch)
                due = await service.next_due_ms()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.error("alert timers: %s; retrying in %.0fs", describe(exc), _IDLE_S)
                due = self.clock.now_ms() + int(_IDLE_S * 1000)
            wait_s = idle_s if due is None else max(0.0, (due - self.clock.now_ms()) / 1000)
            if wait_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(service.wakeup.wait(), min(wait_s, idle_s))

    async def _lease(self) -> None:
        """Keep the timer lease: take it when free, heartbeat it while held."""
        while True:
            try:
                await self.service.refresh_leadership()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.error("alert timer lease: %s", describe(exc))
            await asyncio.sleep(self.settings.alert_leader_poll_s)

    async def _consume(self, ready: asyncio.Event) -> None:
        from ecocluster.ingest.subscriber import MqttSubscriber

        s = self.settings
        client_id = f"{s.mqtt_client_id}-alerts"
        if s.alert_worker_id:  # one persistent session per worker
            client_id += f"-{s.alert_worker_id}"
        settings = s.model_copy(
            update={"mqtt_client_id": client_id, "ingest_share_group": s.alert_share_group}
        )
        subscriber = MqttSubscriber(settings, batch_size=500, max_wait_s=0.005, name="alerts")
        subscriber.filters = [alerts_filter(s.topic_prefix, s.alert_share_group)]
        async with subscriber:
            await subscriber.wait_subscribed()
            ready.set()
            async for batch in subscriber:
                transitions = []
                for message in batch:
                    try:
                        transitions.append(Transition.from_json(message.payload))
                    except Exception as exc:
                        _log.warning("%s: not a transition (%s)", message.topic, describe(exc))
                await self._apply(transitions)
                subscriber.ack(batch)
                self.consumed += len(batch)

    async def _apply(self, transitions: list[Transition]) -> None:
        """Commit a batch before it is acknowledged; the database away → wait and retry
        (the broker keeps the batch unacknowledged meanwhile)."""
        while True:
            try:
                await self.service.on_transitions(transitions)
                return
            except TransientError as exc:
                _log.warning("alert transitions: %s; retrying in %.0fs", describe(exc), _RETRY_S)
                await asyncio.sleep(_RETRY_S)

    async def _start_smtp(self) -> Any:
        if self.settings.alert_smtp_port is None:
            return None
        from ecocluster.alerts.inbound_smtp import ReplyListener

        listener = ReplyListener(
            self.service, host=self.settings.alert_smtp_host, port=self.settings.alert_smtp_port
        )
        listener.start(asyncio.get_running_loop())
        return listener
