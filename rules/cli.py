"""`ecocluster rules …`: the rule engine's commands (registered by `ecocluster.cli`).

ecocluster rules backtest --config cluster.yml --from 2026-01-01 --to 2026-01-31
ecocluster rules backtest --config cluster.yml --from 30d --rule night-flow-leak
ecocluster rules backtest --config cluster.yml --from 30d --format jsonl > episodes.jsonl

Every input error is one line naming the option or the file's line, exit code 2; options
are parsed here (not by click) so that their messages are ours.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import statistics
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from ecocluster.core.cli_support import echo_err, fail, load_config_or_exit
from ecocluster.core.durations import format_duration, parse_duration
from ecocluster.core.errors import describe
from ecocluster.core.registry import Cluster, ConfigError
from ecocluster.core.settings import Settings
from ecocluster.rules.backtest import (
    BacktestResult,
    SpanError,
    check_span,
    run_backtest,
    write_csv,
    write_jsonl,
)
from ecocluster.rules.catalog import parse_rules

__all__ = ["FORMATS", "parse_time", "register"]

FORMATS = ("table", "jsonl", "csv")
_out = Console(soft_wrap=True)


def parse_time(
    text: str, tz: ZoneInfo, *, now: datetime, before: datetime | None = None
) -> datetime:
    """`2026-01-12`, `2026-01-12T06:00` (local to `tz` unless an offset is given), `now`,
    or a duration (`30d`) meaning that long before `before` (default: now).

    Raises `ValueError` with a one-line message (the caller names the option)."""
    raw = text.strip()
    if raw == "now":
        return now
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        try:
            back = parse_duration(raw)
        except ValueError as exc:
            if not str(exc).startswith("invalid duration"):
                raise  # a duration, but out of range: its own message says so
            raise ValueError(
                f"{text!r}: use an ISO date/time (2026-01-12T06:00), 'now' or a duration (30d)"
            ) from None
        try:
            return (before or now) - back
        except OverflowError:
            raise ValueError(f"{text!r} reaches before the year 1") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _epoch_ms(moment: datetime, option: str) -> int:
    try:
        return int(moment.timestamp() * 1000)
    except (OverflowError, ValueError, OSError):
        fail(option, f"{moment.isoformat()} is out of range")


def _only_rules(cluster: Cluster, names: list[str]) -> Cluster:
    if not names:
        return cluster
    known = {r.name for r in cluster.rules}
    unknown = sorted(set(names) - known)
    if unknown:
        fail("--rule", f"unknown rule {unknown[0]!r} (known: {', '.join(sorted(known))})")
    return dataclasses.replace(cluster, rules=tuple(r for r in cluster.rules if r.name in names))


def _print_table(result: BacktestResult, tz: ZoneInfo, limit: int) -> None:
    def when(ms: int | None) -> str:
        if ms is None:
            return "(still firing)"
        return datetime.fromtimestamp(ms / 1000, tz).strftime("%Y-%m-%d %H:%M")

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
            _took(ep.duration_ms(result.end_ms)),
        )
    if len(episodes) > limit:
        table.caption = f"first {limit} of {len(episodes)} shown (--limit)"
    _out.print(table)
    _out.print(_per_rule(result))
    _out.print(_summary(result), markup=False, highlight=False)


def _took(ms: int) -> str:
    return format_duration(timedelta(milliseconds=ms - ms % 60_000 or ms))


def _per_rule(result: BacktestResult) -> Table:
    summary = Table(title="Per rule")
    for column in ("rule", "episodes", "targets", "firing time", "median episode"):
        summary.add_column(column)
    by_rule: dict[str, list[int]] = {}
    targets: dict[str, set[str]] = {}
    for ep in result.episodes:
        by_rule.setdefault(ep.rule, []).append(ep.duration_ms(result.end_ms))
        targets.setdefault(ep.rule, set()).add(ep.target)
    for rule, durations in sorted(by_rule.items()):
        summary.add_row(
            rule,
            str(len(durations)),
            str(len(targets[rule])),
            _took(sum(durations)),
            _took(int(statistics.median(durations))),
        )
    return summary


def _summary(result: BacktestResult) -> str:
    return (
        f"{result.readings:,} readings, {result.ticks:,} ticks, {result.transitions:,} "
        f"transitions in {result.elapsed_s:.1f} s ({result.readings_per_s:,.0f} readings/s)"
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _Span:
    start_ms: int
    end_ms: int
    tick_ms: int


def _span(from_: str, to: str, tick: str, tz: ZoneInfo) -> _Span:
    """The options `--from`, `--to`, `--tick` as epoch ms, or exit 2 naming the option."""
    now = datetime.now(tz)
    try:
        end = parse_time(to, tz, now=now)
    except ValueError as exc:
        fail("--to", str(exc))
    try:
        start = parse_time(from_, tz, now=now, before=end)
    except ValueError as exc:
        fail("--from", str(exc))
    try:
        tick_ms = int(parse_duration(tick).total_seconds() * 1000)
    except ValueError as exc:
        fail("--tick", str(exc))
    span = _Span(_epoch_ms(start, "--from"), _epoch_ms(end, "--to"), tick_ms)
    if span.end_ms <= span.start_ms:
        fail("--from", f"{from_} is not before --to {to}: the range is empty")
    try:
        check_span(span.start_ms, span.end_ms, span.tick_ms)
    except SpanError as exc:
        fail(exc.option, str(exc))
    return span


def _emit(result: BacktestResult, fmt: str, tz: ZoneInfo, limit: int) -> None:
    if fmt == "table":
        _print_table(result, tz, limit)
        return
    if fmt == "jsonl":
        write_jsonl(result.episodes, sys.stdout)
    else:
        write_csv(result.episodes, sys.stdout)
    sys.stdout.flush()
    echo_err(f"{len(result.episodes):,} episodes; {_summary(result)}")


def backtest(
    config: Annotated[Path, typer.Option("--config", help="The cluster file (YAML).")],
    from_: Annotated[
        str,
        typer.Option("--from", help="Start: ISO date/time or a duration before --to (30d)."),
    ],
    to: Annotated[str, typer.Option("--to", help="End: ISO date/time or 'now'.")] = "now",
    tick: Annotated[
        str, typer.Option(help="Evaluation interval (event time), at least 1s.")
    ] = "1m",
    rule: Annotated[
        list[str] | None, typer.Option("--rule", help="Only these rules (repeatable).")
    ] = None,
    limit: Annotated[str, typer.Option(help="Episodes to list in the table.")] = "200",
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="table (default), jsonl (one episode a line: rule, severity, labels, "
            "fired_ms, resolved_ms) or csv (the same, one column per label).",
        ),
    ] = "table",
) -> None:
    """Replay stored history through the rules: what would have fired, when, for how long.

    The store is chosen like the rest: ECOCLUSTER_INFLUX_URL set → InfluxDB, else the
    DuckDB file under ECOCLUSTER_DATA_DIR.
    """
    if fmt not in FORMATS:
        fail("--format", f"unknown format {fmt!r} (one of: {', '.join(FORMATS)})")
    if not limit.strip().isdigit():
        fail("--limit", f"{limit!r} is not a whole number (0 or more)")
    cluster, settings = load_config_or_exit(config, parse_rules)
    cluster = _only_rules(cluster, rule or [])
    tz = ZoneInfo(cluster.territory.timezone)
    span = _span(from_, to, tick, tz)
    try:
        result = asyncio.run(_run(cluster, settings, span))
    except ConfigError as exc:  # a rule that parses but cannot run (e.g. past the horizon)
        for issue in exc.issues:
            echo_err(issue)
        raise typer.Exit(2) from None
    except Exception as exc:  # the store: unreachable, refused, … (not an input error)
        logging.getLogger(__name__).debug("backtest failed", exc_info=exc)
        echo_err(f"backtest failed: {describe(exc)}")
        raise typer.Exit(1) from None
    _emit(result, fmt, tz, int(limit))


def register(app: typer.Typer) -> None:
    rules_app = typer.Typer(help="The rule engine.", no_args_is_help=True)
    rules_app.command("backtest")(backtest)
    app.add_typer(rules_app, name="rules")


async def _run(cluster: Cluster, settings: Settings, span: _Span) -> BacktestResult:
    from ecocluster.ingest.stores import make_store

    store = make_store(settings)
    await store.open()
    try:
        return await run_backtest(cluster, store, span.start_ms, span.end_ms, tick_ms=span.tick_ms)
    finally:
        await store.close()
