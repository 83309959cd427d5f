"""Drive a scenario through the real node and score it: `evaluate(...)`.

One run per seed, each on a fresh node (`ecocluster.node.run_node`, the stages of
`ecocluster.stages.STAGES`: ingest with its real MQTT subscriber, validation, registers,
store and dead-letter log, then the rules stage with the cluster file's own rules) and a
fresh data dir, under its own topic prefix and client ids, so runs never see each other's
retained statuses or sessions. The simulator publishes the scenario in backfill mode at
QoS 1 (`drive.TrackedSimulation`); the rules tick every simulated minute in event time
(`drive.EventTimeDriver`). The store is DuckDB in a temp dir unless
`ECOCLUSTER_INFLUX_URL` is set (then InfluxDB, database `<influx_db>_eval`).

    summary = await evaluate(cluster, settings, EvalOptions(scenario="stress-mix", seeds=[1]))
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.local_broker import BrokerChoice, BrokerKind, open_broker
from ecocluster.node import NodeParts, NodeState, run_node
from ecocluster.sim import Scenario, SimConfig, SimPlan, build_plan, ground_truth, load_scenario

from .drive import (
    EventTimeDriver,
    PublishLog,
    SeriesRecorder,
    TrackedSimulation,
    TransitionRecorder,
)
from .ingest_checks import RunEvidence, SeriesTrace, check_fault, read_jsonl
from .score import DAY_MS, MIN_MS, Firing, RunScore, score_run
from .warmup import WARMUP_SEED_OFFSET, warm_up

__all__ = ["EvalOptions", "Progress", "RunResult", "evaluate"]

_log = logging.getLogger(__name__)
_READY_S = 30.0
_DRAIN_S = 60.0
_PROGRESS_S = 0.5
#: `on_progress(seed, phase, done)`: see `evaluate`.
Progress = Callable[[int, str, float | None], None]


@dataclass(frozen=True)
class EvalOptions:
    #: A shipped scenario's name, a scenario file, or a loaded `Scenario`.
    scenario: str | Path | Scenario
    seeds: Sequence[int] = (1,)
    #: Fault-free days fed to the rules engine before the scenario (0: none).
    warmup_days: float = 0.0
    #: Simulated time between two evaluations of the rules.
    tick_ms: int = MIN_MS
    #: How far (simulated) the publisher may run ahead of what ingest has handed on.
    lead_ms: int = 10 * MIN_MS
    #: Which broker (`broker.open_broker`): auto, or force a private mosquitto / amqtt.
    broker: BrokerKind = "auto"


@dataclass
class RunResult:
    """One seed's run: its score and the evidence the report and plots draw from."""

    score: RunScore
    truth: list[dict[str, Any]]
    series: dict[tuple[str, str, str], SeriesTrace]
    start_ms: int
    end_ms: int
    broker: str
    store: str
    messages: int = 0
    readings_accepted: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    warmup_readings: int = 0
    evidence: RunEvidence | None = None
    wall_s: float = 0.0
    #: What was measured as latency (until notifications are wired into the node).
    latency_label: str = "reading publish → firing transition"


async def evaluate(
    cluster: Cluster,
    settings: Settings,
    options: EvalOptions,
    *,
    on_run: Callable[[RunResult], None] | None = None,
    on_progress: Progress | None = None,
) -> list[RunResult]:
    """Run every seed of the scenario through the node; one `RunResult` per seed.
    `on_progress(seed, phase, done)` is called about every half second: phase `warm-up`
    (done None) or `scenario` (done = share of the simulated time published, 0 to 1)."""
    results = []
    async with open_broker(settings, options.broker) as broker:
        for seed in options.seeds:
            result = await _run_seed(cluster, settings, options, seed, broker, on_progress)
            results.append(result)
            if on_run is not None:
                on_run(result)
    return results


def _run_settings(settings: Settings, broker: BrokerChoice, data_dir: Path, token: str) -> Settings:
    update: dict[str, Any] = {
        "mqtt_url": SecretStr(broker.url),
        "mqtt_protocol": broker.protocol,
        "mqtt_client_id": f"ecocluster-eval-{token}",
        "topic_prefix": f"eval-{token}",
        "data_dir": data_dir,
    }
    if os.environ.get("ECOCLUSTER_INFLUX_URL"):
        # A database of its own, keeping raw points for ever: scenarios lie in the past,
        # and InfluxDB drops points older than the retention policy ("points beyond
        # retention policy dropped"), which would leave nothing stored.
        update["influx_db"] = f"{settings.influx_db}_eval"
        update["influx_retention_raw"] = timedelta(0)
    else:
        update["influx_url"] = None
    return settings.model_copy(update=update)


