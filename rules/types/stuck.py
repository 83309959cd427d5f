"""`stuck`: a value that does not change over a window, where it should vary (a frozen
analyser reporting the same PM10 for hours is not clean air).

    - {name: air-sensor-stuck, type: stuck, quantity: pm10_ugm3, window: 6h}
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import numpy as np
from pydantic import Field

from ecocluster.core.durations import Duration
from ecocluster.rules.config import RuleBase, ms
from ecocluster.rules.kernel import CompileContext, Kernel, Verdict
from ecocluster.rules.window import HotWindow

__all__ = ["StuckKernel", "StuckRule"]


class StuckRule(RuleBase):
    type: Literal["stuck"]
    window: Duration = timedelta(hours=1)
    tolerance: float = Field(default=0.0, ge=0.0)
    min_readings: int = Field(default=3, ge=2)


class StuckKernel(Kernel[StuckRule]):
    def prepare(self, ctx: CompileContext) -> None:
        self.window_ms = ms(self.spec.window)
        self.check_window(ctx, "window", self.window_ms)

    def evaluate(self, window: HotWindow, now_ms: int) -> Verdict:
        sl = window.window(self.targets.rows, now_ms, self.window_ms)
        n = sl.count.sum(axis=0)
        span = sl.total_max() - sl.total_min()
        span = np.where(n >= self.spec.min_readings, span, np.nan)
        return self.verdict(span <= self.spec.tolerance, span, self.spec.tolerance)
