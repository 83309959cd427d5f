"""`ecocluster demo`: the whole pipeline on one machine with nothing to install.

An embedded MQTT broker (amqtt, MQTT 3.1.1), the DuckDB store in a data dir, the
simulator publishing the example territory at an accelerated pace with a fault scenario,
and the ingest and rules stages of a normal node, wired as `ecocluster run` wires them.
A composition root: it may import every stage.

The simulated clock starts a week ago (readings carry simulated timestamps), so the rule
engine runs on event time: a 12-hour scenario at `speed=720` plays in one minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.core.transitions import QueueSink
from ecocluster.embedded_broker import EmbeddedBroker
from ecocluster.ingest.stage import IngestStage
from ecocluster.rules.stage import RulesStage
from ecocluster.rules.transitions import Transition
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
    """Run the embedded pipeline until `duration_s` passes (or `stop` is set)."""
    stop = stop or asyncio.Event()
    broker = EmbeddedBroker()
    await broker.start()
    demo_settings = settings.model_copy(
        update={
            "mqtt_url": SecretStr(broker.url),
            "mqtt_protocol": "3.1.1",
            "mqtt_client_id": "ecocluster-demo-ingest",
            "influx_url": None,
            "data_dir": options.data_dir,
        }
    )
    alerts: asyncio.Queue[Transition] = asyncio.Queue()
    rules = RulesStage(cluster, sinks=[QueueSink(alerts)], tick_s=options.tick_s, event_time=True)
    simulation: Simulation | None = None

    def simulated_now_ms() -> int:
        # Readings carry simulated time: "from the future" means ahead of the simulation.
        now = simulation.sim_now_ms() if simulation is not None else None
        return now if now is not None else time.time_ns() // 1_000_000

    ingest = IngestStage(cluster, demo_settings, sinks=[rules], clock=simulated_now_ms)
    summary = DemoSummary(store_path=options.data_dir)
    started = time.monotonic()
    try:
        async with asyncio.TaskGroup() as tasks:
            ready_ingest, ready_rules = asyncio.Event(), asyncio.Event()
            tasks.create_task(ingest.run(ready_ingest), name="demo.ingest")
            tasks.create_task(rules.run(ready_rules), name="demo.rules")
            tasks.create_task(_watch_alerts(alerts, summary, on_alert), name="demo.alerts")
            await asyncio.wait_for(ready_ingest.wait(), 30)
            plan = build_plan(cluster, seed=options.seed)
            scenario = load_scenario(options.scenario) if options.scenario else None
            simulation = Simulation(
                plan,
                SimConfig(
                    broker=broker.url,
                    prefix=settings.topic_prefix,
                    qos=1,
                    mode="shared",
                    protocol="3.1.1",
                    speed=options.speed,
                    scenario=scenario,
                ),
            )
            simulation.start()
            await _until_done(simulation, stop, options.duration_s)
            await _drain(ingest)
            await rules.tick()
            # Stopping the simulator takes its devices offline; that is the demo ending,
            # not an incident, so the summary is closed first.
            summary.closed = True
            simulation.stop()
            await asyncio.to_thread(simulation.join)
            raise _Done
    except* _Done:
        pass
    finally:
        if simulation is not None:
            simulation.stop()
        await broker.stop()
    summary.wall_s = time.monotonic() - started
    if simulation is not None:
        stats = simulation.stats
        summary.messages_sent = stats.messages
        summary.faults_injected = stats.faults
    summary.readings_stored = ingest.accepted
    summary.rejected_by_reason = _rejections(ingest)
    return summary


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


async def _watch_alerts(
    queue: asyncio.Queue[Transition],
    summary: DemoSummary,
    on_alert: Callable[[Transition], None] | None,
) -> None:
    while True:
        transition = await queue.get()
        if summary.closed:
            continue
        if transition.state == "firing":
            summary.alerts_raised += 1
            summary.alerts_by_rule[transition.rule] += 1
        if on_alert is not None:
            on_alert(transition)


def _rejections(ingest: IngestStage) -> dict[str, int]:
    found: dict[str, int] = {}
    for family in ingest.metrics.registry.collect():
        if family.name != "ecocluster_ingest_readings_rejected":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.value:
                found[sample.labels["reason"]] = int(sample.value)
    return found


class _Done(Exception):
    """Ends the demo's TaskGroup, cancelling the stages (each flushes on its way out)."""
