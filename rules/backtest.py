"""Replay stored history through the same engine, in event time: what would have fired,
when, and for how long. Tune a rule on 30 days of data before switching it on.

    result = await run_backtest(cluster, store, start_ms, end_ms)
    for episode in result.episodes: ...

History is read one chunk of time at a time (`query_range` per quantity), merged in time
order and fed to the engine one tick at a time, so memory stays bounded for any span; the
number of ticks is bounded too (`check_span`: a 1 ms tick over a day is refused, not run).

Episodes are written for people (`rules backtest`'s table) or for scripts:
`write_jsonl` (one object per line: rule, severity, labels, fired_ms, resolved_ms) and
`write_csv` (the same columns, each label in its own column).
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TextIO

import numpy as np
import orjson

from ecocluster.core.durations import format_duration
from ecocluster.core.registry import Cluster
from ecocluster.core.types import DeviceStatus, FloatArray, IntArray, ReadingBatch
from ecocluster.ingest.stores.base import Store
from ecocluster.rules.engine import RuleEngine
from ecocluster.rules.transitions import Transition
from ecocluster.rules.window import WindowConfig

__all__ = [
    "LABEL_COLUMNS",
    "MAX_TICKS",
    "MIN_TICK_MS",
    "BacktestResult",
    "Episode",
    "EpisodeBook",
    "SpanError",
    "check_span",
    "episode_record",
    "replay",
    "run_backtest",
    "write_csv",
    "write_jsonl",
]

_SEVERITY_RANK = {"info": 1, "warning": 2, "critical": 3}
#: The finest tick: the engine's clock is in seconds of event time.
MIN_TICK_MS = 1_000
#: The most evaluations one replay may make: a year at 1 minute is 525,600.
MAX_TICKS = 2_000_000
#: The target labels written as their own CSV columns, in this order (others follow, sorted).
LABEL_COLUMNS = ("org", "site", "meter", "quantity", "category")
_NOT_TARGET_LABELS = frozenset({"rule", "severity"})


@dataclass(slots=True)
class Episode:
    """One firing of one rule on one target: from `fired_ms` to `resolved_ms` (None =
    still firing at the end of the replay)."""

    rule: str
    target: str
    severity: str
    since_ms: int
    fired_ms: int
    resolved_ms: int | None = None
    peak: float = float("nan")
    flapping: bool = False
    #: The target's labels (org, site, meter, quantity, category: those it has).
    labels: dict[str, str] = field(default_factory=dict)

    def duration_ms(self, end_ms: int) -> int:
        return (self.resolved_ms if self.resolved_ms is not None else end_ms) - self.fired_ms


class SpanError(ValueError):
    """The replay's range or tick cannot be run; `option` names the command-line option to
    correct (`--tick`, `--from`)."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        super().__init__(message)


