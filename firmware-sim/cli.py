"""`ecocluster sim`: the simulator against any broker. Thin: parse, build, run."""

from __future__ import annotations

import logging
import os
import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ecocluster.core.cli_support import echo_err, load_cluster_or_exit
from ecocluster.core.durations import parse_duration
from ecocluster.core.mqtt import MqttTls
from ecocluster.core.settings import load_settings

from .plan import build_plan
from .runner import SimConfig, Simulation
from .scenario import ScenarioError, load_scenario

__all__ = ["register"]

_log = logging.getLogger(__name__)
_err = Console(stderr=True, soft_wrap=True)
_out = Console(soft_wrap=True)


def _when(text: str | None, zone: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO date or time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(zone))


def _intervals(values: list[str]) -> dict[str, timedelta]:
    out = {}
    for value in values:
        name, _, text = value.rpartition("=")
        try:
            out[name or "*"] = parse_duration(text)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    return out


def sim(
    config: Annotated[Path, typer.Option("--config", help="The cluster file (YAML).")],
    broker: Annotated[
        str | None, typer.Option(help="mqtt://[user:pass@]host:port (default: settings)")
    ] = None,
    meters_only: Annotated[
        list[str] | None, typer.Option("--meters-only", help="site/meter, site or meter ids")
    ] = None,
    speed: Annotated[float, typer.Option(help="Simulated seconds per second.")] = 1.0,
    duration: Annotated[
        str | None, typer.Option(help="Stop after this wall time (e.g. 90s, 1h).")
    ] = None,
    from_: Annotated[str | None, typer.Option("--from", help="Backfill start (ISO).")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Backfill end (ISO).")] = None,
    scenario: Annotated[
        str | None, typer.Option(help="Scenario YAML, or a shipped name (stress-mix)")
    ] = None,
    truth: Annotated[Path | None, typer.Option(help="Write ground-truth JSONL here.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="json or senml")] = "json",
    qos: Annotated[int, typer.Option(min=0, max=1)] = 0,
    seed: Annotated[int, typer.Option()] = 0,
    scale: Annotated[int, typer.Option(min=1, help="N copies of the territory's sites.")] = 1,
    prefix: Annotated[str, typer.Option(help="Topic prefix.")] = "eco",
    mode: Annotated[
        str, typer.Option(help="auto, per-meter (one connection each) or shared")
    ] = "auto",
    protocol: Annotated[str, typer.Option(help="MQTT protocol: 3.1.1 or 5")] = "3.1.1",
    interval: Annotated[
        list[str] | None, typer.Option(help="Reporting interval: 10s, or power_w=10s")
    ] = None,
) -> None:
    """Simulate the cluster's meters: real time, accelerated (--speed) or backfill."""
    cluster = load_cluster_or_exit(config)
    try:
        scen = load_scenario(scenario) if scenario else None
        only = [part for item in meters_only or [] for part in item.split(",")]
        plan = build_plan(
            cluster, seed=seed, meters_only=only, intervals=_intervals(interval or []), scale=scale
        )
    except (ScenarioError, ValueError) as exc:
        echo_err(exc)
        raise typer.Exit(2) from None
    zone = cluster.territory.timezone
    start, end = _when(from_, zone), _when(to, zone)
    if end is not None and start is None:
        raise typer.BadParameter("--to needs --from")
    if start is not None and end is None and scen is not None and scen.duration is not None:
        end = start + scen.duration  # a backfill of the scenario's own length
    backfill = start is not None and end is not None
    if mode == "auto":
        mode = "shared" if backfill or len(plan.meters) > 2000 else "per-meter"
    if mode not in ("shared", "per-meter") or protocol not in ("3.1.1", "5"):
        raise typer.BadParameter("--mode is auto|per-meter|shared, --protocol is 3.1.1|5")
    if fmt not in ("json", "senml"):
        raise typer.BadParameter("--format is json or senml")
    cfg = SimConfig(
        broker=broker or os.environ.get("ECOCLUSTER_MQTT_URL", "mqtt://127.0.0.1:1883"),
        prefix=prefix,
        fmt=fmt,  # type: ignore[arg-type]
        qos=qos,
        mode=mode,  # type: ignore[arg-type]
        protocol=protocol,  # type: ignore[arg-type]
        speed=speed,
        start=start,
        end=end,
        duration_s=parse_duration(duration).total_seconds() if duration else None,
        scenario=scen,
        truth_path=truth,
        tls=_tls_from_environment(),
    )
    simulation = Simulation(plan, cfg)
    _err.print(
        f"simulating {len(plan.meters)} meters ({len(plan.series)} series), mode {mode}, "
        f"{'backfill' if backfill else f'speed {speed:g}'}, {len(scen.faults) if scen else 0} "
        f"fault specs → {simulation.target}",
        markup=False,
        highlight=False,
    )

    def _stop(_signum: int, _frame: Any) -> None:
        simulation.stop()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        if backfill:
            with Progress(
                TextColumn("backfill"),
                BarColumn(),
                TextColumn("{task.percentage:>5.1f}%  {task.fields[msgs]} msgs"),
                TimeElapsedColumn(),
                console=_err,
            ) as bar:
                task = bar.add_task("sim", total=1.0, msgs=0)
                simulation.on_progress = lambda done, total: bar.update(
                    task, completed=done / max(total, 1), msgs=simulation.stats.messages
                )
                stats = simulation.run()
        else:
            stats = simulation.run()
    except ConnectionError as exc:
        _err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None
    lag = stats.lag_percentiles()
    _out.print(
        f"sent {stats.messages} messages ({stats.readings} readings, {stats.faults} faults) "
        f"in {stats.wall_s:.1f}s; lag p50 {lag['p50']:.3f}s p99 {lag['p99']:.3f}s",
        markup=False,
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("sim")(sim)


def _tls_from_environment() -> MqttTls | None:
    """The same TLS settings as the node (`ECOCLUSTER_MQTT_CA_FILE`, `_CERT_FILE`,
    `_KEY_FILE`), so a simulator reaches a locked-down broker as ingest does."""
    try:
        settings = load_settings()
    except ValueError:
        return None
    tls = MqttTls.from_settings(settings)
    return tls if tls.ca_file or tls.cert_file else None
