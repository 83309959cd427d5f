"""The rule engine: every rule over every series at once, in event time.

    engine = RuleEngine(load_cluster("cluster.yml"))
    engine.ingest(batch)                 # scatter readings into the hot window
    engine.set_status(status)            # a device's retained online/offline
    transitions = engine.tick(now_ms)    # evaluate every rule, step every state machine
    transitions = engine.instant(now_ms) # only `for: 0` thresholds on the latest value

`tick` takes the time to evaluate at: wall time in production, the readings' own time in
backtests and accelerated simulations. Nothing here reads a clock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from ecocluster.core.registry import Cluster
from ecocluster.core.types import DeviceStatus, IntArray, ReadingBatch, SeriesKey
from ecocluster.rules.catalog import compile_rules, parse_rules
from ecocluster.rules.config import RuleBase, is_active_at, ms
from ecocluster.rules.kernel import CompileContext, Kernel, Verdict
from ecocluster.rules.series import SeriesTable
from ecocluster.rules.state import FIRING, Events
from ecocluster.rules.transitions import SEVERITY_BY_LEVEL, Transition
from ecocluster.rules.window import HotWindow, WindowConfig

__all__ = ["ReloadReport", "RuleEngine"]

_log = logging.getLogger(__name__)
SNAPSHOT_VERSION = 1


@dataclass(slots=True)
class ReloadReport:
    kept: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: `resolved` events for alerts of rules that no longer exist.
    transitions: list[Transition] = field(default_factory=list)


class RuleEngine:
    """Hot window + compiled rules + their state. Raises `ConfigError` on bad rules."""

    def __init__(self, cluster: Cluster, *, window: WindowConfig | None = None) -> None:
        self.cluster = cluster
        self.table = SeriesTable()
        self.table.sync(cluster)
        self.window = HotWindow(len(self.table), ZoneInfo(cluster.territory.timezone), window)
        self.kernels: list[Kernel[Any]] = self._compile(cluster)
        self._map_source: Sequence[SeriesKey] | None = None
        self._map_rows: IntArray = np.empty(0, np.int64)

    @property
    def rules(self) -> list[RuleBase]:
        return [k.spec for k in self.kernels]

    def _compile(self, cluster: Cluster) -> list[Kernel[Any]]:
        return compile_rules(CompileContext(cluster, self.table, self.window))

    # -- input -----------------------------------------------------------------------------
    def rows_of(self, batch: ReadingBatch) -> IntArray:
        """Engine row of each reading (n,); the batch's series table is mapped once and
        cached while the same table object keeps coming."""
        if batch.series is not self._map_source or len(batch.series) != self._map_rows.shape[0]:
            index = self.table.index
            unknown = [k for k in batch.series if k not in index]
            if unknown:
                self.table.add_unknown(unknown, self.cluster)
                self.window.grow(len(self.table))
            self._map_rows = np.fromiter(
                (index[SeriesKey(*k)] for k in batch.series), np.int64, len(batch.series)
            )
            self._map_source = batch.series
        return self._map_rows[batch.series_idx]

    def ingest(self, batch: ReadingBatch) -> None:
        """Scatter a batch of accepted readings into the hot window."""
        if len(batch) == 0:
            return
        self.window.scatter(self.rows_of(batch), batch.ts_ms, batch.values)

    def set_status(self, status: DeviceStatus) -> None:
        rows = self.table.rows_of_meter(status.site, status.meter)
        self.window.set_status(rows, online=status.online, ts_ms=status.ts_ms)

    # -- evaluation ------------------------------------------------------------------------
    def tick(self, now_ms: int) -> list[Transition]:
        """Evaluate every rule at `now_ms` (event time); return the state changes."""
        self.window.advance_to(now_ms)
        out: list[Transition] = []
        for kernel in self.kernels:
            out.extend(self._step(kernel, now_ms))
        return out

    @property
    def has_instant(self) -> bool:
        return any(k.is_instant for k in self.kernels)

    def instant(self, now_ms: int) -> list[Transition]:
        """Evaluate only the rules that need no time to pass (a threshold on the latest
        value with `for: 0`) at `now_ms`: called as readings arrive, so a breach becomes a
        transition without waiting for the next tick. Safe between ticks: the next tick
        evaluates them again and finds nothing new."""
        self.window.advance_to(now_ms)
        out: list[Transition] = []
        for kernel in self.kernels:
            if kernel.is_instant:
                out.extend(self._step(kernel, now_ms))
        return out

    def _step(self, kernel: Kernel[Any], now_ms: int) -> list[Transition]:
        spec = kernel.spec
        if is_active_at(spec.active, now_ms, self.window.tz):
            verdict = kernel.evaluate(self.window, now_ms)
        else:
            verdict = _all_false(kernel.targets.n)
        events = kernel.state.step(
            verdict.level,
            verdict.value,
            verdict.threshold,
            now_ms,
            for_ms=kernel.for_ms,
            keep_firing_ms=kernel.keep_firing_ms,
            flap_count=spec.flapping.count,
            flap_window_ms=ms(spec.flapping.window),
            flap_hold_ms=ms(spec.flapping.hold),
        )
        return _transitions(kernel, events, now_ms) if len(events) else []

    # -- reload ----------------------------------------------------------------------------
    def reload(self, cluster: Cluster) -> ReloadReport:
        """Swap in the rules of `cluster`, keeping the state of unchanged rules.

        A bad rule raises `ConfigError` and leaves the running rules untouched.
        """
        parse_rules(cluster)  # fail before touching anything
        self.table.sync(cluster)
        self.window.grow(len(self.table))
        fresh = compile_rules(CompileContext(cluster, self.table, self.window))
        old = {k.spec.name: k for k in self.kernels}
        report = ReloadReport()
        kernels: list[Kernel[Any]] = []
        for kernel in fresh:
            before = old.pop(kernel.spec.name, None)
            if before is None:
                report.added.append(kernel.spec.name)
            elif before.spec != kernel.spec:
                report.changed.append(kernel.spec.name)
                kernel.state.restore(kernel.targets.keys, before.state.export(before.targets.keys))
            elif before.targets.keys == kernel.targets.keys:
                report.kept.append(kernel.spec.name)
                kernel = before
            else:
                report.kept.append(kernel.spec.name)
                kernel.state.restore(kernel.targets.keys, before.state.export(before.targets.keys))
            kernels.append(kernel)
        now_ms = max(self.window.now_ms, 0)
        for name, gone in old.items():
            report.removed.append(name)
            is_firing = np.flatnonzero(gone.state.state == FIRING)
            if is_firing.size:
                none = np.empty(0, np.int64)
                events = Events(none, none, none, none, resolved=is_firing)
                report.transitions.extend(_transitions(gone, events, now_ms))
        self.kernels = kernels
        self.cluster = cluster
        self._map_source = None
        return report

    # -- persistence -----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Pending/firing state of every rule (JSON-ready), for a restart."""
        return {
            "version": SNAPSHOT_VERSION,
            "now_ms": int(self.window.now_ms),
            "rules": {
                k.spec.name: {
                    "spec": k.spec.model_dump(mode="json", by_alias=True),
                    "targets": k.state.export(k.targets.keys),
                }
                for k in self.kernels
            },
        }

    def restore(self, snapshot: dict[str, Any]) -> int:
        """Load a `snapshot()`; rules whose spec changed start fresh. Returns targets loaded."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            _log.warning("ignoring a rules snapshot of version %s", snapshot.get("version"))
            return 0
        saved = snapshot.get("rules", {})
        loaded = 0
        for kernel in self.kernels:
            entry = saved.get(kernel.spec.name)
            if entry and entry["spec"] == kernel.spec.model_dump(mode="json", by_alias=True):
                loaded += kernel.state.restore(kernel.targets.keys, entry["targets"])
        return loaded


def _all_false(n: int) -> Verdict:
    return Verdict(np.zeros(n, np.int8), np.full(n, np.nan), np.full(n, np.nan))


def _transitions(kernel: Kernel[Any], events: Events, now_ms: int) -> list[Transition]:
    spec, targets, state = kernel.spec, kernel.targets, kernel.state
    out: list[Transition] = []
    groups = (
        ("pending", events.pending, None),
        ("inactive", events.inactive, None),
        ("firing", events.firing, events.firing_previous),
        ("resolved", events.resolved, None),
    )
    for name, idx, previous in groups:
        for j, i in enumerate(idx.tolist()):
            if name == "firing" and previous is not None:
                prev = ("ok", "pending", "firing")[int(previous[j])]
            else:
                prev = {"pending": "ok", "inactive": "pending", "resolved": "firing"}[name]
            severity = SEVERITY_BY_LEVEL[int(state.level[i])] or spec.severity
            labels = {"rule": spec.name, "severity": str(severity), **targets.labels[i]}
            out.append(
                Transition(
                    rule=spec.name,
                    state=name,  # type: ignore[arg-type]
                    previous=prev,  # type: ignore[arg-type]
                    severity=severity,
                    labels=labels,
                    value=float(state.value[i]),
                    threshold=float(state.threshold[i]),
                    since_ms=int(state.since_ms[i]),
                    at_ms=now_ms,
                    flapping=bool(state.is_flapping[i]),
                    description=spec.description,
                )
            )
    return out
