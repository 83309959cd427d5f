"""The stages a node can run, declared once, in the direction of the data.

Each entry names a stage and the factory that builds it from the node's shared state
(`ecocluster.node.NodeState`). Factories run in this order; a stage that consumes another's
output does not need it built first, because stages talk through fan-out ports held in the
state (`state.readings` is ingest's `ReadingSink`, `state.transitions` is the rules'
`TransitionSink`): a consumer joins by adding itself.

Adding a stage is one entry here and its module. `ecocluster run` and `ecocluster demo`
both build from this table; the demo only swaps embedded parts into the state.

Scale-out (`--partition`, setting `partition`; `ecocluster.rules.partitioning`): ingest and
rules take a `WorkerShare`. A `k/n` ingest worker subscribes to the sites it owns with a
persistent session of its own (client id `{mqtt_client_id}-p{k}of{n}`) and keeps its spool,
dead letters, register state and receipt stamps in `{data_dir}/p{k}of{n}/`; a `k/n` rules
worker evaluates its sites' series, meter and site rules; the one `aggregate` rules worker
evaluates the organisation and territory rules over every site. A rules stage without
ingest in its node reads the broker itself (`rules/broker_feed.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ecocluster.core.errors import EcoclusterError
from ecocluster.core.settings import Settings

if TYPE_CHECKING:
    from ecocluster.core.registry import Cluster
    from ecocluster.ingest.stores import Store
    from ecocluster.node import NodeState
    from ecocluster.rules.partitioning import WorkerShare
    from ecocluster.rules.stage import RulesStage

__all__ = ["STAGES", "Stage", "StagePlanError", "StageSpec", "check_partition", "plan"]


_log = logging.getLogger("ecocluster.node")


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


def worker_share(settings: Settings) -> WorkerShare:
    """This node's share of the sites and rules (setting `partition`, `--partition`)."""
    from ecocluster.rules.partitioning import WorkerShare

    return WorkerShare.parse(settings.partition)


def _store_of(state: NodeState, stage: str) -> Store:
    if state.store is None:  # node_lifespan opens one whenever ingest or api runs
        raise StagePlanError(f"the {stage} stage needs the store, and this node has none")
    return state.store


def ingest_settings(settings: Settings, cluster: Cluster) -> Settings:
    """A `k/n` ingest worker's own client id, sites and data folder (nothing else moves)."""
    share = worker_share(settings)
    if not share.partitioned:
        return settings
    sites = share.sites(cluster)
    if settings.ingest_sites:
        sites = [s for s in sites if s in set(settings.ingest_sites)]
    if not sites:  # an empty list would mean "every site" to the subscriber
        raise StagePlanError(_no_sites(share, cluster))
    return settings.model_copy(
        update={
            "mqtt_client_id": share.named(settings.mqtt_client_id),
            "ingest_sites": sites,
            "data_dir": Path(settings.data_dir) / share.suffix,
        }
    )


async def _build_ingest(state: NodeState, stack: contextlib.AsyncExitStack) -> Stage:
    from ecocluster.ingest.metrics import IngestMetrics
    from ecocluster.ingest.stage import IngestStage

    share = worker_share(state.settings)
    settings = ingest_settings(state.settings, state.cluster)
    if share.partitioned:
        _log.info(
            "ingest worker %s: %d of %d sites, client id %s, files in %s; messages of sites"
            " not in the cluster file reach no worker (nobody subscribes to them)",
            share,
            len(settings.ingest_sites),
            len(state.cluster.sites),
            settings.mqtt_client_id,
            settings.data_dir,
        )
    return IngestStage(
        share.site_view(state.cluster),
        settings,
        store=_store_of(state, "ingest"),
        sinks=[state.readings],
        metrics=IngestMetrics(state.metrics),
        clock=state.clock,
        close_store=False,  # shared: the node's lifespan closes it after every stage
    )


async def _build_rules(state: NodeState, stack: contextlib.AsyncExitStack) -> Stage:
    """Fed by ingest in this node, or (no ingest here) by its own broker subscription."""
    from ecocluster.rules.stage import RulesStage

    share = worker_share(state.settings)
    stage = RulesStage(
        state.cluster,
        sinks=[state.transitions],
        config_path=state.cluster.source,
        snapshot_path=Path(state.settings.data_dir) / f"{share.named('rules-state')}.json",
        tick_s=state.parts.rules_tick_s or state.settings.rules_tick_s,
        clock=state.clock,
        event_time=state.parts.event_time,
        view=share.rules_view,
        worker=None if share.whole else str(share),
    )
    _log_rules_share(state.cluster, share, stage)
    if "ingest" in state.planned:
        state.readings.add(stage)
    else:
        from ecocluster.rules.broker_feed import BrokerFeed, FeedMetrics

        stage.use_feed(
            BrokerFeed(
                stage.engine.cluster,
                state.settings,
                sink=stage,
                share=share,
                clock=state.clock,
                metrics=FeedMetrics(state.metrics),
            )
        )
    state.engine = stage.engine
    return stage


