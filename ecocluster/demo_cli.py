"""`ecocluster demo`: everything embedded; see `ecocluster.demo`."""

from __future__ import annotations

import asyncio
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from ecocluster.core.cli_support import load_config_or_exit

if TYPE_CHECKING:
    from ecocluster.demo import DemoSummary
    from ecocluster.rules.transitions import Transition

_out = Console(soft_wrap=True)
_err = Console(stderr=True, soft_wrap=True)
DEFAULT_CONFIG = Path(__file__).with_name("cluster.example.yaml")


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
    cluster, settings = load_config_or_exit(config)
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

    def show(transition: Transition) -> None:
        if transition.state not in ("firing", "resolved"):
            return
        labels = transition.labels
        where = "/".join(labels[k] for k in ("site", "meter", "quantity") if k in labels)
        _err.print(
            f"  alert {transition.state:<8} {transition.severity:<8} {transition.rule}: "
            f"{where} value={transition.value:g}",
            markup=False,
            highlight=False,
        )

    async def main() -> DemoSummary:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_demo(cluster, settings, options, on_alert=show, stop=stop)

    summary = asyncio.run(main())
    _print_summary(summary)


def _print_summary(s: DemoSummary) -> None:
    table = Table(title="ecocluster demo", show_header=False)
    for name, value in (
        ("messages sent", s.messages_sent),
        ("faults injected", s.faults_injected),
        ("readings stored", s.readings_stored),
        ("readings rejected", s.readings_rejected),
        ("alerts raised", s.alerts_raised),
        ("wall time", f"{s.wall_s:.1f} s"),
    ):
        table.add_row(name, str(value))
    _out.print(table)
    # Plain lines too, for scripts and tests to read.
    lines = [
        f"readings stored: {s.readings_stored}; readings rejected: {s.readings_rejected}; "
        f"alerts raised: {s.alerts_raised}"
    ]
    if s.rejected_by_reason:
        reasons = sorted(s.rejected_by_reason.items())
        lines.append("rejected by reason: " + ", ".join(f"{k}={v}" for k, v in reasons))
    if s.alerts_by_rule:
        rules = sorted(s.alerts_by_rule.items())
        lines.append("alerts by rule: " + ", ".join(f"{k}={v}" for k, v in rules))
    for line in lines:
        _out.print(line, markup=False, highlight=False)
