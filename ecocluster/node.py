"""The node runtime: opens the shared resources once, builds the planned stages from
`ecocluster.stages.STAGES`, runs them in one TaskGroup and closes everything in reverse.

    async with node_lifespan(cluster, settings, plan(only)) as (state, stages):
        ...                                    # what `run_node` does

The shared resources live in one typed `NodeState` (as Starlette's lifespan yields state):
the store, one Prometheus registry, the fan-out ports between stages, the rules engine's
read view, and — when the alert stage runs elsewhere — the MQTT publisher of transitions.
`ecocluster demo` runs the same composition with embedded parts (`NodeParts`).

A stage that fails for good stops the node with one line naming the stage and the cause
(`StageFailed`); the traceback goes to the DEBUG log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from ecocluster.core.errors import FatalError, TransientError, describe
from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.core.transitions import Transition, TransitionSink
from ecocluster.core.types import DeviceStatus, ReadingBatch, ReadingSink
from ecocluster.stages import Stage, StageSpec, check_partition, plan

if TYPE_CHECKING:
    from ecocluster.alerts.service import AlertService
    from ecocluster.api.deps import ApiDeps
    from ecocluster.ingest.stores import Store
    from ecocluster.rules.engine import RuleEngine

__all__ = [
    "NodeParts",
    "NodeState",
    "ReadingFanOut",
    "StageFailed",
    "TransitionFanOut",
    "node_lifespan",
    "run_node",
]

_log = logging.getLogger(__name__)


#: The stages that read or write the store; a node without them opens none.
_STORE_READERS = frozenset({"ingest", "api"})


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class ReadingFanOut:
    """Ingest's one `ReadingSink`; consumers (the rules stage) join with `add`."""

    def __init__(self) -> None:
        self.sinks: list[ReadingSink] = []

    def add(self, sink: ReadingSink) -> None:
        self.sinks.append(sink)

    async def on_readings(self, batch: ReadingBatch) -> None:
        for sink in self.sinks:
            await sink.on_readings(batch)

    async def on_status(self, status: DeviceStatus) -> None:
        for sink in self.sinks:
            await sink.on_status(status)


class TransitionFanOut:
    """The rules stage's one `TransitionSink`: the alert service in this node, or the MQTT
    publisher for an alert stage elsewhere, plus any observer (the demo's console)."""

    def __init__(self) -> None:
        self.sinks: list[TransitionSink] = []

    def add(self, sink: TransitionSink) -> None:
        self.sinks.append(sink)

    async def on_transitions(self, transitions: Sequence[Transition]) -> None:
        for sink in self.sinks:
            await sink.on_transitions(transitions)


@dataclass(frozen=True)
class NodeParts:
    """What a composition may swap in: the demo's embedded store and simulated clock."""

    store: Store | None = None
    clock: Callable[[], int] = wall_ms
    #: Rules tick on the newest reading's time (a replay or an accelerated simulation).
    event_time: bool = False
    rules_tick_s: float | None = None
    #: Extra transition consumers (the demo's console), besides the alert stage.
    observers: Sequence[TransitionSink] = ()


@dataclass
class NodeState:
    """The shared resources every stage factory receives."""

    cluster: Cluster
    settings: Settings
    #: None in a node without ingest or api (a rules or alert worker needs no store).
    store: Store | None
    parts: NodeParts
    clock: Callable[[], int]
    metrics: CollectorRegistry = field(default_factory=CollectorRegistry)
    readings: ReadingFanOut = field(default_factory=ReadingFanOut)
    transitions: TransitionFanOut = field(default_factory=TransitionFanOut)
    #: The names of the stages this node runs (a factory adapts to its neighbours).
    planned: frozenset[str] = frozenset()
    #: The rules engine (its hot window is the API's live view), once the rules stage runs.
    engine: RuleEngine | None = None
    #: The alert service (the API's alert port), once the alert stage runs.
    alerts: AlertService | None = None
    #: What the API serves from (its token store, its URL once listening).
    api: ApiDeps | None = None
    stages: dict[str, Stage] = field(default_factory=dict)


