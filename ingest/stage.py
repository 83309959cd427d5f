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
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.core.types import DeviceStatus, ReadingBatch, ReadingSink
from ecocluster.ingest.deadletter import DeadLetterLog
from ecocluster.ingest.errors import SpoolFullError, StoreRejected, StoreUnavailable
from ecocluster.ingest.metrics import IngestMetrics
from ecocluster.ingest.pipeline import Limits, dedupe_last, prepare
from ecocluster.ingest.registers import RegisterTracker
from ecocluster.ingest.spool import Spool
from ecocluster.ingest.stores import Store, make_store
from ecocluster.ingest.subscriber import Inbound, MqttSubscriber, SubscriberError
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
#: No new message for this long while some wait for their ack: the window is probably full.
_IDLE_S = 0.01


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
    ) -> None:
        self.cluster, self.settings = cluster, settings
        #: Receipt time in epoch ms: wall time, or a simulation's clock (the demo), against
        #: which readings from the future or too old are refused.
        self.clock = clock or _wall_ms
        self.store = store if store is not None else make_store(settings)
        #: A store handed in is shared (the node's lifespan closes it); our own we close.
        self._owns_store = store is None
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
        self.router = TopicRouter(cluster, settings.topic_prefix)
        self.limits = Limits(
            settings.max_payload_bytes,
            int(settings.max_future_s * 1000),
            int(settings.max_age_s * 1000),
        )
        self.subscriber = MqttSubscriber(settings)
        window = (
            settings.mqtt_receive_maximum // 4 if settings.mqtt_qos else settings.ingest_batch_size
        )
        self.flush_threshold = max(1, min(settings.ingest_batch_size, window))
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
        sub = self.subscriber
        sub.threshold = self.flush_threshold
        await sub.start()
        try:
            async with asyncio.TaskGroup() as tasks:
                consumer = tasks.create_task(self._consume(), name="ingest.consumer")
                tasks.create_task(self._write_loop(), name="ingest.writer")
                tasks.create_task(self._replay(), name="ingest.replayer")
                tasks.create_task(self._housekeeping(), name="ingest.housekeeping")
                tasks.create_task(self._signal_ready(ready), name="ingest.ready")
                await consumer
        except* SubscriberError as group:
            raise group.exceptions[0] from None  # one clear error, not a group
        finally:
            await self._shutdown()

    async def _signal_ready(self, ready: asyncio.Event | None) -> None:
        await self.subscriber.connected.wait()
        await self.subscriber.subscribed.wait()
        if ready is not None:
            ready.set()

    async def _open(self) -> None:
        self.spool.open()
        self.metrics.spool_bytes.set(self.spool.bytes)
        self.metrics.spool_batches.set(self.spool.batches)
        restored = self.tracker.load()
        try:
            await self.store.open()
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
                len(self.subscriber.pending) + sum(len(w.messages) for w in self._unfinished),
                _SHUTDOWN_S,
            )
        except Exception:
            _log.exception(
                "shutdown: flushing failed; unacknowledged messages stay with the broker"
            )
        await self.subscriber.stop()
        if self._state_saveable:
            self.tracker.save()
        self.dead_letters.close()
        self.flags_log.close()
        self.spool.close()
        if self._owns_store:
            await self.store.close()

    async def _flush_all(self) -> None:
        while self._unfinished:
            await self._finish(self._unfinished[0])
            self._unfinished.popleft()
        while self.subscriber.pending:
            work = self._prepare(self.subscriber.drain(self.settings.ingest_batch_size))
            self._unfinished.append(work)
            await self._finish(work)
            self._unfinished.popleft()

    # -- the loop ---------------------------------------------------------------------------
    async def _consume(self) -> None:
        sub, flush_s = self.subscriber, self.settings.ingest_flush_ms / 1000
        while True:
            sub.rearm()
            if not sub.pending and sub.fatal is None:
                await sub.wakeup.wait()
                sub.rearm()
            if sub.fatal is not None:
                raise sub.fatal
            if 0 < len(sub.pending) < self.flush_threshold:
                await self._gather_burst(flush_s)
            self.metrics.unacked.set(len(sub.pending))
            messages = sub.drain(max(self.flush_threshold, self.settings.ingest_batch_size))
            if not messages:
                continue
            while len(self._unfinished) >= _MAX_UNFINISHED:
                self._work_done.clear()
                await self._work_done.wait()
            self._unfinished.append(self._prepare(messages))
            self._work_added.set()

    async def _gather_burst(self, flush_s: float) -> None:
        """Wait until the burst is big enough, old enough, or the stream stalls.

        A stall (nothing new for `_IDLE_S`) with messages pending usually means the broker's
        inflight window is full and waits for our acks: flush now rather than at the age
        limit. This keeps throughput up when the window is smaller than we were told (MQTT
        3.1.1 cannot ask for one; a default Mosquitto allows 20)."""
        sub = self.subscriber
        deadline = sub.pending[0].recv_ms / 1000 + flush_s
        seen = -1
        while len(sub.pending) < self.flush_threshold and len(sub.pending) != seen:
            seen = len(sub.pending)
            remaining = deadline - time.time()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.wakeup.wait(), min(remaining, _IDLE_S))
                return  # the threshold was reached

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
            await self._make_durable(work.batch)
        work.durable = True
        await self._write_statuses(work.statuses)

    def _prepare(self, messages: list[Inbound]) -> _Work:
        """Decode, validate, dead-letter and compute deltas (no I/O but the logs)."""
        now_ms = self.clock()
        prepared = prepare(messages, self.router, self.cluster.series, self.limits, now_ms=now_ms)
        for kind, n in prepared.kinds.items():
            if n:
                self.metrics.messages.labels(kind).inc(n)
        for r in prepared.rejected:
            self.dead_letters.record(
                r.message.topic,
                r.reason,
                r.text,
                payload=r.message.payload,
                field=r.field,
                count=r.count,
                recv_ms=r.message.recv_ms,
            )
        batch, flags = self.tracker.apply(dedupe_last(prepared.batch))
        self._record_flags(batch, flags.reset_idx.tolist(), "reset")
        self._record_flags(batch, flags.jump_idx.tolist(), "jump")
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
            what = "went down (reset or replaced meter)" if kind == "reset" else "rose implausibly"
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
        if not statuses:
            return
        try:
            await self.store.write_statuses(statuses)
        except (StoreUnavailable, StoreRejected) as exc:
            # Statuses are retained on the broker: the current one comes back on resubscribe.
            _log.warning("device statuses not stored (%s)", exc)

    async def _make_durable(self, batch: ReadingBatch) -> None:
        m = self.metrics
        if self.spool.empty:
            started = time.perf_counter()
            try:
                await self.store.write(batch)
            except StoreRejected as exc:
                self._dead_letter_rows(batch, exc)
                m.batches.labels("partial").inc()
                self._accept(len(batch) - len(exc.rejected_idx))
                return
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
                return
        while True:
            try:
                self.spool.append(batch)
                break
            except SpoolFullError as exc:
                m.spool_full.set(1)
                if time.monotonic() - self._spool_full_logged > 30:
                    _log.error(
                        "%s: NOT acknowledging messages; the broker keeps them until the"
                        " store is back",
                        exc,
                    )
                    self._spool_full_logged = time.monotonic()
                self._replay_needed.set()
                await asyncio.sleep(0.5)
                if self.spool.empty and await self._try_store(batch):
                    m.spool_full.set(0)
                    return
        m.spool_full.set(0)
        m.batches.labels("spooled").inc()
        m.spool_bytes.set(self.spool.bytes)
        m.spool_batches.set(self.spool.batches)
        self._accept(len(batch))
        self._replay_needed.set()

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
        for i, why in zip(exc.rejected_idx, exc.reasons, strict=True):
            key = batch.series[batch.series_idx[i]]
            self.dead_letters.record(
                f"{self.settings.topic_prefix}/{key.site}/{key.meter}/data",
                "store_rejected",
                f"{why}: {key.quantity}={batch.values[i]} at {batch.ts_ms[i]}",
                field=key.quantity,
            )

    async def _replay(self) -> None:
        backoff = 0.5
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
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _REPLAY_MAX_BACKOFF_S)
                    continue
                backoff = 0.5
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
            self.metrics.connected.set(1 if self.subscriber.connected.is_set() else 0)
            self.metrics.unacked.set(len(self.subscriber.pending))
