"""`ecocluster demo`: everything embedded; see `ecocluster.demo`."""

from __future__ import annotations

import asyncio
import signal
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ecocluster.registry import ConfigError, load_cluster
from ecocluster.settings import load_settings

_out = Console(soft_wrap=True)
_err = Console(stderr=True, soft_wrap=True)
DEFAULT_CONFIG = Path("deploy/cluster.example.yaml")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    duration: Annotated[
        float | None,
        typer.Option(help="Stop after this many seconds and print a summary (default: Ctrl-C)."),
    ] = None,
    config: Annotated[Path, typer.Option("--config", help="The cluster file.")] = DEFAULT_CONFIG,
    speed: Annotated[float, typer.Option(help="Simulated seconds per second.")] = 720.0,
    scenario: Annotated[
        str, typer.Option(help="Fault scenario: stress-mix, bad-winter-week, quiet-week, a file.")
    ] = "stress-mix",
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 1,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where the DuckDB store goes (default: a temp dir).")
    ] = None,
) -> None:
    """Everything embedded: MQTT broker, DuckDB store, simulator, ingest and rules."""
    from ecocluster.demo import DemoOptions, run_demo

    if not config.is_file():
        _err.print(f"{config}: not found; run from the repository root or pass --config FILE")
        raise typer.Exit(2)
    try:
        cluster = load_cluster(config)
        settings = load_settings(cluster.settings)
    except ConfigError as exc:
        for issue in exc.issues:
            _err.print(str(issue), markup=False, highlight=False)
        raise typer.Exit(1) from None
    except ValueError as exc:
        _err.print(f"{config}: settings: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    target = data_dir or Path(tempfile.mkdtemp(prefix="ecocluster-demo-"))
    options = DemoOptions(
        data_dir=target, duration_s=duration, speed=speed, scenario=scenario, seed=seed
    )
    _err.print(
        f"demo: {cluster.summary()}; scenario {scenario} at {speed:g}× "
        f"({'until Ctrl-C' if duration is None else f'{duration:g} s'}); store in {target}",
        markup=False,
        highlight=False,
    )

    def show(transition: object) -> None:
        state = getattr(transition, "state", "")
        if state in ("firing", "resolved"):
            labels = getattr(transition, "labels", {})
            where = "/".join(labels[k] for k in ("site", "meter", "quantity") if k in labels)
            _err.print(
                f"  alert {state:<8} {getattr(transition, 'severity', ''):<8} "
                f"{getattr(transition, 'rule', '')}: {where} value={getattr(transition, 'value', '')}",
                markup=False,
                highlight=False,
            )

    async def main() -> object:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_demo(cluster, settings, options, on_alert=show, stop=stop)

    summary = asyncio.run(main())
    _print_summary(summary)


def _print_summary(summary: object) -> None:
    s = summary
    table = Table(title="ecocluster demo", show_header=False)
    rows = [
        ("messages sent", getattr(s, "messages_sent", 0)),
        ("readings sent", getattr(s, "readings_sent", 0)),
        ("faults injected", getattr(s, "faults_injected", 0)),
        ("readings stored", getattr(s, "readings_stored", 0)),
        ("readings rejected", getattr(s, "readings_rejected", 0)),
        ("alerts raised", getattr(s, "alerts_raised", 0)),
        ("wall time", f"{getattr(s, 'wall_s', 0.0):.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    _out.print(table)
    rejected = getattr(s, "rejected_by_reason", {})
    by_rule = getattr(s, "alerts_by_rule", {})
    # One plain line each, for scripts and tests to read.
    _out.print(
        f"readings stored: {getattr(s, 'readings_stored', 0)}; "
        f"readings rejected: {getattr(s, 'readings_rejected', 0)}; "
        f"alerts raised: {getattr(s, 'alerts_raised', 0)}",
        markup=False,
        highlight=False,
    )
    if rejected:
        _out.print(
            "rejected by reason: " + ", ".join(f"{k}={v}" for k, v in sorted(rejected.items())),
            markup=False,
            highlight=False,
        )
    if by_rule:
        _out.print(
            "alerts by rule: " + ", ".join(f"{k}={v}" for k, v in sorted(by_rule.items())),
            markup=False,
            highlight=False,
        )
