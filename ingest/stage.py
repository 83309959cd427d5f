"""The ingest stage: subscriber → pipeline → registers → store or spool → ack → sinks.

Acknowledge-after-durable: a QoS 1 message is acknowledged only once every reading of it
is in the store, or fsynced in the spool, or dead-lettered. Bursts are flushed by size
(`ingest_batch_size`), by age (`ingest_flush_ms`) and when the unacknowledged count reaches
a quarter of the broker's inflight window (`mqtt_receive_maximum`): the broker stops
sending when the window is full, so waiting for size alone would stall (DESIGN.md,
pitfalls). Up to four bursts are written at once (a write is mostly waiting for InfluxDB's
WAL fsync) while the next is decoded, so the window keeps moving; acknowledgements still
go out in arrival order.

While the spool holds anything, new batches go to the spool too, so the store receives
everything in order when the replayer drains it. When the spool is full the stage waits
(and says so): no acks, so the broker keeps the messages.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecocluster.core.errors import FatalError
from ecocluster.core.registry import Cluster
from ecocluster.core.retry import Backoff
from ecocluster.core.settings import Settings
from ecocluster.core.types import DeviceStatus, ReadingBatch, ReadingSink
from ecocluster.ingest.deadletter import MAX_ROWS, DeadLetterLog, record_rejections
from ecocluster.ingest.errors import (
    SpoolFullError,
    StoreQueryError,
    StoreRejected,
    StoreUnavailable,
)
from ecocluster.ingest.metrics import IngestMetrics
from ecocluster.ingest.pipeline import Limits, dedupe_last, prepare
from ecocluster.ingest.registers import RegisterTracker
from ecocluster.ingest.spool import Spool
from ecocluster.ingest.stamps import ReceiptStamper
from ecocluster.ingest.statuses import StatusLatch
from ecocluster.ingest.stores import Store, make_store
from ecocluster.ingest.subscriber import Inbound, MqttSubscriber
from ecocluster.ingest.validate import TopicRouter

__all__ = ["IngestStage"]

_log = logging.getLogger(__name__)
_STATE_SAVE_S = 1.0
_REPLAY_MAX_BACKOFF_S = 30.0
#: Prepared bursts not yet acknowledged, and how many of them may be writing at once: a
#: write's latency (InfluxDB's WAL fsync) is mostly waiting, so several overlap; their acks
#: still go out in order (MQTT-4.6.0-2). Measured: bench/RESULTS.md, issue 3.
_MAX_UNFINISHED = 5
_MAX_CONCURRENT_WRITES = 4
_SHUTDOWN_S = 10.0
_FLAG_TEXT = {
    "drop": "went down (held: a spike, or a reset the next reading confirms)",
    "jump": "rose implausibly (held, not booked)",
    "reset": "reset confirmed (booked from 0, a lower bound)",
    "shift": "level shift confirmed (replaced meter or gap; the step is not booked)",
    "rollover": "rolled over at the register size",
}


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class _Work:
    """A prepared burst on its way out; each step happens once, even across a shutdown."""

    messages: list[Inbound]
    batch: ReadingBatch
    statuses: list[DeviceStatus]
    durable: bool = False
    acked: bool = False
    writing: asyncio.Task[None] | None = None


class IngestStage:
    """Usage: `await IngestStage(cluster, settings, sinks=[rules]).run(ready)` in a TaskGroup."""

    name = "ingest"

    def __init__(
        self,
        cluster: Cluster,
        settings: Settings,
        *,
        store: Store | None = None,
        sinks: Sequence[ReadingSink] = (),
        metrics: IngestMetrics | None = None,
        clock: Callable[[], int] | None = None,
        close_store: bool = True,
    ) -> None:
        self.cluster, self.settings = cluster, settings
        #: Receipt time in epoch ms: wall time, or a simulation's clock (the demo), against
        #: which readings from the future or too old are refused.
        self.clock = clock or _wall_ms
        self.store = store if store is not None else make_store(settings)
        #: The node's lifespan closes a store it shares with other stages (`close_store=False`).
        self._owns_store = close_store
        self.sinks = list(sinks)
        self.metrics = metrics or IngestMetrics()
        data = Path(settings.data_dir)
        self.dead_letters = DeadLetterLog(
            data / "dead-letters.jsonl",
            max_bytes=settings.dead_letter_max_bytes,
            on_record=self.metrics.count_rejected,
        )
        self.flags_log = DeadLetterLog(
            data / "register-flags.jsonl",
            max_bytes=settings.dead_letter_max_bytes,
            on_record=lambda kind, n: self.metrics.register_flags.labels(kind).inc(n),
            summary="flagged %d register readings (%s); see %s",
        )
        self.spool = Spool(data / "spool", max_bytes=settings.spool_max_bytes)
        self.tracker = RegisterTracker(cluster, data / "registers.json")
        #: Receipt stamps for readings without a time (`ingest_missing_ts=receipt`).
        self.stamper = (
            ReceiptStamper(data / "receipt-stamps.jsonl")
            if settings.ingest_missing_ts == "receipt"
            else None
        )
        self.statuses = StatusLatch()
        self.router = TopicRouter(cluster, settings.topic_prefix)
        self.limits = Limits(
            settings.max_payload_bytes,
            int(settings.max_future_s * 1000),
            int(settings.max_age_s * 1000),
        )
        window = (
            settings.mqtt_receive_maximum // 4 if settings.mqtt_qos else settings.ingest_batch_size
        )
        self.flush_threshold = max(1, min(settings.ingest_batch_size, window))
        self.subscriber = MqttSubscriber(settings, flush_at=self.flush_threshold)
        self.accepted = 0
        self._replay_needed = asyncio.Event()
        self._store_down_logged = False
        self._spool_full_logged = 0.0
        # Bursts prepared (deltas computed) but not yet acknowledged, oldest first.
        self._unfinished: collections.deque[_Work] = collections.deque()
        self._work_added = asyncio.Event()
        self._work_done = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self, ready: asyncio.Event | None = None) -> None:
        await self._open()
        async with self.subscriber:  # owns the connection; disconnects after the last acks
            try:
                async with asyncio.TaskGroup() as tasks:
                    consumer = tasks.create_task(self._consume(), name="ingest.consumer")
                    tasks.create_task(self._write_loop(), name="ingest.writer")
                    tasks.create_task(self._replay(), name="ingest.replayer")
                    tasks.create_task(self._housekeeping(), name="ingest.housekeeping")
                    tasks.create_task(self._signal_ready(ready), name="ingest.ready")
                    await consumer
            except* FatalError as group:
                raise group.exceptions[0] from None  # one clear error, not a group
            finally:
                await self._shutdown()

    async def _signal_ready(self, ready: asyncio.Event | None) -> None:
        await self.subscriber.wait_subscribed()
        if ready is not None:
            ready.set()

    async def _open(self) -> None:
        self.spool.open()
        self.metrics.spool_bytes.set(self.spool.bytes)
        self.metrics.spool_batches.set(self.spool.batches)
        restored = self.tracker.load()
        if self.stamper is not None:
            self.stamper.load()
        try:
            await self.store.open()
            await self._seed_statuses()
            for quantity in ("energy_kwh", "water_m3"):
                restored += self.tracker.merge_latest(await self.store.latest(quantity))
        except StoreUnavailable as exc:
            _log.warning("store unavailable at start (%s): readings go to the spool", exc)
            self._store_down_logged = True
        _log.info(
            "ingest: %d register states restored, spool %d batches, flush every %d"
            " messages or %d ms",
            restored,
            self.spool.batches,
            self.flush_threshold,
            self.settings.ingest_flush_ms,
        )
        if not self.spool.empty:
            self._replay_needed.set()

    async def _seed_statuses(self) -> None:
        """The devices' known states, so a repeated status adds no row (best effort)."""
        try:
            self.statuses.seed(await self.store.device_statuses())
        except (StoreQueryError, StoreRejected) as exc:
            _log.warning("device statuses not read at start (%s)", exc)

    @property
    def _state_saveable(self) -> bool:
        """The register state may be saved once every burst it has seen is durable."""
        return all(w.durable for w in self._unfinished)

    async def _shutdown(self) -> None:
        # Finish what was received, in the direction of the data, then let go of the broker.
        try:
            async with asyncio.timeout(_SHUTDOWN_S):
                await self._flush_all()
        except TimeoutError:
            _log.error(
                "shutdown: %d messages not made durable in %.0f s; the broker keeps them",
                self.subscriber.buffered + sum(len(w.messages) for w in self._unfinished),
                _SHUTDOWN_S,
            )
        except Exception:
            _log.exception(
                "shutdown: flushing failed; unacknowledged messages stay with the broker"
            )
        if self._state_saveable:
            self.tracker.save()
        self.dead_letters.close()
        self.flags_log.close()
        if self.stamper is not None:
            self.stamper.close()
        self.spool.close()
        if self._owns_store:
            await self.store.close()

    async def _flush_all(self) -> None:
        while self._unfinished:
            await self._finish(self._unfinished[0])
            self._unfinished.popleft()
        self.subscriber.stop_receiving()
        while messages := await self.subscriber.next_batch(wait=False):
            work = self._prepare(messages)
            self._unfinished.append(work)
            await self._finish(work)
            self._unfinished.popleft()

    # -- the loop ---------------------------------------------------------------------------
    async def _consume(self) -> None:
        """Batches from the subscriber (cut by size, age, or a stalled stream: see
        `MqttSubscriber`) are prepared in order, at most `_MAX_UNFINISHED` ahead."""
        async for messages in self.subscriber:
            self.metrics.unacked.set(self.subscriber.buffered)
            while len(self._unfinished) >= _MAX_UNFINISHED:
                self._work_done.clear()
                await self._work_done.wait()
            self._unfinished.append(self._prepare(messages))
            self._work_added.set()

    async def _write_loop(self) -> None:
        """Bursts made durable (several at once), then acknowledged and sunk in order."""
        while True:
            if not self._unfinished:
                self._work_added.clear()
                await self._work_added.wait()
                continue
            for work in list(self._unfinished)[:_MAX_CONCURRENT_WRITES]:
                if work.writing is None:
                    work.writing = asyncio.create_task(self._durable(work), name="ingest.write")
            self._work_added.clear()
            head = self._unfinished[0]
            assert head.writing is not None
            added = asyncio.create_task(self._work_added.wait())
            try:  # wake when the head is durable, or when a new burst may start writing
                await asyncio.wait({head.writing, added}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                added.cancel()
            if head.writing.done():
                await self._finish(head)
                self._unfinished.popleft()
                self._work_done.set()

    async def _durable(self, work: _Work) -> None:
        if len(work.batch):
            refused = await self._make_durable(work.batch)
            if refused:  # what the store refused is dead-lettered, and not shown to the rules
                keep = np.ones(len(work.batch), dtype=bool)
                keep[refused] = False
                work.batch = work.batch.take(keep)
        work.durable = True
        await self._write_statuses(work.statuses)

    def _prepare(self, messages: list[Inbound]) -> _Work:
        """Decode, validate, dead-letter and compute deltas (no I/O but the logs)."""
        now_ms = self.clock()
        prepared = prepare(
            messages,
            self.router,
            self.cluster.series,
            self.limits,
            now_ms=now_ms,
            stamper=self.stamper,
        )
        if self.stamper is not None:
            self.stamper.flush()  # the stamps are durable before their readings are written
        for kind, n in prepared.kinds.items():
            if n:
                self.metrics.messages.labels(kind).inc(n)
        record_rejections(self.dead_letters, prepared.rejected)  # one entry per message
        batch, flags = self.tracker.apply(dedupe_last(prepared.batch))
        for kind, rows in flags.rows.items():
            self._record_flags(batch, rows, kind)
        return _Work(messages, batch, prepared.statuses)

    async def _finish(self, work: _Work) -> None:
        if work.writing is not None and not work.writing.cancelled():
            await work.writing  # its failure is the stage's failure
        if not work.durable:  # never written, or the write was cancelled
            await self._durable(work)
        if work.acked:
            return
        self.dead_letters.flush()
        # Marked before anything else can run: a PUBACK sent twice could acknowledge a newer
        # message that reuses the id.
        work.acked = True
        self.subscriber.ack(work.messages)
        for sink in self.sinks:
            if len(work.batch):
                await sink.on_readings(work.batch)
            for status in work.statuses:
                await sink.on_status(status)

    def _record_flags(self, batch: ReadingBatch, rows: list[int], kind: str) -> None:
        for i in rows:
            key = batch.series[batch.series_idx[i]]
            what = _FLAG_TEXT.get(kind, kind)
            self.flags_log.record(
                f"{key.site}/{key.meter}",
                kind,
                f"{key.quantity} {what}: now {batch.values[i]} at {batch.ts_ms[i]}; delta "
                f"{'not stored' if batch.deltas[i] != batch.deltas[i] else batch.deltas[i]}",
                field=key.quantity,
            )
        if rows:
            self.flags_log.flush()

    async def _write_statuses(self, statuses: list[DeviceStatus]) -> None:
        changes = self.statuses.changes(statuses)  # a repeated state adds no row
        if not changes:
            return
        try:
            await self.store.write_statuses(changes)
        except (StoreUnavailable, StoreRejected) as exc:
            # Statuses are retained on the broker: the current one comes back on resubscribe.
            self.statuses.forget(changes)
            _log.warning("device statuses not stored (%s)", exc)

    async def _make_durable(self, batch: ReadingBatch) -> list[int]:
        """Store `batch` (or spool it); returns the rows the store refused."""
        m = self.metrics
        if self.spool.empty:
            started = time.perf_counter()
            try:
                await self.store.write(batch)
            except StoreRejected as exc:
                self._dead_letter_rows(batch, exc)
                m.batches.labels("partial").inc()
                self._accept(len(batch) - len(exc.rejected_idx))
                return list(exc.rejected_idx)
            except StoreUnavailable as exc:
                if not self._store_down_logged:
                    _log.error(
                        "store unavailable (%s): spooling to %s until it is back",
                        exc,
                        self.spool.directory,
                    )
                    self._store_down_logged = True
            else:
                m.write_seconds.observe(time.perf_counter() - started)
                m.batches.labels("stored").inc()
                self._accept(len(batch))
                return []
        while True:
            try:
                self.spool.append(batch)
                break
            except SpoolFullError as exc:
                m.spool_full.set(1)
                if time.monotonic() - self._spool_full_logged > 30:
                    _log.error(
                        "%s: NOT acknowledging messages; the broker keeps them until the"
                        " store or disk space is back",
                        exc,
                    )
                    self._spool_full_logged = time.monotonic()
                self._replay_needed.set()
                await asyncio.sleep(0.5)
                if self.spool.empty and await self._try_store(batch):
                    m.spool_full.set(0)
                    return []
        m.spool_full.set(0)
        m.batches.labels("spooled").inc()
        m.spool_bytes.set(self.spool.bytes)
        m.spool_batches.set(self.spool.batches)
        self._accept(len(batch))
        self._replay_needed.set()
        return []

    async def _try_store(self, batch: ReadingBatch) -> bool:
        """While holding a batch the spool cannot take: is the store back?"""
        try:
            await self.store.write(batch)
        except StoreRejected as exc:
            self._dead_letter_rows(batch, exc)
            self._accept(len(batch) - len(exc.rejected_idx))
            return True
        except StoreUnavailable:
            return False
        self.metrics.batches.labels("stored").inc()
        self._accept(len(batch))
        return True

    def _accept(self, n: int) -> None:
        self.accepted += n
        self.metrics.accepted.inc(n)

    def _dead_letter_rows(self, batch: ReadingBatch, exc: StoreRejected) -> None:
        """One dead-letter entry per refusal reason, with the first rows in detail: a batch
        the store refused whole is one bounded entry, not thousands."""
        if exc.dropped:
            self.metrics.store_dropped.inc(exc.dropped)
        by_reason: dict[str, list[int]] = {}
        for i, why in zip(exc.rejected_idx, exc.reasons, strict=True):
            by_reason.setdefault(why, []).append(i)
        for why, rows in by_reason.items():
            detail = []
            for i in rows[:MAX_ROWS]:
                key = batch.series[batch.series_idx[i]]
                detail.append(
                    {
                        "reason": "store_rejected",
                        "field": f"{key.site}/{key.meter}/{key.quantity}",
                        "message": f"{batch.values[i]} at {batch.ts_ms[i]}",
                        "count": 1,
                    }
                )
            first = batch.series[batch.series_idx[rows[0]]]
            self.dead_letters.record(
                f"{self.settings.topic_prefix}/{first.site}/{first.meter}/data",
                "store_rejected",
                why,
                field=first.quantity,
                count=len(rows),
                rows=detail,
            )
        self.dead_letters.flush()

    async def _replay(self) -> None:
        backoff = Backoff(initial_s=0.5, max_s=_REPLAY_MAX_BACKOFF_S)
        while True:
            await self._replay_needed.wait()
            while not self.spool.empty:
                oldest = self.spool.oldest()
                if oldest is None:
                    break
                path, batches = oldest
                try:
                    for batch in batches:
                        try:
                            await self.store.write(batch)
                        except StoreRejected as exc:
                            self._dead_letter_rows(batch, exc)
                except StoreUnavailable:
                    await backoff.sleep()
                    continue
                backoff.reset()
                self.spool.drop(path)
                self.metrics.spool_bytes.set(self.spool.bytes)
                self.metrics.spool_batches.set(self.spool.batches)
                _log.info("spool: replayed %s (%d batches left)", path.name, self.spool.batches)
            if self._store_down_logged:
                _log.warning("store is back; spool drained")
                self._store_down_logged = False
            self._replay_needed.clear()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(_STATE_SAVE_S)
            if self._state_saveable:
                self.tracker.save()
            self.dead_letters.maybe_log_summary()
            self.flags_log.maybe_log_summary()
            self.metrics.connected.set(1 if self.subscriber.is_connected else 0)
            self.metrics.unacked.set(self.subscriber.buffered)