def _store_description(settings: Settings) -> str:
    if settings.influx_url:
        return f"InfluxDB, database {settings.influx_db!r}"
    return "DuckDB in a temp dir"


async def _run_seed(
    cluster: Cluster,
    settings: Settings,
    options: EvalOptions,
    seed: int,
    broker: BrokerChoice,
    on_progress: Progress | None,
) -> RunResult:
    report = on_progress or (lambda _seed, _phase, _done: None)
    started = time.monotonic()
    scenario, start_ms, end_ms = _scenario(options.scenario)
    plan = build_plan(cluster, seed=seed)
    truth = ground_truth(plan, start_ms, seed=seed, scenario=scenario)
    token = secrets.token_hex(4)
    with tempfile.TemporaryDirectory(prefix="ecocluster-eval-") as tmp:
        run_settings = _run_settings(settings, broker, Path(tmp), token)
        log = PublishLog(start_ms)
        transitions = TransitionRecorder()
        series = SeriesRecorder({(r["site"], r["meter"]) for r in truth})
        parts = NodeParts(
            clock=log.clock_ms, event_time=True, rules_tick_s=3600.0, observers=[transitions]
        )
        node_stop = asyncio.Event()
        ready: asyncio.Queue[NodeState] = asyncio.Queue()
        node = asyncio.create_task(
            run_node(
                cluster,
                run_settings,
                ("ingest", "rules"),
                parts=parts,
                stop=node_stop,
                on_ready=ready.put_nowait,
            ),
            name="eval.node",
        )
        result = RunResult(
            score=score_run([], [], [], meter_days=0.0),
            truth=truth,
            series=series.series,
            start_ms=start_ms,
            end_ms=end_ms,
            broker=broker.description,
            store=_store_description(run_settings),
        )
        try:
            state = await _wait_ready(node, ready)
            driver = EventTimeDriver(state.stages["rules"], start_ms, end_ms, options.tick_ms)  # type: ignore[arg-type]
            state.readings.sinks[:] = [series, driver]  # the driver feeds the rules stage
            if options.warmup_days > 0:
                assert state.engine is not None
                report(seed, "warm-up", None)
                result.warmup_readings = await asyncio.to_thread(
                    warm_up,
                    state.engine,
                    cluster,
                    start_ms - int(options.warmup_days * DAY_MS),
                    start_ms,
                    seed + WARMUP_SEED_OFFSET,
                    options.tick_ms,
                )
            config = _sim_config(run_settings, broker, scenario, start_ms, end_ms, token)
            sim = TrackedSimulation(plan, config, log=log, progress=driver, lead_ms=options.lead_ms)
            await _publish(sim, node, lambda: report(seed, "scenario", log.share(end_ms)))
            await _drain(driver, log, node)
            await driver.finish()
            transitions.closed = True
            ingest = state.stages["ingest"]
            result.readings_accepted = int(ingest.accepted)  # type: ignore[attr-defined]
            result.rejected_by_reason = dict(ingest.dead_letters.counts)  # type: ignore[attr-defined]
        finally:
            node_stop.set()
            await node
        result.messages = log.messages
        evidence = _evidence(run_settings, plan, log, series)
    result.evidence = evidence
    result.score = _score(cluster, truth, transitions, log, evidence, start_ms, end_ms, seed)
    result.score.scenario = scenario.name
    result.wall_s = time.monotonic() - started
    return result


def _scenario(which: str | Path | Scenario) -> tuple[Scenario, int, int]:
    """The scenario and its simulated time range (epoch ms)."""
    scenario = which if isinstance(which, Scenario) else load_scenario(which)
    if scenario.start is None or scenario.duration is None:
        raise ValueError(f"{which}: an evaluation needs a scenario with start and duration")
    start_ms = int(scenario.start.timestamp() * 1000)
    return scenario, start_ms, start_ms + int(scenario.duration.total_seconds() * 1000)


