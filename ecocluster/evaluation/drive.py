"""The parts that let a scenario run through the real node in simulated time.

- `TrackedSimulation`: the simulator in backfill mode, publishing one simulated minute at a
  time and logging what it sent (`PublishLog`): the receipt clock ingest judges "future"
  and "too old" readings against, the publish wall time of every minute (for latencies),
  and the malformed and hostile messages it injected (for ingest's score). It keeps at
  most `lead_ms` of simulated time ahead of what ingest has handed on, so that the receipt
  clock is what a live node's would be (a backfill far ahead of ingest would stamp device
  statuses late and let skewed readings look current).
- `EventTimeDriver`: ingest's `ReadingSink` in front of the rules stage. It hands the
  stage each batch minute by minute of event time and ticks the stage at every simulated
  minute, as a live node ticking in wall time would (an ingest batch may span an hour of
  a backfill). Device statuses are applied at the first tick after them; the `offline`
  statuses the simulator sends when it shuts down (after the last reading) are not.
- `TransitionRecorder`, `SeriesRecorder`: observers of transitions and readings.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections.abc import Collection, Sequence
from typing import Any, Protocol

import numpy as np

from ecocluster.core.transitions import Transition
from ecocluster.core.types import DeviceStatus, ReadingBatch
from ecocluster.sim import Message, SimConfig, SimPlan, Simulation

from .ingest_checks import Sent, SeriesTrace
from .score import MIN_MS

__all__ = [
    "EventTimeDriver",
    "PublishLog",
    "SeriesRecorder",
    "TrackedSimulation",
    "TransitionRecorder",
]

_MAX_GROUP = 2048
#: The longest the publisher waits for ingest before sending anyway (a silent territory).
_GATE_TIMEOUT_S = 2.0


class PublishLog:
    """What the simulator has published so far (written by its thread, read by the loop)."""

    def __init__(self, start_ms: int) -> None:
        self.start_ms = start_ms
        self.sent_through_ms = start_ms
        self.last_data_due_ms = start_ms
        self.messages = 0
        self._walls: list[float] = []
        self._epoch_ms: list[int] = []
        self._dues: list[int] = []
        self.injected: list[Sent] = []
        self._data_due: dict[int, list[np.ndarray]] = {}

    def clock_ms(self) -> int:
        """Ingest's receipt clock: how far the simulator has published (simulated ms)."""
        return self.sent_through_ms

    def record(self, group: Sequence[Message]) -> None:
        dues = np.fromiter((m.due_ms for m in group), np.int64, len(group))
        idx = np.fromiter((m.meter_idx for m in group), np.int64, len(group))
        is_data = np.fromiter((m.kind == "data" for m in group), np.bool_, len(group))
        for meter in np.unique(idx[is_data]).tolist():
            self._data_due.setdefault(meter, []).append(dues[is_data & (idx == meter)])
        for m in group:
            if m.kind in ("malformed", "hostile"):
                self.injected.append(Sent(m.due_ms, m.meter_idx, m.topic, m.kind, len(m.payload)))
        if is_data.any():
            self.last_data_due_ms = max(self.last_data_due_ms, int(dues[is_data].max()))
        self.messages += len(group)
        self.sent_through_ms = max(self.sent_through_ms, int(dues.max()))
        # Appended in this order so that a reader in another thread never indexes past
        # the end: len(_walls) >= len(_dues) >= len(_epoch_ms) at every moment.
        self._walls.append(time.monotonic())
        self._dues.append(self.sent_through_ms)
        self._epoch_ms.append(time.time_ns() // 1_000_000)

    def share(self, end_ms: int) -> float:
        """The share of `[start_ms, end_ms)` published so far, 0 to 1."""
        span = max(end_ms - self.start_ms, 1)
        return min(max((self.sent_through_ms - self.start_ms) / span, 0.0), 1.0)

    def data_due(self) -> dict[int, np.ndarray]:
        return {k: np.sort(np.concatenate(v)) for k, v in self._data_due.items()}

    def sim_ms_at(self, epoch_ms: int) -> int:
        """How far the simulator had published at wall time `epoch_ms` (ingest's
        `recv_ms`): the simulated time of a receipt, within the publisher's lead."""
        i = bisect.bisect_right(self._epoch_ms, epoch_ms)
        return self._dues[i - 1] if i else self.start_ms

    def published_at(self, at_ms: int) -> float | None:
        """Wall (monotonic) time at which the simulator first published past `at_ms`."""
        i = bisect.bisect_left(self._dues, at_ms)
        return self._walls[i] if i < len(self._walls) else None


class _Progress(Protocol):
    @property
    def newest_ms(self) -> int: ...


class TrackedSimulation(Simulation):
    """A backfill that publishes simulated minute by simulated minute, logs each one, and
    stays within `lead_ms` of `progress.newest_ms` (what ingest has handed on)."""

    def __init__(
        self,
        plan: SimPlan,
        config: SimConfig,
        *,
        log: PublishLog,
        progress: _Progress,
        lead_ms: int,
    ) -> None:
        super().__init__(plan, config)
        self.log = log
        self.progress = progress
        self.lead_ms = lead_ms

    def _publish(self, transport: Any, messages: list[Message], *args: Any) -> bool:
        for group in _minute_groups(messages):
            if not self._wait_for_ingest(transport, group[0].due_ms):
                return False
            if not super()._publish(transport, group, *args):
                return False
            self.log.record(group)
        return True

    def _wait_for_ingest(self, transport: Any, due_ms: int) -> bool:
        target = min(due_ms - self.lead_ms, self.log.last_data_due_ms)
        deadline = time.monotonic() + _GATE_TIMEOUT_S
        while self.progress.newest_ms < target and time.monotonic() < deadline:
            if self._stop.is_set():
                return False
            transport.poll(0.002)  # reads the broker's acks meanwhile
        return not self._stop.is_set()


def _minute_groups(messages: list[Message]) -> list[list[Message]]:
    """Messages cut at each simulated minute (and at `_MAX_GROUP`), order kept."""
    if not messages:
        return []
    minutes = np.fromiter((m.due_ms // MIN_MS for m in messages), np.int64, len(messages))
    cuts = [0, *(np.flatnonzero(np.diff(minutes)) + 1).tolist(), len(messages)]
    groups = []
    for lo, hi in itertools.pairwise(cuts):
        for at in range(lo, hi, _MAX_GROUP):
            groups.append(messages[at : min(at + _MAX_GROUP, hi)])
    return groups


class _RulesStage(Protocol):
    async def on_readings(self, batch: ReadingBatch) -> None: ...
    async def on_status(self, status: DeviceStatus) -> None: ...
    async def tick(self, now_ms: int | None = None) -> list[Transition]: ...


class EventTimeDriver:
    """Ingest's sink in front of the rules stage: readings in event-time order, a tick at
    every `tick_ms` of simulated time from `start_ms` to `end_ms`."""

    def __init__(self, stage: _RulesStage, start_ms: int, end_ms: int, tick_ms: int) -> None:
        self.stage = stage
        self.end_ms = end_ms
        self.tick_ms = tick_ms
        self.next_tick_ms = start_ms + tick_ms
        self.newest_ms = start_ms
        self.readings = 0
        self.last_batch_wall = time.monotonic()
        self._statuses: list[DeviceStatus] = []

    async def on_readings(self, batch: ReadingBatch) -> None:
        if not len(batch):
            return
        self.last_batch_wall = time.monotonic()
        ordered = batch.take(np.argsort(batch.ts_ms, kind="stable"))
        ts = ordered.ts_ms
        newest = int(ts[-1])
        lo = 0
        while self.next_tick_ms <= self.end_ms and newest >= self.next_tick_ms:
            hi = int(np.searchsorted(ts, self.next_tick_ms, side="left"))
            if hi > lo:
                await self.stage.on_readings(ordered.take(np.arange(lo, hi)))
            lo = hi
            await self._tick(apply_statuses=True)
        if lo < len(ts):
            await self.stage.on_readings(ordered.take(np.arange(lo, len(ts))))
        self.readings += len(ts)
        self.newest_ms = max(self.newest_ms, newest)

    async def on_status(self, status: DeviceStatus) -> None:
        self._statuses.append(status)

    async def _tick(self, *, apply_statuses: bool) -> None:
        if apply_statuses and self._statuses:
            due = [s for s in self._statuses if s.ts_ms < self.next_tick_ms]
            self._statuses = [s for s in self._statuses if s.ts_ms >= self.next_tick_ms]
            for status in sorted(due, key=lambda s: s.ts_ms):
                await self.stage.on_status(status)
        await self.stage.tick(self.next_tick_ms)
        self.next_tick_ms += self.tick_ms

    async def finish(self) -> None:
        """Tick up to the minute after the last reading (never past the scenario's end);
        statuses still held (the simulator's goodbye) are dropped."""
        last = min(self.end_ms, self.newest_ms + self.tick_ms)
        while self.next_tick_ms <= last:
            await self._tick(apply_statuses=False)
        self._statuses.clear()


class TransitionRecorder:
    """A `TransitionSink` observer: every transition with the wall time it was emitted."""

    def __init__(self) -> None:
        self.seen: list[tuple[Transition, float]] = []
        self.closed = False
        self._lock = threading.Lock()

    async def on_transitions(self, transitions: Sequence[Transition]) -> None:
        if self.closed:
            return
        now = time.monotonic()
        with self._lock:
            self.seen.extend((t, now) for t in transitions)


class SeriesRecorder:
    """A `ReadingSink` observer keeping the readings of some meters (the faulted ones)."""

    def __init__(self, meters: Collection[tuple[str, str]]) -> None:
        self.meters = set(meters)
        self.series: dict[tuple[str, str, str], SeriesTrace] = {}
        self._wanted: dict[int, tuple[str, str, str] | None] = {}
        self._source: object = None

    async def on_readings(self, batch: ReadingBatch) -> None:
        if not len(batch) or not self.meters:
            return
        if batch.series is not self._source:
            self._source = batch.series
            self._wanted = {
                i: (k.site, k.meter, k.quantity)
                for i, k in enumerate(batch.series)
                if (k.site, k.meter) in self.meters
            }
        if not self._wanted:
            return
        keys = np.fromiter(self._wanted, np.int64, len(self._wanted))
        keep = np.isin(batch.series_idx, keys)
        if not keep.any():
            return
        part = batch.take(keep)
        for i in np.unique(part.series_idx).tolist():
            key = self._wanted[i]
            assert key is not None
            rows = part.series_idx == i
            trace = self.series.setdefault(key, SeriesTrace())
            trace.ts_ms.append(part.ts_ms[rows])
            trace.values.append(part.values[rows])
            trace.deltas.append(part.deltas[rows])

    async def on_status(self, status: DeviceStatus) -> None:
        return None
