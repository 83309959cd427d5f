"""`anomaly`: the recent mean is more than `z` robust deviations from the series' own
hour-of-week baseline; silent until each bin has `min_history` worth of samples.

    - {name: power-anomaly, type: anomaly, quantity: power_w, z: 4, window: 15m,
       min_history: 14d, severity: info}
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Literal

import numpy as np
from pydantic import Field

from ecocluster.core.durations import Duration
from ecocluster.rules.baseline import hour_of_week
from ecocluster.rules.config import RuleBase, ms
from ecocluster.rules.kernel import CompileContext, Kernel, Verdict
from ecocluster.rules.window import HotWindow

__all__ = ["AnomalyKernel", "AnomalyRule"]

_WEEK_MS = 7 * 86_400_000


class AnomalyRule(RuleBase):
    type: Literal["anomaly"]
    z: float = Field(default=4.0, gt=0)
    window: Duration = timedelta(minutes=15)
    min_history: Duration = timedelta(days=14)
    direction: Literal["both", "above", "below"] = "both"
    #: Spread floors: a share of the expected value, and an absolute amount.
    rel_floor: float = Field(default=0.05, ge=0)
    abs_floor: float = Field(default=0.0, ge=0)


class AnomalyKernel(Kernel[AnomalyRule]):
    def prepare(self, ctx: CompileContext) -> None:
        self.window_ms = ms(self.spec.window)
        self.check_window(ctx, "window", self.window_ms)
        per_week = 3_600_000 // ctx.window.config.coarse_res_ms
        self.min_samples = max(1, math.ceil(ms(self.spec.min_history) / _WEEK_MS) * per_week)

    def evaluate(self, window: HotWindow, now_ms: int) -> Verdict:
        spec, rows = self.spec, self.targets.rows
        x = window.window(rows, now_ms, self.window_ms).total_mean()
        how = hour_of_week(now_ms - self.window_ms // 2, window.tz)
        z, expected, samples = window.baseline.zscore(
            rows, how, x, rel_floor=spec.rel_floor, abs_floor=spec.abs_floor
        )
        if spec.direction == "above":
            is_true = z >= spec.z
        elif spec.direction == "below":
            is_true = z <= -spec.z
        else:
            is_true = np.abs(z) >= spec.z
        is_true &= samples >= self.min_samples
        verdict = self.verdict(is_true, x, expected)
        return verdict
