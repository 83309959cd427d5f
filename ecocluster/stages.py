"""The stages a node can run, declared once, in the direction of the data.

Each entry names a stage and the factory that builds it from the node's shared state
(`ecocluster.node.NodeState`). Factories run in this order; a stage that consumes another's
output does not need it built first, because stages talk through fan-out ports held in the
state (`state.readings` is ingest's `ReadingSink`, `state.transitions` is the rules'
`TransitionSink`): a consumer joins by adding itself.

Adding a stage is one entry here and its module. `ecocluster run` and `ecocluster demo`
both build from this table; the demo only swaps embedded parts into the state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ecocluster.core.errors import EcoclusterError

if TYPE_CHECKING:
    from ecocluster.node import NodeState

__all__ = ["STAGES", "Stage", "StagePlanError", "StageSpec", "plan"]


class Stage(Protocol):
    """What the node runtime runs: `run` sets `ready` once it serves, and returns or is
    cancelled when the node stops (flushing what it holds on the way out)."""

    name: str

    async def run(self, ready: asyncio.Event) -> None: ...


StageFactory = Callable[["NodeState", contextlib.AsyncExitStack], Awaitable[Stage]]


@dataclass(frozen=True)
class StageSpec:
    name: str
    build: StageFactory
    #: One line for `ecocluster run --help` and error messages.
    summary: str


class StagePlanError(EcoclusterError):
    """`--only` names an unknown stage or a combination that cannot run (exit code 2)."""


async def _build_ingest(state: NodeState, stack: contextlib.AsyncExitStack) -> Stage:
    from ecocluster.ingest.metrics import IngestMetrics
    from ecocluster.ingest.stage import IngestStage

    return IngestStage(
        state.cluster,
        state.settings,
        store=state.store,
        sinks=[state.readings],
        metrics=IngestMetrics(state.metrics),
        clock=state.clock,
        close_store=False,  # shared: the node's lifespan closes it after every stage
    )


async def _build_rules(state: NodeState, stack: contextlib.AsyncExitStack) -> Stage:
    from ecocluster.rules.stage import RulesStage

    stage = RulesStage(
        state.cluster,
        sinks=[state.transitions],
        config_path=state.cluster.source,
        snapshot_path=Path(state.settings.data_dir) / "rules-state.json",
        tick_s=state.parts.rules_tick_s or state.settings.rules_tick_s,
        clock=state.clock,
        event_time=state.parts.event_time,
    )
    state.readings.add(stage)
    state.engine = stage.engine
    return stage


async def _build_alerts(state: NodeState, stack: contextlib.AsyncExitStack) -> Stage:
    """The alert service is the rules' `TransitionSink` in this node; without a rules stage
    here it consumes `{prefix}/_alerts/#` from the broker (QoS 1, acked after commit)."""
    from ecocluster.alerts.service import AlertService
    from ecocluster.alerts.stage import AlertStage

    service = AlertService(state.cluster, state.settings, clock=state.clock)
    await service.start()
    stack.push_async_callback(service.close)
    state.transitions.add(service)
    state.alerts = service
    return AlertStage(
        state.cluster, state.settings, service, consume_mqtt="rules" not in state.planned
    )


async def _build_api(state: NodeState, stack: contextlib.AsyncExitStack) -> Stage:
    """Reads everything: the rules' hot window as its live view (or, alone, the store plus
    its own MQTT subscription), the alert service, the node's metrics registry."""
    from ecocluster.api import ApiDeps, ApiStage, EventHub, HotWindowLive, ReadingFeed
    from ecocluster.api.alert_adapter import ServiceAlerts
    from ecocluster.api.mqtt_live import MqttLive

    hub = EventHub()
    live: HotWindowLive | MqttLive
    if state.engine is not None:
        live = HotWindowLive(state.engine)
        state.readings.add(ReadingFeed(hub, {s.id: s.org for s in state.cluster.sites}))
    else:
        live = MqttLive(state.cluster, state.settings, state.store, hub)
    alerts = ServiceAlerts(state.alerts, state.settings) if state.alerts is not None else None
    deps = ApiDeps(
        cluster=state.cluster,
        settings=state.settings,
        store=state.store,
        live=live,
        alerts=alerts,
        registries=[state.metrics],
        hub=hub,
        clock=state.clock,
    )
    state.api = deps
    return ApiStage(deps)


STAGES: tuple[StageSpec, ...] = (
    StageSpec("ingest", _build_ingest, "MQTT → validate → store, acknowledged after durable"),
    StageSpec("rules", _build_rules, "hot window and rule engine → transitions"),
    StageSpec("alerts", _build_alerts, "transitions → alerts → routing → outbox → Apprise"),
    StageSpec("api", _build_api, "FastAPI: registry, live, history, alerts, dashboard"),
)
STAGE_NAMES: tuple[str, ...] = tuple(spec.name for spec in STAGES)


def plan(only: Sequence[str] | None = None) -> list[StageSpec]:
    """The stages to run, in data-flow order: all of them when `only` is empty."""
    wanted = [name.strip() for name in only or () if name.strip()] or list(STAGE_NAMES)
    unknown = [name for name in wanted if name not in STAGE_NAMES]
    if unknown:
        raise StagePlanError(
            f"--only: unknown stage {unknown[0]!r} (known: {', '.join(STAGE_NAMES)})"
        )
    if "rules" in wanted and "ingest" not in wanted:
        raise StagePlanError(
            "--only: the rules stage is fed by ingest in the same node: run --only ingest,rules"
            " (rule workers reading from the broker themselves are not built yet)"
        )
    return [spec for spec in STAGES if spec.name in wanted]