def check_span(start_ms: int, end_ms: int, tick_ms: int) -> None:
    """Refuse an empty or inverted range, a tick under `MIN_TICK_MS`, and more than
    `MAX_TICKS` evaluations, naming the smallest tick that would do."""
    if tick_ms < MIN_TICK_MS:
        raise SpanError(
            "--tick", f"must be at least {_ms_text(MIN_TICK_MS)} (got {_ms_text(tick_ms)})"
        )
    if end_ms <= start_ms:
        raise SpanError("--from", "the backtest range is empty: --to must be after --from")
    ticks = -(-(end_ms - start_ms) // tick_ms)
    if ticks > MAX_TICKS:
        smallest = math.ceil((end_ms - start_ms) / MAX_TICKS / 1000) * 1000
        raise SpanError(
            "--tick",
            f"{_ms_text(tick_ms)} over {_ms_text(end_ms - start_ms)} is {ticks:,} evaluations "
            f"(at most {MAX_TICKS:,}): use --tick {_ms_text(smallest)} or more, or a shorter range",
        )


def _ms_text(value_ms: int) -> str:
    return format_duration(timedelta(milliseconds=value_ms))


@dataclass(slots=True)
class BacktestResult:
    start_ms: int
    end_ms: int
    episodes: list[Episode] = field(default_factory=list)
    transitions: int = 0
    readings: int = 0
    ticks: int = 0
    elapsed_s: float = 0.0
    #: Of `elapsed_s`, the time spent waiting for the store.
    read_s: float = 0.0

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.elapsed_s if self.elapsed_s > 0 else 0.0


class EpisodeBook:
    """Turns transitions into firing episodes (one per rule and target and firing)."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, str], Episode] = {}
        self.done: list[Episode] = []

    def add(self, t: Transition) -> None:
        key = (t.rule, t.target)
        if t.state == "firing":
            ep = self.open.get(key)
            if ep is None:
                labels = {k: v for k, v in t.labels.items() if k not in _NOT_TARGET_LABELS and v}
                ep = Episode(
                    t.rule,
                    t.target,
                    str(t.severity),
                    t.since_ms,
                    t.at_ms,
                    peak=t.value,
                    labels=labels,
                )
                self.open[key] = ep
            elif _SEVERITY_RANK[str(t.severity)] > _SEVERITY_RANK[ep.severity]:
                ep.severity = str(t.severity)
            ep.flapping |= t.flapping
            if not np.isnan(t.value) and (np.isnan(ep.peak) or abs(t.value) > abs(ep.peak)):
                ep.peak = t.value
        elif t.state == "resolved":
            ep = self.open.pop(key, None)
            if ep is not None:
                ep.resolved_ms = t.at_ms
                self.done.append(ep)

    def all(self) -> list[Episode]:
        return sorted(
            [*self.done, *self.open.values()], key=lambda e: (e.fired_ms, e.rule, e.target)
        )


async def run_backtest(
    cluster: Cluster,
    store: Store,
    start_ms: int,
    end_ms: int,
    *,
    tick_ms: int = 60_000,
    chunk_ms: int = 6 * 3_600_000,
    window: WindowConfig | None = None,
    on_transition: Callable[[Transition], None] | None = None,
) -> BacktestResult:
    """Replay `[start_ms, end_ms)` of `store` through a fresh engine for `cluster`.
    Raises `SpanError` (a `ValueError`) for a range or tick `check_span` refuses."""
    check_span(start_ms, end_ms, tick_ms)
    engine = RuleEngine(cluster, window=window)
    quantities = sorted({k.quantity for k in cluster.series})
    book = EpisodeBook()
    result = BacktestResult(start_ms, end_ms)
    started = time.perf_counter()
    chunk_ms = max(tick_ms, chunk_ms - chunk_ms % tick_ms)
    for chunk_start in range(start_ms, end_ms, chunk_ms):
        chunk_end = min(chunk_start + chunk_ms, end_ms)
        t_read = time.perf_counter()
        rows, ts_ms, values = await _read_chunk(engine, store, quantities, chunk_start, chunk_end)
        result.read_s += time.perf_counter() - t_read
        result.readings += int(ts_ms.shape[0])
        for t in replay(engine, rows, ts_ms, values, chunk_start, chunk_end, tick_ms):
            result.transitions += 1
            book.add(t)
            if on_transition is not None:
                on_transition(t)
        result.ticks += -(-(chunk_end - chunk_start) // tick_ms)
    result.episodes = book.all()
    result.elapsed_s = time.perf_counter() - started
    return result


def replay(
    engine: RuleEngine,
    rows: IntArray,
    ts_ms: IntArray,
    values: FloatArray,
    start_ms: int,
    end_ms: int,
    tick_ms: int,
    statuses: Sequence[DeviceStatus] = (),
) -> list[Transition]:
    """Feed time-sorted readings (engine rows, each (n,)) of `[start, end)` tick by tick,
    device statuses at their time, and tick at every `start + k * tick_ms`; return the
    transitions. The one loop per tick (never per reading) of a replay."""
    out: list[Transition] = []
    tick_ends = np.arange(start_ms + tick_ms, end_ms + tick_ms, tick_ms)
    tick_ends[-1] = min(int(tick_ends[-1]), end_ms)
    cuts = np.searchsorted(ts_ms, tick_ends, side="left")
    pending = sorted(statuses, key=lambda s: s.ts_ms)
    lo, k = 0, 0
    for now_ms, hi in zip(tick_ends.tolist(), cuts.tolist(), strict=True):
        if hi > lo:
            engine.window.scatter(rows[lo:hi], ts_ms[lo:hi], values[lo:hi])
        lo = hi
        while k < len(pending) and pending[k].ts_ms < now_ms:
            engine.set_status(pending[k])
            k += 1
        out.extend(engine.tick(now_ms))
    return out


async def _read_chunk(
    engine: RuleEngine, store: Store, quantities: list[str], start_ms: int, end_ms: int
) -> tuple[IntArray, IntArray, FloatArray]:
    """Every quantity's readings in `[start, end)` as engine rows, sorted by time."""
    parts: list[tuple[IntArray, IntArray, np.ndarray]] = []
    for quantity in quantities:
        batch: ReadingBatch = await store.query_range(quantity, start_ms, end_ms)
        if len(batch):
            parts.append((engine.rows_of(batch), batch.ts_ms, batch.values))
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    rows = np.concatenate([p[0] for p in parts])
    ts_ms = np.concatenate([p[1] for p in parts])
    values = np.concatenate([p[2] for p in parts])
    order = np.argsort(ts_ms, kind="stable")
    return rows[order], ts_ms[order], values[order]


def episode_record(episode: Episode) -> dict[str, Any]:
    """One episode as the machine formats write it (`resolved_ms` None: still firing)."""
    return {
        "rule": episode.rule,
        "severity": episode.severity,
        "labels": dict(episode.labels),
        "fired_ms": episode.fired_ms,
        "resolved_ms": episode.resolved_ms,
    }


def write_jsonl(episodes: Iterable[Episode], out: TextIO) -> int:
    """One JSON object per line (`episode_record`); returns the number written."""
    n = 0
    for episode in episodes:
        out.write(orjson.dumps(episode_record(episode)).decode() + "\n")
        n += 1
    return n


def write_csv(episodes: Sequence[Episode], out: TextIO) -> int:
    """A header and one row per episode: rule, severity, one column per label (the
    `LABEL_COLUMNS`, then any other label, sorted; empty where the target has none),
    fired_ms, resolved_ms (empty while still firing). Returns the number of rows."""
    extra = sorted({k for e in episodes for k in e.labels} - set(LABEL_COLUMNS))
    labels = [*LABEL_COLUMNS, *extra]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rule", "severity", *labels, "fired_ms", "resolved_ms"])
    for e in episodes:
        resolved = "" if e.resolved_ms is None else e.resolved_ms
        writer.writerow(
            [e.rule, e.severity, *(e.labels.get(k, "") for k in labels), e.fired_ms, resolved]
        )
    return len(episodes)
