"""`night_flow`: water leaks. Mode `night` (minimum night flow): the smallest 15-min mean
flow inside the local night window stays above `limit` on each of the last `nights`
complete nights. Mode `continuous` ("never zero in 24 h"): no 15-min mean of the last
`window` fell to `limit` or below.

    - {name: night-flow-leak, type: night_flow, quantity: flow_lpm, limit: 2.0, nights: 2,
       night: {from: "00:00", to: "06:00"}, match: {category: town_hall}}
    - {name: never-zero, type: night_flow, mode: continuous, quantity: flow_lpm, limit: 0.1}
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ecocluster.core.durations import Duration
from ecocluster.rules.config import Clock, RuleBase, ms
from ecocluster.rules.kernel import CompileContext, Kernel, RuleCompileError, Verdict
from ecocluster.rules.nights import last_complete_night
from ecocluster.rules.window import HotWindow

__all__ = ["NightFlowKernel", "NightFlowRule", "NightSpec"]


class NightSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    start: Clock = Field(default=time(0, 0), alias="from")
    end: Clock = Field(default=time(6, 0), alias="to")


class NightFlowRule(RuleBase):
    type: Literal["night_flow"]
    mode: Literal["night", "continuous"] = "night"
    limit: float = Field(default=0.0, ge=0.0)
    nights: int = Field(default=2, ge=1)
    night: NightSpec = NightSpec()
    window: Duration = timedelta(hours=24)
    min_coverage: float = Field(default=0.75, gt=0.0, le=1.0)


class NightFlowKernel(Kernel[NightFlowRule]):
    def prepare(self, ctx: CompileContext) -> None:
        spec = self.spec
        cfg = ctx.window.config
        self.res_ms = cfg.coarse_res_ms
        if spec.mode == "continuous":
            self.window_ms = ms(spec.window)
            if self.window_ms > cfg.horizon_ms:
                horizon_h = cfg.horizon_ms / 3_600_000
                raise RuleCompileError(
                    "window", f"window exceeds the hot window's horizon of {horizon_h:g}h"
                )
            return
        if spec.nights > cfg.n_nights:
            raise RuleCompileError("nights", f"at most {cfg.n_nights} nights are kept")
        self.tracker = ctx.window.night_tracker(spec.night.start, spec.night.end)
        minutes = (
            spec.night.end.hour * 60
            + spec.night.end.minute
            - spec.night.start.hour * 60
            - spec.night.start.minute
        ) % (24 * 60)
        self.min_buckets = max(1, int(spec.min_coverage * minutes * 60_000 / self.res_ms))

    def evaluate(self, window: HotWindow, now_ms: int) -> Verdict:
        rows, spec = self.targets.rows, self.spec
        if spec.mode == "continuous":
            sl = window.coarse.window(
                rows, (now_ms - 1) // self.res_ms, self.window_ms // self.res_ms
            )
            means = sl.mean()
            low = np.where(np.isnan(means), np.inf, means).min(axis=0)
            is_covered = (sl.count > 0).mean(axis=0) >= spec.min_coverage
            low = np.where(is_covered & np.isfinite(low), low, np.nan)
            return self.verdict(low > spec.limit, low, spec.limit)
        last = last_complete_night(now_ms, spec.night.end, window.tz, 2 * self.res_ms)
        minima, counts = self.tracker.nights(rows, last, spec.nights)
        is_covered = (counts >= self.min_buckets).all(axis=1)
        low = np.where(is_covered, np.where(np.isnan(minima), np.inf, minima).min(axis=1), np.nan)
        return self.verdict(low > spec.limit, low, spec.limit)