class StageFailed(FatalError):
    """A stage stopped for good; the node stops with this one line."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{stage} stage stopped: {describe(cause)}")
        self.stage = stage
        self.cause = cause


@contextlib.asynccontextmanager
async def node_lifespan(
    cluster: Cluster,
    settings: Settings,
    specs: Sequence[StageSpec],
    parts: NodeParts | None = None,
) -> AsyncIterator[NodeState]:
    """Open the shared resources, build the stages into `state.stages`, close on exit."""
    parts = parts or NodeParts()
    names = frozenset(spec.name for spec in specs)
    state = NodeState(
        cluster=cluster,
        settings=settings,
        store=_node_store(parts, settings, names),
        parts=parts,
        clock=parts.clock,
        planned=names,
    )
    for observer in parts.observers:
        state.transitions.add(observer)
    async with contextlib.AsyncExitStack() as stack:
        if state.store is not None:
            stack.push_async_callback(state.store.close)
            await _open_store(state.store)
        if settings.influx_url and parts.store is None and _maintains_store(state):
            from ecocluster.deploy.influx_setup import influx_maintenance

            # Retention policies and downsampling; never fatal at start (InfluxDB 2.x/3.x).
            await stack.enter_async_context(
                influx_maintenance(settings, timezone=cluster.territory.timezone)
            )
        for spec in specs:
            state.stages[spec.name] = await spec.build(state, stack)
        if "rules" in names and "alerts" not in names:
            await _publish_transitions(state, stack)
        yield state


def _node_store(parts: NodeParts, settings: Settings, names: frozenset[str]) -> Store | None:
    """The composition's store, or the configured one when a stage here uses it."""
    from ecocluster.ingest.stores import make_store

    if parts.store is not None:
        return parts.store
    return make_store(settings) if names & _STORE_READERS else None


def _maintains_store(state: NodeState) -> bool:
    """Retention and downsampling run in one node of a layout: any node with the store
    unless partitioned, then ingest worker 0 (the others would repeat the same work)."""
    from ecocluster.stages import worker_share

    if state.store is None:
        return False
    partition = worker_share(state.settings).partition
    return partition is None or partition.count == 1 or partition.index == 0


async def _open_store(store: Store) -> None:
    """A store that is away at start is not fatal: ingest spools, readers answer 503."""
    try:
        await store.open()
    except TransientError as exc:
        _log.warning("store unavailable at start (%s); the stages retry", describe(exc))


async def _publish_transitions(state: NodeState, stack: contextlib.AsyncExitStack) -> None:
    """No alert stage in this node: transitions go out over MQTT (QoS 1) to the one that
    runs elsewhere (`{prefix}/_alerts/{site}/{rule}`), from a client id of this worker's
    own (`{mqtt_client_id}-rules[-p0of2|-aggregate]`)."""
    from ecocluster.rules.publish import MqttTransitionPublisher
    from ecocluster.stages import worker_share

    settings = state.settings
    publisher = MqttTransitionPublisher.from_settings(
        settings, client_id=worker_share(settings).named(f"{settings.mqtt_client_id}-rules")
    )
    await publisher.start()
    stack.push_async_callback(publisher.close)
    state.transitions.add(publisher)


async def run_node(
    cluster: Cluster,
    settings: Settings,
    only: Sequence[str] | None = None,
    *,
    parts: NodeParts | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[NodeState], None] | None = None,
) -> None:
    """Run the planned stages until `stop` is set, SIGINT/SIGTERM arrives or a stage fails
    (`StageFailed`, one line). Stopping cancels the stages; each flushes on its way out."""
    specs = plan(only)
    check_partition(specs, settings, cluster)
    stop = stop or asyncio.Event()
    with _stop_on_signals(stop):
        async with node_lifespan(cluster, settings, specs, parts) as state:
            await _run_stages(state, stop, on_ready)


async def _run_stages(
    state: NodeState, stop: asyncio.Event, on_ready: Callable[[NodeState], None] | None
) -> None:
    stages = list(state.stages.values())
    try:
        async with asyncio.TaskGroup() as tasks:
            readies = []
            for stage in stages:
                ready = asyncio.Event()
                readies.append(ready)
                tasks.create_task(_guarded(stage, ready), name=f"{stage.name}.run")

            async def announce() -> None:
                await asyncio.gather(*(r.wait() for r in readies))
                _log.info("node ready: %s", ", ".join(s.name for s in stages))
                if on_ready is not None:
                    on_ready(state)

            tasks.create_task(announce(), name="node.ready")
            await stop.wait()
            _log.info("stopping: %s", ", ".join(s.name for s in stages))
            raise _Stop
    except* _Stop:
        pass
    except* StageFailed as group:
        failure = group.exceptions[0]
        assert isinstance(failure, StageFailed)
        _log.error("%s", failure)
        _log.debug("traceback of the %s stage", failure.stage, exc_info=failure.cause)
        raise failure from None


async def _guarded(stage: Stage, ready: asyncio.Event) -> None:
    """Run one stage; any failure becomes a `StageFailed` naming it."""
    try:
        await stage.run(ready)
    except Exception as exc:
        raise StageFailed(stage.name, exc) from exc


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)  # not in the main thread: skipped
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


class _Stop(Exception):
    """Raised inside the TaskGroup to cancel every stage."""
