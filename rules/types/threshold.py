"""`threshold`: a value (latest, or a window aggregate) above/below limits, or outside a
band; several severities in one rule; `clear` hysteresis; `consecutive` windows.

    - {name: pm10-daily, type: threshold, quantity: pm10_ugm3, window: 1h, agg: mean,
       above: {warning: 50, critical: 100}, clear: 45, min_coverage: 0.75}
    - {name: territory-capacity, type: threshold, quantity: power_w, scope: territory,
       aggregate: sum, above: contracted, for: 5m}
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from ecocluster.core.durations import Duration
from ecocluster.core.types import FloatArray, Severity
from ecocluster.rules.config import ScopedRule, ms
from ecocluster.rules.kernel import CompileContext, Kernel, LevelArray, RuleCompileError, Verdict
from ecocluster.rules.transitions import LEVEL_BY_SEVERITY
from ecocluster.rules.window import HotWindow

__all__ = ["ThresholdKernel", "ThresholdRule"]

#: A number, per-severity numbers, or `contracted`: the sites' `contracted_power_w`.
Limit = float | Literal["contracted"] | dict[Severity, float]


class ThresholdRule(ScopedRule):
    type: Literal["threshold"]
    above: Limit | None = None
    below: Limit | None = None
    clear: float | None = None
    window: Duration | None = None
    agg: Literal["last", "mean", "min", "max"] | None = None
    consecutive: int | None = Field(default=None, ge=1)
    #: Share of the window that must hold data (time covered by readings, from each
    #: series' observed reporting interval), else the window is invalid (1.4: 0.75).
    min_coverage: float = Field(default=0.0, ge=0.0, le=1.0)
    stale: Duration = timedelta(hours=1)

    @model_validator(mode="after")
    def _shape(self) -> ThresholdRule:
        if self.above is None and self.below is None:
            raise ValueError("a threshold needs `above`, `below` or both (a band)")
        if self.clear is not None and self.above is not None and self.below is not None:
            raise ValueError("`clear` is for one-sided thresholds; a band has no single side")
        if self.consecutive is not None and self.window is None:
            raise ValueError("`consecutive` counts windows: give `window` too")
        if self.agg not in (None, "last") and self.window is None:
            raise ValueError(f"agg {self.agg!r} needs a `window`")
        if self.clear is not None:
            side = self.above if self.above is not None else self.below
            if isinstance(side, float | int) and not (
                (self.above is not None and self.clear <= side)
                or (self.below is not None and self.clear >= side)
            ):
                raise ValueError("`clear` must be on the safe side of the limit (hysteresis)")
        return self


def _levels(limit: Limit | None, default: Severity) -> list[tuple[int, float | str]]:
    if limit is None:
        return []
    if isinstance(limit, dict):
        return sorted((LEVEL_BY_SEVERITY[Severity(s)], v) for s, v in limit.items())
    return [(LEVEL_BY_SEVERITY[default], limit)]


class ThresholdKernel(Kernel[ThresholdRule]):
    def prepare(self, ctx: CompileContext) -> None:
        spec = self.spec
        self.window_ms = ms(spec.window) if spec.window else None
        self.agg = spec.agg or ("mean" if spec.window else "last")
        self.n_windows = spec.consecutive or 1
        if self.window_ms:
            self.check_window(ctx, "window", self.window_ms * self.n_windows)
        self.is_instant = self.window_ms is None and self.for_ms == 0
        self.above = [(c, self._limit_array(ctx, v)) for c, v in _levels(spec.above, spec.severity)]
        self.below = [(c, self._limit_array(ctx, v)) for c, v in _levels(spec.below, spec.severity)]

    def _limit_array(self, ctx: CompileContext, value: float | str) -> FloatArray:
        if value != "contracted":
            return np.full(self.targets.n, float(value))
        if self.spec.quantity != "power_w":
            raise RuleCompileError("above", "`contracted` compares power: use quantity power_w")
        sites: list[set[str]] = [set() for _ in range(self.targets.n)]
        for row, t in zip(self.targets.rows.tolist(), self.targets.group_idx.tolist(), strict=True):
            sites[t].add(ctx.table.keys[row].site)
        out = np.full(self.targets.n, np.nan)
        for t, names in enumerate(sites):
            caps = [ctx.cluster.site_by_id[s].contracted_power_w for s in names]
            if caps and all(c is not None for c in caps):
                out[t] = float(sum(caps))  # type: ignore[arg-type]
        return out

    def _measure(self, window: HotWindow, now_ms: int) -> FloatArray:
        """(n_windows, n_targets): oldest window first; NaN where unknown or too sparse."""
        rows, spec = self.targets.rows, self.spec
        if self.window_ms is None:
            x = window.latest(rows, now_ms, ms(spec.stale))
            return self.targets.reduce(x, spec.aggregate)[None, :]
        w = self.window_ms
        out = np.empty((self.n_windows, self.targets.n))
        for j in range(self.n_windows):
            end = now_ms - (self.n_windows - 1 - j) * w
            sl = window.window(rows, end, w)
            if self.agg == "mean":
                x = sl.total_mean()
            elif self.agg == "min":
                x = sl.total_min()
            elif self.agg == "max":
                x = sl.total_max()
            else:
                x = window.latest(rows, now_ms, ms(spec.stale))
            if spec.min_coverage > 0:
                coverage = window.coverage(rows, sl, w)
                x = np.where(coverage >= spec.min_coverage, x, np.nan)
            out[j] = self.targets.reduce(x, spec.aggregate)
        return out

    def _level(self, x: FloatArray) -> tuple[LevelArray, FloatArray]:
        level = np.zeros(x.shape, np.int8)
        thr = np.full(x.shape, np.nan)
        for code, limit in self.above:
            hit = x > limit
            level = np.where(hit, np.maximum(level, code), level)
            thr = np.where(hit & (level == code), limit, thr)
        for code, limit in self.below:
            hit = x < limit
            level = np.where(hit, np.maximum(level, code), level)
            thr = np.where(hit & (level == code), limit, thr)
        return level, thr

    def evaluate(self, window: HotWindow, now_ms: int) -> Verdict:
        xs = self._measure(window, now_ms)
        level, thr = self._level(xs)
        is_valid = ~np.isnan(xs)
        # Every window must hold (an invalid window is not an exceedance).
        level = np.where(is_valid, level, 0).min(axis=0).astype(np.int8)
        thr = thr[-1]
        x = xs[-1]
        first = (self.above or self.below)[0][1]
        thr = np.where(np.isnan(thr), first, thr)
        if self.spec.clear is not None:
            is_held = self.state.is_firing & (level == 0)
            beyond = x > self.spec.clear if self.spec.above is not None else x < self.spec.clear
            level = np.where(is_held & beyond, self.state.level, level).astype(np.int8)
        level[~is_valid.any(axis=0)] = -1
        return Verdict(level, x, thr)
