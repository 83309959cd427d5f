"""The rules stage: receives accepted readings from ingest, ticks the engine, emits
transitions to the alert stage.

    stage = RulesStage(cluster, sinks=[alert_service], config_path=path,
                       snapshot_path=settings.data_dir / "rules-state.json")
    ingest = Ingestor(..., sink=stage)            # ingest calls on_readings / on_status
    async with asyncio.TaskGroup() as tg:
        tg.create_task(stage.run(ready), name="rules")

`RulesStage` implements `ReadingSink`: `on_readings` scatters the batch into the hot window
(a few ms for 100k readings, no I/O) and, with `instant=True` (the default), evaluates at
once the rules that need no time to pass (thresholds on the latest value with `for: 0`),
so such a breach is a transition within milliseconds of its reading instead of waiting
up to `tick_s` (`bench/rules_latency.py`); `on_status` records a device's online/offline.
`run()` ticks every `tick_s` at `clock()` (wall time by default; pass a clock to run an
accelerated simulation, or `event_time=True` to tick at the newest reading's time),
reloads the rules when the cluster file changes or on SIGHUP (a bad file is refused, with
every error logged by file and line, and the old rules keep running), and saves the
pending/firing state every `snapshot_every_s` and on shutdown.

Transitions go to every `TransitionSink` in `sinks`: the alert service in the same node, or
the MQTT publisher (`rules/publish.py`) for an alert stage elsewhere. The sinks' own
connections are opened and closed by the node runtime, not by this stage.

A rules worker of its own (`ecocluster run --only rules [--partition k/n]`) has no ingest
to call it: `use_feed(BrokerFeed(…, sink=stage))` gives it one that reads the broker
(`rules/broker_feed.py`), started by `run()` once the saved state is restored. `view` (a
`WorkerShare.rules_view`) narrows the cluster to the worker's sites and rules, at start and
at every reload; the snapshot then also records which sites and how many series this
worker holds (`"worker"`), so one owner per meter can be checked from the files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from ecocluster.core.registry import Cluster, load_cluster
from ecocluster.core.types import DeviceStatus, ReadingBatch
from ecocluster.core.yamlsource import ConfigError
from ecocluster.rules.catalog import parse_rules
from ecocluster.rules.engine import RuleEngine
from ecocluster.rules.snapshot import load_snapshot, save_snapshot
from ecocluster.rules.transitions import Transition, TransitionSink
from ecocluster.rules.window import WindowConfig

__all__ = ["RulesStage", "StageState"]

_log = logging.getLogger(__name__)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Feed(Protocol):
    """Where a stage without ingest in its process gets readings (`BrokerFeed`)."""

    async def run(self, ready: asyncio.Event | None = None) -> None: ...


class StageState(Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class RulesStage:
    """Args:
    cluster: the validated cluster (its rules are compiled now: `ConfigError` if bad).
    sinks: where transitions go (the alert service, an MQTT publisher, a `QueueSink`).
    config_path: the cluster file to watch for changes (default: `cluster.source`).
    tick_s: seconds of `clock()` between evaluations.
    clock: event time in epoch ms (default: wall time).
    event_time: tick at the newest reading's time instead of `clock()`.
    snapshot_path: where pending/firing state is kept across restarts (None: not kept).
    instant: evaluate `for: 0` thresholds on the latest value as readings arrive.
    view: narrows every loaded cluster to this worker's sites and rules (partitions).
    worker: a name for this worker's share (`0/2`, `aggregate`), kept in the snapshot.
    """

    name = "rules"

    def __init__(
        self,
        cluster: Cluster,
        *,
        sinks: Sequence[TransitionSink] = (),
        config_path: Path | None = None,
        tick_s: float = 10.0,
        clock: Callable[[], int] = _wall_ms,
        event_time: bool = False,
        snapshot_path: Path | None = None,
        snapshot_every_s: float = 60.0,
        watch_s: float = 2.0,
        window: WindowConfig | None = None,
        instant: bool = True,
        view: Callable[[Cluster], Cluster] | None = None,
        worker: str | None = None,
    ) -> None:
        self.view = view or (lambda c: c)
        self.worker = worker
        self.feed: Feed | None = None
        self.engine = RuleEngine(self.view(cluster), window=window)
        self.instant = instant
        self.sinks = list(sinks)
        self.config_path = config_path or cluster.source
        self.tick_s = tick_s
        self.clock = clock
        self.event_time = event_time
        self.snapshot_path = snapshot_path
        self.snapshot_every_s = snapshot_every_s
        self.watch_s = watch_s
        self.state = StageState.NEW
        #: 1 when the last reload succeeded, 0 when a bad file was refused (a gauge).
        self.config_last_reload_successful = 1
        self.transitions_emitted = 0
        self._config_mtime = self._mtime()
        self._reload_requested = asyncio.Event()
        self._last_tick_ms = 0
        self._pending_emit: list[Transition] = []

    # -- ReadingSink -----------------------------------------------------------------------
    async def on_readings(self, batch: ReadingBatch) -> None:
        self.engine.ingest(batch)
        if self.instant and len(batch) and self.engine.has_instant:
            await self._emit(self.engine.instant(self.now_ms()))

    async def on_status(self, status: DeviceStatus) -> None:
        self.engine.set_status(status)

    # -- one step --------------------------------------------------------------------------
    def now_ms(self) -> int:
        if self.event_time:
            return max(int(self.engine.window.now_ms), self._last_tick_ms)
        return self.clock()

    async def tick(self, now_ms: int | None = None) -> list[Transition]:
        """Evaluate every rule at `now_ms` (default: `now_ms()`) and emit the changes."""
        now = self.now_ms() if now_ms is None else now_ms
        if now <= self._last_tick_ms:
            return []
        self._last_tick_ms = now
        transitions = self.engine.tick(now)
        await self._emit(transitions)
        return transitions

    async def _emit(self, transitions: list[Transition]) -> None:
        if not transitions:
            return
        self.transitions_emitted += len(transitions)
        for sink in self.sinks:
            await sink.on_transitions(transitions)

    def reload(self) -> bool:
        """Reload the rules from `config_path`; on a bad file log every error, keep the old
        rules and return False."""
        if self.config_path is None:
            return False
        self._config_mtime = self._mtime()
        try:
            cluster = load_cluster(self.config_path)
            parse_rules(cluster)  # every rule, also those another worker runs
            report = self.engine.reload(self.view(cluster))
        except ConfigError as exc:
            for issue in exc.issues:
                _log.error("rules reload refused: %s", issue)
            self.config_last_reload_successful = 0
            return False
        self.config_last_reload_successful = 1
        _log.info(
            "rules reloaded: %d kept, %d changed, %d added, %d removed",
            len(report.kept),
            len(report.changed),
            len(report.added),
            len(report.removed),
        )
        if report.transitions:
            self._pending_emit.extend(report.transitions)
        return True

    def _mtime(self) -> float | None:
        try:
            return self.config_path.stat().st_mtime if self.config_path else None
        except OSError:
            return None

    def save(self) -> None:
        if self.snapshot_path is not None:
            snapshot = self.engine.snapshot()
            if self.worker is not None:
                snapshot["worker"] = self.worker_info()
            save_snapshot(self.snapshot_path, snapshot)

    def worker_info(self) -> dict[str, Any]:
        """Which share this worker holds: its sites, series and rules (for the snapshot)."""
        return {
            "share": self.worker,
            "sites": [s.id for s in self.engine.cluster.sites],
            "series": len(self.engine.table),
            "rules": [k.spec.name for k in self.engine.kernels],
        }

    def use_feed(self, feed: Feed) -> None:
        """Readings come from `feed` (run by `run()` after the state is restored)."""
        if self.state is not StageState.NEW:
            raise RuntimeError("use_feed: the stage is already running")
        self.feed = feed

    # -- the loop --------------------------------------------------------------------------
    async def run(self, ready: asyncio.Event) -> None:
        """Restore state, then tick until cancelled; on the way out save the state."""
        if self.state is not StageState.NEW:
            raise RuntimeError("RulesStage is single-use; create a new one")
        self.state = StageState.RUNNING
        if self.snapshot_path is not None and (saved := load_snapshot(self.snapshot_path)):
            _log.info("rules state restored for %d targets", self.engine.restore(saved))
        hup = self._install_sighup()
        try:
            if self.feed is None:
                ready.set()
                await self._loop()
            else:
                await self._run_with_feed(self.feed, ready)
        finally:
            if hup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self.save()
            self.state = StageState.CLOSED

    async def _run_with_feed(self, feed: Feed, ready: asyncio.Event) -> None:
        """The feed and the ticks side by side; ready once the feed is subscribed."""
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(feed.run(ready), name="rules.feed")
                tasks.create_task(self._loop(), name="rules.ticks")
        except* Exception as group:
            raise group.exceptions[0] from None  # one clear error, not a group

    async def _loop(self) -> None:
        last_save = last_watch = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reload_requested.wait(), self.tick_s)
            mono = time.monotonic()
            if self._reload_requested.is_set() or (
                mono - last_watch >= self.watch_s and self._mtime() != self._config_mtime
            ):
                self._reload_requested.clear()
                self.reload()
                last_watch = mono
            if self._pending_emit:
                emitted, self._pending_emit = self._pending_emit, []
                await self._emit(emitted)
            await self.tick()
            if self.snapshot_path is not None and mono - last_save >= self.snapshot_every_s:
                self.save()
                last_save = mono

    def request_reload(self) -> None:
        """Reload at the next turn of the loop (what SIGHUP does)."""
        self._reload_requested.set()

    def _install_sighup(self) -> bool:
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.request_reload)
        except (NotImplementedError, RuntimeError, ValueError, AttributeError):
            return False  # not the main thread, or no signals on this platform
        return True
