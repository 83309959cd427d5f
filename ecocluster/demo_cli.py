"""`ecocluster demo`: everything embedded; see `ecocluster.demo`."""

from __future__ import annotations

import asyncio
import signal
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from ecocluster.core.cli_support import fail, load_config_or_exit
from ecocluster.core.logs import setup_logging
from ecocluster.core.text import printable

if TYPE_CHECKING:
    from ecocluster.alerts.records import AlertRecord
    from ecocluster.core.registry import Cluster
    from ecocluster.demo import DemoSummary

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
        str, typer.Option(help="Fault scenario: bad-winter-week, stress-mix, quiet-week, a file.")
    ] = "bad-winter-week",
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 1,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where the store, alert database and logs go.")
    ] = None,
    notify: Annotated[
        list[str] | None,
        typer.Option(help="Also notify this Apprise URL (repeatable); never printed."),
    ] = None,
    verbose: Annotated[bool, typer.Option(help="Show INFO logs of every library.")] = False,
) -> None:
    """Everything embedded: broker, store, simulator, every stage, notifications."""
    from ecocluster.demo import DemoOptions, DemoReady, run_demo
    from ecocluster.rules.catalog import parse_rules

    if not config.is_file():
        fail("--config", f"{config}: not found")
    cluster, settings = load_config_or_exit(config, parse_rules)
    setup_logging("INFO" if verbose else "WARNING", settings.log_format)
    if speed <= 0 or speed > 100_000:
        fail("--speed", f"must be above 0 and at most 100000 (got {speed:g})")
    target = data_dir or Path(tempfile.mkdtemp(prefix="ecocluster-demo-"))
    options = DemoOptions(
        data_dir=target,
        duration_s=duration,
        speed=speed,
        scenario=scenario,
        seed=seed,
        notify=tuple(notify or ()),
    )
    _say(
        f"demo: {cluster.summary()}; scenario {scenario} at {speed:g}× "
        f"({'until Ctrl-C' if duration is None else f'{duration:g} s'}); data in {target}"
    )

    def ready(info: DemoReady) -> None:
        _say(f"broker: {info.broker}")
        _say(f"notifications: {info.notifications}")
        if info.dashboard_url:
            _say(f"dashboard: {info.dashboard_url}")
        if info.public_url:
            _say(f"public page (no token): {info.public_url}")
        for role, link in info.tokens.items():
            _say(f"  {role:<22} {link}")

    async def main() -> DemoSummary:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_demo(
            cluster, settings, options, on_alert=_show_alert(cluster), on_ready=ready, stop=stop
        )

    summary = asyncio.run(main())
    _print_summary(summary)


def _say(text: str) -> None:
    _err.print(printable(text), markup=False, highlight=False)


def _show_alert(cluster: Cluster) -> Callable[[AlertRecord], None]:
    """One clean line per alert change: time, severity, site, what, value, code."""
    zone = ZoneInfo(cluster.territory.timezone)

    def show(alert: AlertRecord) -> None:
        labels = alert.labels
        site = cluster.site_by_id.get(labels.get("site", ""))
        where = site.name if site is not None else labels.get("site") or labels.get("org", "-")
        what = "/".join(labels[k] for k in ("meter", "quantity") if labels.get(k))
        when = alert.updated_ms if alert.state == "resolved" else alert.starts_ms
        stamp = datetime.fromtimestamp(when / 1000, zone).strftime("%a %H:%M")
        value = "" if alert.value is None else f" value {alert.value:.4g}"
        limit = "" if alert.threshold is None else f" (limit {alert.threshold:.4g})"
        state = "RESOLVED" if alert.state == "resolved" else alert.severity.upper()
        _say(f"{stamp}  {state:<8}  {where}  {alert.rule} {what}{value}{limit}  code {alert.code}")

    return show


def _print_summary(s: DemoSummary) -> None:
    table = Table(title="ecocluster demo", show_header=False)
    for name, value in (
        ("broker", s.broker),
        ("messages sent", s.messages_sent),
        ("faults injected", s.faults_injected),
        ("readings stored", s.readings_stored),
        ("readings rejected", s.readings_rejected),
        ("alerts fired", s.alerts_fired),
        ("alerts resolved", s.alerts_resolved),
        ("alerts acknowledged", s.alerts_acknowledged),
        ("notifications sent", s.notifications_sent),
        ("wall time", f"{s.wall_s:.1f} s"),
    ):
        table.add_row(name, printable(str(value)))
    _out.print(table)
    # Plain lines too, for scripts and tests to read.
    lines = [
        f"readings stored: {s.readings_stored}; readings rejected: {s.readings_rejected}; "
        f"alerts fired: {s.alerts_fired}; resolved: {s.alerts_resolved}; "
        f"acknowledged: {s.alerts_acknowledged}; notifications sent: {s.notifications_sent}"
    ]
    if s.rejected_by_reason:
        reasons = sorted(s.rejected_by_reason.items())
        lines.append("rejected by reason: " + ", ".join(f"{k}={v}" for k, v in reasons))
    if s.alerts_by_rule:
        rules = sorted(s.alerts_by_rule.items())
        lines.append("alerts by rule: " + ", ".join(f"{k}={v}" for k, v in rules))
    if s.notifications_by_channel:
        channels = sorted(s.notifications_by_channel.items())
        lines.append("notifications by channel: " + ", ".join(f"{k}={v}" for k, v in channels))
    for line in lines:
        _out.print(line, markup=False, highlight=False)
