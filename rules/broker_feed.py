"""Readings for a rules worker straight from the broker, when no ingest runs in its process.

    feed = BrokerFeed(cluster_view, settings, sink=rules_stage, share=WorkerShare.parse("0/2"))
    await feed.run(ready)              # until cancelled

The feed subscribes (QoS 1, a persistent session of its own: client id
`{mqtt_client_id}-rules-feed[-p0of2]`) to `{prefix}/{site}/+/data|senml|status` of the
sites its worker owns (every site when the worker takes them all), decodes each burst with
ingest's pure core, the very path ingest takes before it stores (`ingest.pipeline.prepare`:
topic routing against the registry, size limit, native and SenML codecs, unit conversion,
physical bounds, time window; then `dedupe_last`), hands the accepted readings and device
statuses to the rules stage, and acknowledges the burst once the engine took it. Nothing is
stored and nothing is dead-lettered here: the ingest workers do both for the same messages;
the feed only counts what it rejected (`ecocluster_rules_feed_rejected_total`).

Never a shared subscription: a meter's readings must all reach the one worker that holds
its rule state. A redelivered message (a restart before its ack) scatters the same points
into the hot window again, which changes nothing. Register deltas (consumption since the
previous reading) are ingest's business: no rule reads them, so the feed does not compute
them. With `ingest_missing_ts=receipt` the feed stamps untimed readings with its own receipt
time (journalled in `data_dir`, so a redelivery gets the same stamp), which may differ from
the stamp ingest stored by the few milliseconds between the two receipts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Counter

from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.core.types import ReadingSink
from ecocluster.ingest.pipeline import Limits, dedupe_last, prepare
from ecocluster.ingest.stamps import ReceiptStamper
from ecocluster.ingest.subscriber import Inbound, MqttSubscriber
from ecocluster.ingest.validate import TopicRouter
from ecocluster.rules.partitioning import WorkerShare

__all__ = ["BrokerFeed", "FeedMetrics", "feed_settings"]

_log = logging.getLogger(__name__)
#: A burst goes to the engine at once: instant rules answer within this after a reading.
_MAX_WAIT_S: Final = 0.02
_REJECT_LOG_EVERY_S: Final = 60.0


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def feed_settings(settings: Settings, cluster: Cluster, share: WorkerShare) -> Settings:
    """The subscriber's settings: its own client id, this worker's sites, never shared."""
    sites = share.sites(cluster) if share.partitioned else list(settings.ingest_sites)
    if share.partitioned and settings.ingest_sites:
        sites = [s for s in sites if s in set(settings.ingest_sites)]
    if share.partitioned and not sites:  # an empty list would subscribe to every site
        raise ValueError(f"rules worker {share} owns none of the cluster's sites")
    return settings.model_copy(
        update={
            "mqtt_client_id": share.named(f"{settings.mqtt_client_id}-rules-feed"),
            "ingest_sites": sites,
            "ingest_share_group": None,
        }
    )


class FeedMetrics:
    """Counters of one feed, in the node's registry (or a private one)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.messages = Counter(
            "ecocluster_rules_feed_messages", "MQTT messages the rules feed consumed", registry=r
        )
        self.readings = Counter(
            "ecocluster_rules_feed_readings", "Readings handed to the rule engine", registry=r
        )
        self.rejected = Counter(
            "ecocluster_rules_feed_rejected",
            "Readings or payloads the rules feed refused (ingest dead-letters them)",
            registry=r,
        )


class BrokerFeed:
    """See the module docstring. `cluster` is the worker's view (its sites only)."""

    name = "rules.feed"

    def __init__(
        self,
        cluster: Cluster,
        settings: Settings,
        *,
        sink: ReadingSink,
        share: WorkerShare | None = None,
        clock: Callable[[], int] = _wall_ms,
        metrics: FeedMetrics | None = None,
    ) -> None:
        self.cluster = cluster
        self.share = share or WorkerShare()
        self.settings = feed_settings(settings, cluster, self.share)
        self.sink = sink
        self.clock = clock
        self.metrics = metrics or FeedMetrics()
        self.router = TopicRouter(cluster, settings.topic_prefix)
        self.limits = Limits(
            settings.max_payload_bytes,
            int(settings.max_future_s * 1000),
            int(settings.max_age_s * 1000),
        )
        self.stamper = (
            ReceiptStamper(Path(settings.data_dir) / f"{self.share.named('rules-stamps')}.jsonl")
            if settings.ingest_missing_ts == "receipt"
            else None
        )
        window = max(1, settings.mqtt_receive_maximum // 4)
        self.subscriber = MqttSubscriber(
            self.settings,
            batch_size=settings.ingest_batch_size,
            flush_at=min(window, settings.ingest_batch_size),
            max_wait_s=_MAX_WAIT_S,
            name="rules feed",
        )
        #: Totals since start (also in `metrics`), for logs and tests.
        self.consumed = 0
        self.readings = 0
        self.rejected = 0
        self._last_reject_log = 0.0

    @property
    def client_id(self) -> str:
        return self.settings.mqtt_client_id

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Consume until cancelled; what is not acknowledged stays in the broker's session."""
        if self.stamper is not None:
            self.stamper.load()
        try:
            async with self.subscriber:
                await self.subscriber.wait_subscribed()
                _log.info(
                    "rules feed %s: subscribed to %s as %s",
                    self.share,
                    f"{len(self.settings.ingest_sites)} sites"
                    if self.settings.ingest_sites
                    else "every site",
                    self.client_id,
                )
                if ready is not None:
                    ready.set()
                async for messages in self.subscriber:
                    await self.take(messages)
                    self.subscriber.ack(messages)
        finally:
            if self.stamper is not None:
                self.stamper.close()

    async def take(self, messages: list[Inbound]) -> int:
        """Decode one burst and hand it to the engine; returns the readings handed over."""
        prepared = prepare(
            messages,
            self.router,
            self.cluster.series,
            self.limits,
            now_ms=self.clock(),
            stamper=self.stamper,
        )
        if self.stamper is not None:
            self.stamper.flush()
        batch = dedupe_last(prepared.batch)
        self._count(len(messages), len(batch), prepared.rejected_readings)
        if len(batch):
            await self.sink.on_readings(batch)
        for status in prepared.statuses:
            await self.sink.on_status(status)
        return len(batch)

    def _count(self, messages: int, readings: int, rejected: int) -> None:
        self.consumed += messages
        self.readings += readings
        self.metrics.messages.inc(messages)
        self.metrics.readings.inc(readings)
        if not rejected:
            return
        self.rejected += rejected
        self.metrics.rejected.inc(rejected)
        now = time.monotonic()
        if now - self._last_reject_log >= _REJECT_LOG_EVERY_S:
            _log.info(
                "rules feed %s: %d readings refused so far (ingest dead-letters them with"
                " the reason)",
                self.share,
                self.rejected,
            )
            self._last_reject_log = now
