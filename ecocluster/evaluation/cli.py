"""`ecocluster eval`: score the pipeline against the simulator's ground truth.

ecocluster eval --scenario stress-mix --seeds 1-5 --out eval-out
ecocluster eval --scenario my-scenario.yaml --config cluster.yml --warmup-days 21
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import BarColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from ecocluster.core.cli_support import echo_err, fail, load_config_or_exit
from ecocluster.core.errors import EcoclusterError, describe
from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.core.text import printable

if TYPE_CHECKING:
    from .run import EvalOptions

__all__ = ["parse_seeds", "register"]

_EXAMPLE = Path(__file__).resolve().parent.parent / "cluster.example.yaml"
_SEEDS = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
_MAX_SEEDS = 1000
#: Loggers kept at WARNING unless --verbose: connections, readiness, font caches.
_LIBRARIES = ("ecocluster", "amqtt", "transitions", "matplotlib", "paho")
#: Loggers whose warnings are the injected faults themselves (the table reports them).
_FAULT_NOISE = ("ecocluster.ingest.deadletter",)


def parse_seeds(text: str) -> list[int]:
    """`1-5`, `1,3,7`, `1-3,9` → the seeds in order, each once. ValueError if malformed."""
    seeds: list[int] = []
    for part in text.split(","):
        match = _SEEDS.match(part)
        if match is None:
            raise ValueError(f"{part.strip()!r} is not a seed or a range like 1-5")
        lo = int(match.group(1))
        hi = int(match.group(2) or lo)
        if hi < lo:
            raise ValueError(f"range {lo}-{hi} runs backwards")
        if hi - lo >= _MAX_SEEDS:
            raise ValueError(f"range {lo}-{hi} has more than {_MAX_SEEDS} seeds")
        seeds += [s for s in range(lo, hi + 1) if s not in seeds]
    if len(seeds) > _MAX_SEEDS:
        raise ValueError(f"more than {_MAX_SEEDS} seeds")
    return seeds


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)


def eval_command(
    scenario: Annotated[
        str, typer.Option("--scenario", help="A shipped scenario's name or a scenario file.")
    ],
    seeds: Annotated[str, typer.Option("--seeds", help="Seeds: 1-5, 1,3,7 or 1-3,9.")] = "1",
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Cluster file whose rules are scored (default: example)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Where the CSV, Markdown and PNGs go.")] = Path(
        "eval-out"
    ),
    warmup_days: Annotated[
        float,
        typer.Option(
            "--warmup-days",
            min=0.0,
            max=365.0,
            help="Fault-free days (another seed) fed to the rules engine first.",
        ),
    ] = 0.0,
    broker: Annotated[
        str,
        typer.Option(
            "--broker",
            help="auto (ECOCLUSTER_MQTT_URL if set, else a private mosquitto, else amqtt), "
            "mosquitto or amqtt.",
        ),
    ] = "auto",
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Draw the PNGs.")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", help="Keep the ingest warnings.")] = False,
) -> None:
    """Run a scenario through the real pipeline (broker, ingest, store, rules) with the
    cluster file's own rules and score the alerts against the simulator's ground truth."""
    from ecocluster.rules.catalog import parse_rules
    from ecocluster.sim import ScenarioError, load_scenario

    if broker not in ("auto", "mosquitto", "amqtt"):
        fail("--broker", f"{broker!r}: one of auto, mosquitto, amqtt")
    try:
        seed_list = parse_seeds(seeds)
    except ValueError as exc:
        fail("--seeds", str(exc))
    path = config or _EXAMPLE
    if not path.is_file():
        fail("--config", f"{path}: not found")
    cluster, settings = load_config_or_exit(path, parse_rules)
    try:
        scen = load_scenario(scenario)
    except ScenarioError as exc:
        fail("--scenario", str(exc))
    if scen.start is None or scen.duration is None:
        fail("--scenario", f"{scenario}: needs a start and a duration to be scored")
    if not verbose:
        for name in _LIBRARIES:
            logging.getLogger(name).setLevel(logging.WARNING)
        for name in _FAULT_NOISE:
            logging.getLogger(name).setLevel(logging.ERROR)
    console = Console(soft_wrap=False, width=None if Console().is_terminal else 200)
    from ecocluster.local_broker import BrokerKind

    from .run import EvalOptions

    options = EvalOptions(
        scenario=scen,
        seeds=seed_list,
        warmup_days=warmup_days,
        broker=cast(BrokerKind, broker),
    )
    _run(cluster, options, settings, path, out, plots, console)


def _run(
    cluster: Cluster,
    options: EvalOptions,
    settings: Settings,
    config: Path,
    out: Path,
    plots: bool,
    console: Console,
) -> None:
    from .report import Header, print_report, write_reports
    from .run import RunResult, evaluate
    from .score import summarise

    def progress(r: RunResult) -> None:
        refused = sum(r.rejected_by_reason.values())
        console.print(
            printable(
                f"seed {r.score.seed}: {r.messages:,} messages published, "
                f"{r.readings_accepted:,} readings stored, {refused:,} refused, "
                f"{len(r.score.firings)} firings, {r.wall_s:.0f} s"
            )
        )
        if r.rejected_by_reason.get("store_rejected"):
            console.print(
                f"[red]seed {r.score.seed}: the store refused "
                f"{r.rejected_by_reason['store_rejected']:,} readings (see --verbose)[/red]"
            )

    t0 = time.monotonic()
    warmup_days = options.warmup_days
    try:
        with _ProgressView(console, warmup_days) as view:
            results = asyncio.run(
                evaluate(cluster, settings, options, on_run=progress, on_progress=view.update)
            )
    except (EcoclusterError, OSError, TimeoutError, ValueError) as exc:
        echo_err(f"eval: {describe(exc)}")
        raise typer.Exit(1) from None
    summary = summarise([r.score for r in results])
    warmup = (
        f"{warmup_days:g} fault-free days (seed + 1000) fed straight into the rules engine"
        if warmup_days > 0
        else "none (history-based rules such as the anomaly rule start without a baseline)"
    )
    header = Header(
        scenario=getattr(options.scenario, "name", str(options.scenario)),
        config=str(config),
        seeds=list(options.seeds),
        broker=results[0].broker,
        store=results[0].store,
        warmup=warmup,
        latency_label=results[0].latency_label,
        wall_s=time.monotonic() - t0,
    )
    print_report(console, summary, header)
    written = write_reports(summary, results, header, out)
    if plots:
        from .plots import plot_faults, plot_summary

        written += plot_faults(results, out / "faults", ZoneInfo(cluster.territory.timezone))
        written.append(plot_summary(summary, out / "summary.png"))
    pngs = sum(p.suffix == ".png" for p in written)
    console.print(printable(f"wrote {len(written) - pngs} tables and {pngs} PNGs to {out}"))


class _ProgressView:
    """A progress bar per seed on a terminal; elsewhere one line when a warm-up starts."""

    def __init__(self, console: Console, warmup_days: float) -> None:
        self.console = console
        self.warmup_days = warmup_days
        self.bar: RichProgress | None = None
        self.tasks: dict[int, TaskID] = {}
        self.phase: dict[int, str] = {}

    def __enter__(self) -> _ProgressView:
        if self.console.is_terminal:
            self.bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def update(self, seed: int, phase: str, done: float | None) -> None:
        first = self.phase.get(seed) != phase
        self.phase[seed] = phase
        if self.bar is None:
            if first and phase == "warm-up":
                self.console.print(
                    f"seed {seed}: warming up the rules on {self.warmup_days:g} fault-free days"
                )
            return
        label = f"seed {seed} {phase}"
        if seed not in self.tasks:
            self.tasks[seed] = self.bar.add_task(label, total=1.0)
        self.bar.update(self.tasks[seed], description=label, completed=done or 0.0)