def _sim_config(
    settings: Settings,
    broker: BrokerChoice,
    scenario: Scenario,
    start_ms: int,
    end_ms: int,
    token: str,
) -> SimConfig:
    """A QoS 1 backfill of the scenario on the run's own topic prefix."""
    return SimConfig(
        broker=broker.url,
        prefix=settings.topic_prefix,
        qos=1,
        mode="shared",
        protocol=broker.protocol,
        start=datetime.fromtimestamp(start_ms / 1000, UTC),
        end=datetime.fromtimestamp(end_ms / 1000, UTC),
        scenario=scenario,
        client_id=f"ecocluster-eval-sim-{token}",
    )


def _evidence(
    settings: Settings, plan: SimPlan, log: PublishLog, series: SeriesRecorder
) -> RunEvidence:
    """What ingest left in the data dir, with receipt times turned into simulated time."""
    data = Path(settings.data_dir)
    return RunEvidence(
        prefix=settings.topic_prefix,
        max_future_ms=int(settings.max_future_s * 1000),
        max_payload_bytes=settings.max_payload_bytes,
        protocol=settings.mqtt_protocol,
        meter_index={(m.site, m.meter): m.index for m in plan.meters},
        injected=log.injected,
        data_due=log.data_due(),
        dead_letters=[
            replace(d, recv_ms=log.sim_ms_at(d.recv_ms))
            for d in read_jsonl(data / "dead-letters.jsonl")
        ],
        register_flags=read_jsonl(data / "register-flags.jsonl"),
        series=series.series,
    )


def _score(
    cluster: Cluster,
    truth: list[dict[str, Any]],
    transitions: TransitionRecorder,
    log: PublishLog,
    evidence: RunEvidence,
    start_ms: int,
    end_ms: int,
    seed: int,
) -> RunScore:
    firings = []
    for t, wall in transitions.seen:
        if t.state != "firing" or t.previous == "firing" or not start_ms <= t.at_ms <= end_ms:
            continue
        published = log.published_at(t.at_ms)
        firings.append(
            Firing(
                t.rule,
                t.labels.get("site", ""),
                t.labels.get("meter", ""),
                t.at_ms,
                None if published is None else max(0.0, wall - published),
            )
        )
    meter_days = len(cluster.meters) * (end_ms - start_ms) / DAY_MS
    score = score_run(cluster.rules, truth, firings, meter_days=meter_days, seed=seed)
    params = {r["id"]: r.get("params") or {} for r in truth}
    for fault in score.faults:
        check_fault(fault, params[fault.id], evidence)
    return score


async def _wait_ready(node: asyncio.Task[None], ready: asyncio.Queue[NodeState]) -> NodeState:
    waiter = asyncio.ensure_future(ready.get())
    done, _ = await asyncio.wait(
        {node, waiter}, timeout=_READY_S, return_when=asyncio.FIRST_COMPLETED
    )
    if waiter in done:
        return waiter.result()
    waiter.cancel()
    if node in done:
        node.result()  # the stage's own failure, one line
    raise TimeoutError(f"the evaluation node did not become ready in {_READY_S:.0f} s")


async def _publish(
    sim: TrackedSimulation, node: asyncio.Task[None], progress: Callable[[], None]
) -> None:
    """Run the simulator to the end of the scenario; a node failure stops it."""
    sim.start()
    last = 0.0
    try:
        while not sim.done:
            if node.done():
                node.result()
                raise RuntimeError("the evaluation node stopped while the scenario ran")
            if time.monotonic() - last >= _PROGRESS_S:
                last = time.monotonic()
                progress()
            await asyncio.sleep(0.05)
        progress()
    finally:
        sim.stop()
        await asyncio.to_thread(sim.join)


async def _drain(driver: EventTimeDriver, log: PublishLog, node: asyncio.Task[None]) -> None:
    """Until ingest has handed on the last published reading and then stayed quiet for
    half a second (the simulator's goodbye statuses), or `_DRAIN_S` passed."""
    deadline = time.monotonic() + _DRAIN_S
    while time.monotonic() < deadline and not node.done():
        caught_up = driver.newest_ms >= log.last_data_due_ms - driver.tick_ms
        if caught_up and time.monotonic() - driver.last_batch_wall > 0.5:
            return
        await asyncio.sleep(0.05)
    if not node.done():
        _log.warning(
            "ingest did not catch up with the simulator in %.0f s; scoring what arrived",
            _DRAIN_S,
        )
