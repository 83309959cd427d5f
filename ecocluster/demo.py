"""`ecocluster demo`: the whole system on one machine with nothing to install.

A local broker (a `mosquitto` found on the PATH, else the embedded amqtt), the DuckDB store
in a data dir, the simulator publishing the example territory at an accelerated pace with a
fault scenario, and every stage of a normal node: the same composition as `ecocluster run`
(`ecocluster.stages`, `ecocluster.node`) with embedded parts swapped in (`NodeParts`).

Notifications are real but stay on this machine: every contact's channels are replaced by a
loopback webhook (`demo_notify`), which Apprise delivers to and which writes
`notifications.jsonl`; `--notify URL` adds real Apprise targets.

Time is simulated: readings carry simulated timestamps starting a week ago, the rules run on
event time and the alert service on the same clock, so group waits and escalations play out
at the simulation's pace. The scenario's faults are moved forward so that the first one
starts a few simulated minutes in (`lead_in`): the first alert appears within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.demo_notify import LocalNotificationLog, with_demo_channels
from ecocluster.local_broker import BrokerChoice, BrokerKind, open_broker
from ecocluster.node import NodeParts, NodeState, run_node
from ecocluster.sim import SimConfig, Simulation, build_plan, load_scenario
from ecocluster.sim.scenario import Scenario

if TYPE_CHECKING:
    from ecocluster.alerts.records import AlertRecord
    from ecocluster.alerts.service import AlertService
    from ecocluster.ingest.stage import IngestStage

__all__ = ["DemoOptions", "DemoReady", "DemoSummary", "run_demo"]

_log = logging.getLogger(__name__)
_DRAIN_S = 10.0
_DAY_MS = 86_400_000
_ALERT_POLL_S = 0.3


@dataclass(frozen=True)
class DemoOptions:
    data_dir: Path
    duration_s: float | None = 60.0
    speed: float = 720.0
    scenario: str | None = "bad-winter-week"
    seed: int = 1
    tick_s: float = 0.5
    #: Real Apprise URLs to notify besides the local log (`--notify`).
    notify: tuple[str, ...] = ()
    #: The scenario's first fault starts this far into the run.
    lead_in: timedelta = timedelta(minutes=3)
    broker: BrokerKind = "auto"


@dataclass(frozen=True)
class DemoReady:
    """What the user needs once everything runs."""

    broker: str
    notifications: Path
    dashboard_url: str | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    #: The citizens' page (no token), when the node serves it (`public_enabled`).
    public_url: str | None = None


@dataclass
class DemoSummary:
    messages_sent: int = 0
    faults_injected: int = 0
    readings_stored: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    alerts_fired: int = 0
    alerts_resolved: int = 0
    alerts_acknowledged: int = 0
    alerts_by_rule: Counter[str] = field(default_factory=Counter)
    notifications_by_channel: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    store_path: Path | None = None
    broker: str = ""

    @property
    def readings_rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    @property
    def notifications_sent(self) -> int:
        return sum(self.notifications_by_channel.values())


async def run_demo(
    cluster: Cluster,
    settings: Settings,
    options: DemoOptions,
    *,
    on_alert: Callable[[AlertRecord], None] | None = None,
    on_ready: Callable[[DemoReady], None] | None = None,
    stop: asyncio.Event | None = None,
) -> DemoSummary:
    """Run the node's own composition with embedded parts until `duration_s` passes (or
    `stop` is set), then stop the simulator, drain, and summarise."""
    stop = stop or asyncio.Event()
    started = time.monotonic()
    summary = DemoSummary(store_path=options.data_dir)
    notifications = LocalNotificationLog(options.data_dir / "notifications.jsonl")
    async with (
        open_broker(settings, options.broker, use_configured=False) as broker,
        notifications.serving(),
    ):
        summary.broker = broker.description
        sim_start_ms = (time.time_ns() // 1_000_000 // _DAY_MS - 7) * _DAY_MS
        simulation = _simulation(cluster, settings, options, broker, sim_start_ms)

        def simulated_now_ms() -> int:
            # Readings carry simulated time: "from the future" means ahead of the simulation.
            return max(sim_start_ms, simulation.sim_now_ms() or sim_start_ms)

        parts = NodeParts(clock=simulated_now_ms, event_time=True, rules_tick_s=options.tick_s)
        node_settings = _node_settings(settings, options, broker)
        node_cluster = with_demo_channels(cluster, notifications, options.notify)
        node_stop = asyncio.Event()
        ready: asyncio.Queue[NodeState] = asyncio.Queue()
        node = asyncio.create_task(
            run_node(
                node_cluster,
                node_settings,
                None,
                parts=parts,
                stop=node_stop,
                on_ready=ready.put_nowait,
            ),
            name="demo.node",
        )
        console: asyncio.Task[None] | None = None
        state: NodeState | None = None
        try:
            state = await _wait_ready(node, ready)
            if on_ready is not None:
                url = node_settings.public_base_url
                on_ready(
                    DemoReady(
                        broker.description,
                        notifications.path,
                        f"{url}/dashboard",
                        _tokens(state),
                        public_url=f"{url}/public" if node_settings.public_enabled else None,
                    )
                )
            if state.alerts is not None and on_alert is not None:
                console = asyncio.create_task(_show_alerts(state.alerts, on_alert))
            simulation.start()
            await _until_done(simulation, stop, options.duration_s)
            ingest: IngestStage = state.stages["ingest"]  # type: ignore[assignment]
            await _drain(ingest)
            await state.stages["rules"].tick()  # type: ignore[attr-defined]
            if state.alerts is not None:
                await state.alerts.settle()
            await _summarise(summary, state, options.notify)
        finally:
            simulation.stop()
            if console is not None:
                console.cancel()
            node_stop.set()
            await node
            await asyncio.to_thread(simulation.join, 10)
    if state is not None:  # counted once the node has stopped: its last flush included
        summary.readings_stored = state.stages["ingest"].accepted  # type: ignore[attr-defined]
        summary.rejected_by_reason = _rejections(state.metrics)
    summary.wall_s = time.monotonic() - started
    summary.messages_sent = simulation.stats.messages
    summary.faults_injected = simulation.stats.faults
    return summary


def _node_settings(settings: Settings, options: DemoOptions, broker: BrokerChoice) -> Settings:
    api_port = _free_port()
    return settings.model_copy(
        update={
            "api_host": "127.0.0.1",
            "api_port": api_port,
            # ack links in notifications point at this demo's API
            "public_base_url": f"http://127.0.0.1:{api_port}",
            "mqtt_url": SecretStr(broker.url),
            "mqtt_protocol": broker.protocol,
            "mqtt_client_id": "ecocluster-demo",
            "influx_url": None,
            "alert_db_url": None,
            "data_dir": options.data_dir,
        }
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tokens(state: NodeState) -> dict[str, str]:
    """One ready-to-click dashboard link per role, each with a fresh token held by a
    contact of the example territory who has that role (so acks are in their scope)."""
    if state.api is None:
        return {}
    base = state.settings.public_base_url
    store = state.api.token_store
    by_role = {role: c for c in reversed(state.cluster.contacts) for role in c.roles}
    grants: list[tuple[str, str | None, str | None]] = [
        ("coordinator", None, getattr(by_role.get("cluster_coordinator"), "id", None)),
        ("viewer", None, None),
    ]
    for role in ("facility_manager", "emergency_coordinator"):
        holder = by_role.get(role)
        if holder is not None:
            grants.append((role, holder.org, holder.id))
    links = {}
    for role, org, contact in grants:
        issued = store.create(role=role, org=org, name=f"demo {role}", contact=contact)
        links[role] = f"{base}/dashboard#token={issued.token}"
    return links


def _simulation(
    cluster: Cluster,
    settings: Settings,
    options: DemoOptions,
    broker: BrokerChoice,
    sim_start_ms: int,
) -> Simulation:
    scenario = load_scenario(options.scenario) if options.scenario else None
    if scenario is not None:
        scenario = with_lead_in(scenario, options.lead_in)
    return Simulation(
        build_plan(cluster, seed=options.seed),
        SimConfig(
            broker=broker.url,
            prefix=settings.topic_prefix,
            qos=1,
            mode="shared",
            protocol=broker.protocol,
            speed=options.speed,
            start=datetime.fromtimestamp(sim_start_ms / 1000, UTC),
            scenario=scenario,
        ),
    )


#: Fault kinds a rule sees within minutes (a leak needs a night): the demo's lead-in puts
#: the first of these a few simulated minutes into the run.
_QUICK_KINDS = frozenset({"dropout", "overload", "burst", "spike", "air_episode", "stuck"})


def with_lead_in(scenario: Scenario, lead_in: timedelta) -> Scenario:
    """The scenario moved earlier so that its first quickly visible fault starts `lead_in`
    into the run; the spacing of the faults is kept, and a fault that would now start before
    the run starts with it (what is left of it)."""
    relative = [(f.kind, f.at) for f in scenario.faults if isinstance(f.at, timedelta)]
    quick = [at for kind, at in relative if kind in _QUICK_KINDS] or [at for _, at in relative]
    if not quick or min(quick) <= lead_in:
        return scenario
    shift = min(quick) - lead_in
    faults = []
    for fault in scenario.faults:
        if not isinstance(fault.at, timedelta):
            faults.append(fault)
            continue
        at, end = fault.at - shift, fault.at + fault.duration - shift
        if end <= timedelta(0):
            continue  # over before the run starts
        start = max(at, timedelta(0))
        faults.append(fault.model_copy(update={"at": start, "duration": end - start}))
    duration = scenario.duration - shift if scenario.duration is not None else None
    return scenario.model_copy(update={"faults": faults, "duration": duration})


async def _wait_ready(node: asyncio.Task[None], ready: asyncio.Queue[NodeState]) -> NodeState:
    """The node's state once every stage serves; the node's own error if it fails first."""
    waiter = asyncio.ensure_future(ready.get())
    done, _ = await asyncio.wait({node, waiter}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if waiter in done:
        return waiter.result()
    waiter.cancel()
    if node in done:
        node.result()  # raises the stage's failure
    raise TimeoutError("the demo node did not become ready in 30 s")


async def _until_done(
    simulation: Simulation, stop: asyncio.Event, duration_s: float | None
) -> None:
    """Until the duration has passed, the user stops the demo, or the simulation fails."""
    deadline = None if duration_s is None else time.monotonic() + duration_s
    while not stop.is_set() and not simulation.done:
        if deadline is not None and time.monotonic() >= deadline:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)


async def _drain(ingest: IngestStage) -> None:
    """Give ingest a moment to store what the broker still holds for it: until its count
    of stored readings has not moved for a second (or `_DRAIN_S` passed)."""
    deadline = time.monotonic() + _DRAIN_S
    last, still = -1, 0
    while time.monotonic() < deadline:
        accepted = ingest.accepted
        still = still + 1 if accepted == last else 0
        if still >= 5:
            return
        last = accepted
        await asyncio.sleep(0.2)


async def _show_alerts(service: AlertService, show: Callable[[AlertRecord], None]) -> None:
    """Each alert once when it fires and once when it resolves, as the service stores it
    (with its short code), whatever the notifications did."""
    seen: dict[int, str] = {}
    while True:
        for alert in reversed(await service.list_alerts(limit=500)):
            if seen.get(alert.id) != alert.state:
                seen[alert.id] = alert.state
                show(alert)
        await asyncio.sleep(_ALERT_POLL_S)


async def _summarise(summary: DemoSummary, state: NodeState, extra: tuple[str, ...]) -> None:
    if state.alerts is None:
        return
    alerts = await state.alerts.list_alerts(limit=100_000)
    summary.alerts_fired = len(alerts)
    summary.alerts_resolved = sum(a.state == "resolved" for a in alerts)
    summary.alerts_acknowledged = sum(a.acknowledged for a in alerts)
    summary.alerts_by_rule.update(a.rule for a in alerts)
    for alert in alerts:
        detail = await state.alerts.get_alert(alert.id)
        for sent in detail.notifications:
            if sent.status == "sent":
                summary.notifications_by_channel[_channel_name(sent.channel, extra)] += 1


def _channel_name(index: int, extra: tuple[str, ...]) -> str:
    """Channel 0 of every demo contact is the local log; then the `--notify` URLs, named by
    their scheme only (a URL may carry credentials)."""
    if index == 0 or index > len(extra):
        return "local log"
    return extra[index - 1].split("://", 1)[0] + "://"


def _rejections(registry: CollectorRegistry) -> dict[str, int]:
    found: dict[str, int] = {}
    for family in registry.collect():
        if family.name != "ecocluster_ingest_readings_rejected":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.value:
                found[sample.labels["reason"]] = int(sample.value)
    return found