def _log_rules_share(cluster: Cluster, share: WorkerShare, stage: RulesStage) -> None:
    """One line saying what this worker evaluates, and who evaluates the rest."""
    if share.whole:
        return
    names = share.left_out(cluster.rules)
    here = stage.engine.cluster
    if share.aggregate:
        _log.info(
            "rules worker aggregate: %d organisation/territory-scope rules over all %d sites"
            "%s; the series, meter and site rules are left to the k/n workers",
            len(here.rules),
            len(here.sites),
            "" if here.rules else " (there are none: this worker has nothing to evaluate)",
        )
        return
    _log.log(
        logging.WARNING if names else logging.INFO,
        "rules worker %s: %d of %d sites, %d rules; %s",
        share,
        len(here.sites),
        len(cluster.sites),
        len(here.rules),
        f"{len(names)} organisation/territory-scope rules ({', '.join(names)}) are NOT"
        " evaluated here: run exactly one rules worker with --partition aggregate"
        if names
        else "no organisation/territory-scope rules in the cluster file",
    )


async def _build_alerts(state: NodeState, stack: contextlib.AsyncExitStack) -> Stage:
    """The alert service is the rules' `TransitionSink` in this node; without a rules stage
    here it consumes `{prefix}/_alerts/#` from the broker (QoS 1, acked after commit)."""
    from ecocluster.alerts.service import AlertService
    from ecocluster.alerts.stage import AlertStage

    service = AlertService(state.cluster, state.settings, clock=state.clock, registry=state.metrics)
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
    store = _store_of(state, "api")
    # A partitioned engine holds some sites only: the API then reads the broker itself.
    if state.engine is not None and worker_share(state.settings).whole:
        live = HotWindowLive(state.engine)
        state.readings.add(ReadingFeed(hub, {s.id: s.org for s in state.cluster.sites}))
    else:  # its own subscription: a client id of this worker's own (`…-p0of2-api-live`)
        share = worker_share(state.settings)
        own = state.settings.model_copy(
            update={"mqtt_client_id": share.named(state.settings.mqtt_client_id)}
        )
        live = MqttLive(state.cluster, own, store, hub)
    alerts = ServiceAlerts(state.alerts, state.settings) if state.alerts is not None else None
    deps = ApiDeps(
        cluster=state.cluster,
        settings=state.settings,
        store=store,
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
    return [spec for spec in STAGES if spec.name in wanted]


def _no_sites(share: WorkerShare, cluster: Cluster) -> str:
    return (
        f"--partition {share}: this worker owns none of the {len(cluster.sites)} sites of the"
        " cluster file (the hash gives it none): run fewer workers"
    )


def check_partition(
    specs: Sequence[StageSpec], settings: Settings, cluster: Cluster | None = None
) -> None:
    """Refuse a `--partition` the planned stages cannot honour (exit code 2)."""
    share = worker_share(settings)
    names = {spec.name for spec in specs}
    if share.whole:
        return
    if cluster is not None and share.partitioned and not share.sites(cluster):
        raise StagePlanError(_no_sites(share, cluster))
    if not names & {"ingest", "rules"}:
        raise StagePlanError(
            f"--partition {share}: only the ingest and rules stages are partitioned;"
            f" run {', '.join(sorted(names))} without it"
        )
    if share.aggregate and "ingest" in names:
        raise StagePlanError(
            "--partition aggregate is the rules worker of the organisation/territory rules:"
            " run it --only rules; ingest workers take k/n"
        )
    if "ingest" in names and settings.ingest_share_group:
        raise StagePlanError(
            f"--partition {share} and ingest_share_group {settings.ingest_share_group!r} both"
            " split ingest: use one (share group: MQTT 5 brokers; partitions: any broker)"
        )
    if "ingest" in names and not settings.influx_url:
        raise StagePlanError(
            f"--partition {share}: ingest workers must share one store, and DuckDB is one"
            " process's file: set ECOCLUSTER_INFLUX_URL"
        )
