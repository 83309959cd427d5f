"""`ecocluster rules …`: the rule engine's commands (registered by `ecocluster.cli`).

ecocluster rules backtest --config cluster.yml --from 2026-01-01 --to 2026-01-31
ecocluster rules backtest --config cluster.yml --from 30d --rule night-flow-leak
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from ecocluster.core.cli_support import load_config_or_exit
from ecocluster.core.durations import format_duration, parse_duration
from ecocluster.core.registry import Cluster, ConfigError
from ecocluster.rules.backtest import BacktestResult, run_backtest

__all__ = ["parse_time", "register"]

_out = Console(soft_wrap=True)
_err = Console(stderr=True, soft_wrap=True)


def parse_time(
    text: str, tz: ZoneInfo, *, now: datetime, before: datetime | None = None
) -> datetime:
    """`2026-01-12`, `2026-01-12T06:00` (local to `tz` unless an offset is given), `now`,
    or a duration (`30d`) meaning that long before `before` (default: now)."""
    raw = text.strip()
    if raw == "now":
        return now
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        try:
            return (before or now) - parse_duration(raw)
        except ValueError:
            raise typer.BadParameter(
                f"{text!r}: use an ISO date/time (2026-01-12T06:00), 'now' or a duration (30d)"
            ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _only_rules(cluster: Cluster, names: list[str]) -> Cluster:
    if not names:
        return cluster
    known = {r.name for r in cluster.rules}
    unknown = sorted(set(names) - known)
    if unknown:
        raise typer.BadParameter(f"unknown rule {unknown[0]!r} (known: {', '.join(sorted(known))})")
    return dataclasses.replace(cluster, rules=tuple(r for r in cluster.rules if r.name in names))


def _print_result(result: BacktestResult, tz: ZoneInfo, limit: int) -> None:
    def when(ms: int | None) -> str:
        if ms is None:
            return "(still firing)"
        return datetime.fromtimestamp(ms / 1000, tz).strftime("%Y-%m-%d %H:%M")

    def took(ms: int) -> str:
        return format_duration(timedelta(milliseconds=ms - ms % 60_000 or ms))

    episodes = result.episodes
    table = Table(title=f"What would have fired ({len(episodes)} episodes)")
    for column in ("rule", "target", "severity", "fired", "resolved", "for"):
        table.add_column(column)
    for ep in episodes[:limit]:
        flap = " (flapping)" if ep.flapping else ""
        table.add_row(
            ep.rule,
            ep.target,
            ep.severity + flap,
            when(ep.fired_ms),
            when(ep.resolved_ms),
            took(ep.duration_ms(result.end_ms)),
        )
    if len(episodes) > limit:
        table.caption = f"first {limit} of {len(episodes)} shown (--limit)"
    _out.print(table)
    summary = Table(title="Per rule")
    for column in ("rule", "episodes", "targets", "firing time", "median episode"):
        summary.add_column(column)
    by_rule: dict[str, list[int]] = {}
    targets: dict[str, set[str]] = {}
    for ep in episodes:
        by_rule.setdefault(ep.rule, []).append(ep.duration_ms(result.end_ms))
        targets.setdefault(ep.rule, set()).add(ep.target)
    for rule, durations in sorted(by_rule.items()):
        summary.add_row(
            rule,
            str(len(durations)),
            str(len(targets[rule])),
            took(sum(durations)),
            took(int(statistics.median(durations))),
        )
    _out.print(summary)
    _out.print(
        f"{result.readings:,} readings, {result.ticks:,} ticks, {result.transitions:,} transitions "
        f"in {result.elapsed_s:.1f} s ({result.readings_per_s:,.0f} readings/s)",
        markup=False,
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    rules_app = typer.Typer(help="The rule engine.", no_args_is_help=True)

    @rules_app.command("backtest")
    def backtest(
        config: Annotated[Path, typer.Option("--config", help="The cluster file (YAML).")],
        from_: Annotated[
            str,
            typer.Option("--from", help="Start: ISO date/time or a duration before --to (30d)."),
        ],
        to: Annotated[str, typer.Option("--to", help="End: ISO date/time or 'now'.")] = "now",
        tick: Annotated[str, typer.Option(help="Evaluation interval (event time).")] = "1m",
        rule: Annotated[
            list[str] | None, typer.Option("--rule", help="Only these rules (repeatable).")
        ] = None,
        limit: Annotated[int, typer.Option(help="Episodes to list.")] = 200,
    ) -> None:
        """Replay stored history through the rules: what would have fired, when, for how long.

        The store is chosen like the rest: ECOCLUSTER_INFLUX_URL set → InfluxDB, else the
        DuckDB file under ECOCLUSTER_DATA_DIR.
        """
        cluster, settings = load_config_or_exit(config)
        cluster = _only_rules(cluster, rule or [])
        tz = ZoneInfo(cluster.territory.timezone)
        now = datetime.now(tz)
        end = parse_time(to, tz, now=now)
        start = parse_time(from_, tz, now=now, before=end)
        tick_ms = int(parse_duration(tick).total_seconds() * 1000)
        if tick_ms <= 0:
            raise typer.BadParameter("--tick must be positive")
        try:
            result = asyncio.run(
                _run(
                    cluster,
                    settings,
                    int(start.timestamp() * 1000),
                    int(end.timestamp() * 1000),
                    tick_ms,
                )
            )
        except ConfigError as exc:
            for issue in exc.issues:
                _err.print(str(issue), markup=False, highlight=False)
            raise typer.Exit(1) from None
        except ValueError as exc:
            _err.print(str(exc), markup=False, highlight=False)
            raise typer.Exit(1) from None
        _print_result(result, tz, limit)

    app.add_typer(rules_app, name="rules")


async def _run(
    cluster: Cluster, settings: object, start_ms: int, end_ms: int, tick_ms: int
) -> BacktestResult:
    from ecocluster.ingest.stores import make_store

    store = make_store(settings)  # type: ignore[arg-type]
    await store.open()
    try:
        return await run_backtest(cluster, store, start_ms, end_ms, tick_ms=tick_ms)
    finally:
        await store.close()
