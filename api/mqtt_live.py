"""The live view of an API running alone (`ecocluster run --only api`): no hot window in
this process, so the newest value of every series is seeded from the store's `latest()`
and kept current by its own MQTT subscription to the meters' topics (QoS 0, no persistent
session: a live view needs the present, not a backlog), decoded and validated by ingest's
own pipeline, and published to the SSE hub as the node's `ReadingFeed` would.

    live = MqttLive(cluster, settings, store, hub)
    deps = ApiDeps(..., live=live, hub=hub)   # ApiStage runs `live.run()` beside uvicorn
"""

from __future__ import annotations

import asyncio
import logging
import time

from ecocluster.api.events import EventHub, publish_batch, publish_status
from ecocluster.api.live import LatestTable, LiveColumns
from ecocluster.core.errors import describe
from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.ingest.pipeline import Limits, prepare
from ecocluster.ingest.stores.base import Store
from ecocluster.ingest.subscriber import Inbound, MqttSubscriber
from ecocluster.ingest.validate import TopicRouter

__all__ = ["MqttLive"]

_log = logging.getLogger(__name__)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class MqttLive:
    def __init__(self, cluster: Cluster, settings: Settings, store: Store, hub: EventHub) -> None:
        self.cluster, self.store, self.hub = cluster, store, hub
        self.table = LatestTable(cluster.series)
        self.settings = settings.model_copy(
            update={
                "mqtt_client_id": f"{settings.mqtt_client_id}-api-live",
                "mqtt_qos": 0,
                "mqtt_session_expiry_s": 0,
                "ingest_share_group": None,
            }
        )
        self.router = TopicRouter(cluster, settings.topic_prefix)
        self.limits = Limits(
            settings.max_payload_bytes,
            int(settings.max_future_s * 1000),
            int(settings.max_age_s * 1000),
        )
        self._org_of = {s.id: s.org for s in cluster.sites}

    def columns(self) -> LiveColumns:
        return self.table.columns()

    def now_ms(self) -> int:
        return self.table.now_ms()

    async def seed(self) -> None:
        """The newest stored value of every series (a store that is down: start empty)."""
        try:
            self.table.update(await self.store.latest())
        except Exception as exc:
            _log.warning("live view starts empty: the store did not answer (%s)", describe(exc))

    async def run(self, ready: asyncio.Event) -> None:
        await self.seed()
        subscriber = MqttSubscriber(
            self.settings, batch_size=2000, max_wait_s=0.02, name="api live"
        )
        async with subscriber:
            await subscriber.wait_subscribed()
            ready.set()
            async for messages in subscriber:
                self._take(messages)
                subscriber.ack(messages)

    def _take(self, messages: list[Inbound]) -> None:
        prepared = prepare(
            messages, self.router, self.cluster.series, self.limits, now_ms=_wall_ms()
        )
        self.table.update(prepared.batch)
        publish_batch(self.hub, prepared.batch)
        for status in prepared.statuses:
            self.table.set_offline(status.site, status.meter, not status.online)
            publish_status(self.hub, status, self._org_of.get(status.site))
