"""`ecocluster demo`: the whole pipeline on one machine with nothing to install.

An embedded MQTT broker (amqtt, MQTT 3.1.1), the DuckDB store in a data dir, the
simulator publishing the example territory at an accelerated pace with a fault scenario,
and every stage of a normal node: the same composition as `ecocluster run`
(`ecocluster.stages`, `ecocluster.node`), with embedded parts swapped in (`NodeParts`).

The simulated clock starts a week ago (readings carry simulated timestamps), so the rule
engine runs on event time: a 12-hour scenario at `speed=720` plays in one minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.core.transitions import Transition
from ecocluster.embedded_broker import EmbeddedBroker
from ecocluster.ingest.stage import IngestStage
from ecocluster.node import NodeParts, NodeState, run_node
from ecocluster.sim import SimConfig, Simulation, build_plan, load_scenario

__all__ = ["DemoOptions", "DemoSummary", "run_demo"]

_log = logging.getLogger(__name__)
_DRAIN_S = 10.0


@dataclass(frozen=True)
class DemoOptions:
    data_dir: Path
    duration_s: float | None = 60.0
    speed: float = 720.0
    scenario: str | None = "stress-mix"
    seed: int = 1
    tick_s: float = 0.5


@dataclass
class DemoSummary:
    messages_sent: int = 0
    faults_injected: int = 0
    readings_stored: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    alerts_raised: int = 0
    alerts_by_rule: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    store_path: Path | None = None
    #: Set when the demo winds down: later transitions are not counted.
    closed: bool = False

    @property
    def readings_rejected(self) -> int:
        return sum(self.rejected_by_reason.values())


async def run_demo(
    cluster: Cluster,
    settings: Settings,
    options: DemoOptions,
    *,
    on_alert: Callable[[Transition], None] | None = None,
    stop: asyncio.Event | None = None,
) -> DemoSummary:
    """Run the node's own composition with embedded parts until `duration_s` passes (or
    `stop` is set), then stop the simulator, drain, and summarise."""
    stop = stop or asyncio.Event()
    broker = EmbeddedBroker()
    await broker.start()
    demo_settings = settings.model_copy(
        update={
            "mqtt_url": SecretStr(broker.url),
            "mqtt_protocol": "3.1.1",
            "mqtt_client_id": "ecocluster-demo",
            "influx_url": None,
            "data_dir": options.data_dir,
        }
    )
    summary = DemoSummary(store_path=options.data_dir)
    simulation: Simulation | None = None

    def simulated_now_ms() -> int:
        # Readings carry simulated time: "from the future" means ahead of the simulation.
        now = simulation.sim_now_ms() if simulation is not None else None
        return now if now is not None else time.time_ns() // 1_000_000

    console = _AlertCounter(summary, on_alert)
    parts = NodeParts(
        clock=simulated_now_ms, event_time=True, rules_tick_s=options.tick_s, observers=[console]
    )
    node_stop = asyncio.Event()
    ready: asyncio.Queue[NodeState] = asyncio.Queue()
    node = asyncio.create_task(
        run_node(
            cluster, demo_settings, None, parts=parts, stop=node_stop, on_ready=ready.put_nowait
        )
    )
    started = time.monotonic()
    state: NodeState | None = None
    try:
        state = await _wait_ready(node, ready)
        simulation = _start_simulation(cluster, settings, options, broker.url)
        await _until_done(simulation, stop, options.duration_s)
        ingest = state.stages["ingest"]
        await _drain(ingest)  # type: ignore[arg-type]
        rules = state.stages["rules"]
        await rules.tick()  # type: ignore[attr-defined]
        # Stopping the simulator takes its devices offline; that is the demo ending,
        # not an incident, so the summary is closed first.
        summary.closed = True
        simulation.stop()
        await asyncio.to_thread(simulation.join)
    finally:
        if simulation is not None:
            simulation.stop()
        node_stop.set()
        await node
        await broker.stop()
    summary.wall_s = time.monotonic() - started
    if simulation is not None:
        summary.messages_sent = simulation.stats.messages
        summary.faults_injected = simulation.stats.faults
    if state is not None:
        summary.readings_stored = state.stages["ingest"].accepted  # type: ignore[attr-defined]
        summary.rejected_by_reason = _rejections(state.metrics)
    return summary


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


def _start_simulation(
    cluster: Cluster, settings: Settings, options: DemoOptions, broker_url: str
) -> Simulation:
    plan = build_plan(cluster, seed=options.seed)
    scenario = load_scenario(options.scenario) if options.scenario else None
    simulation = Simulation(
        plan,
        SimConfig(
            broker=broker_url,
            prefix=settings.topic_prefix,
            qos=1,
            mode="shared",
            protocol="3.1.1",
            speed=options.speed,
            scenario=scenario,
        ),
    )
    simulation.start()
    return simulation


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


class _AlertCounter:
    """A `TransitionSink` observer: counts firing transitions and shows each one."""

    def __init__(self, summary: DemoSummary, on_alert: Callable[[Transition], None] | None) -> None:
        self.summary = summary
        self.on_alert = on_alert

    async def on_transitions(self, transitions: Sequence[Transition]) -> None:
        for transition in transitions:
            if self.summary.closed:
                return
            if transition.state == "firing":
                self.summary.alerts_raised += 1
                self.summary.alerts_by_rule[transition.rule] += 1
            if self.on_alert is not None:
                self.on_alert(transition)


def _rejections(registry: CollectorRegistry) -> dict[str, int]:
    found: dict[str, int] = {}
    for family in registry.collect():
        if family.name != "ecocluster_ingest_readings_rejected":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.value:
                found[sample.labels["reason"]] = int(sample.value)
    return found
