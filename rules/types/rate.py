"""`rate`: the change of a value across a window (newest bucket mean minus oldest).

- {name: boiler-temp-drop, type: rate, quantity: temp_c, window: 30m, drops: 5}
- {name: site-power-ramp, type: rate, quantity: power_w, scope: site, window: 15m,
   rises: 40000}
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from ecocluster.core.durations import Duration
from ecocluster.core.types import FloatArray
from ecocluster.rules.config import ScopedRule, ms
from ecocluster.rules.kernel import CompileContext, Kernel, Verdict
from ecocluster.rules.ring import WindowSlice
from ecocluster.rules.window import HotWindow

__all__ = ["RateKernel", "RateRule", "window_change"]


class RateRule(ScopedRule):
    type: Literal["rate"]
    window: Duration = timedelta(minutes=15)
    rises: float | None = Field(default=None, gt=0)
    drops: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_side(self) -> RateRule:
        if self.rises is None and self.drops is None:
            raise ValueError("a rate rule needs `rises`, `drops` or both (positive amounts)")
        return self


def window_change(sl: WindowSlice) -> FloatArray:
    """Mean of the newest non-empty bucket minus the oldest one: (n,); NaN unless the
    window has data in two different buckets."""
    has = sl.count > 0  # (k, n)
    k = has.shape[0]
    first = np.argmax(has, axis=0)
    last = k - 1 - np.argmax(has[::-1], axis=0)
    means = sl.mean()
    cols = np.arange(has.shape[1])
    change = means[last, cols] - means[first, cols]
    return np.where(has.any(axis=0) & (last > first), change, np.nan)


class RateKernel(Kernel[RateRule]):
    def prepare(self, ctx: CompileContext) -> None:
        self.window_ms = ms(self.spec.window)
        self.check_window(ctx, "window", self.window_ms)

    def evaluate(self, window: HotWindow, now_ms: int) -> Verdict:
        change = window_change(window.window(self.targets.rows, now_ms, self.window_ms))
        x = self.targets.reduce(
            change, "sum" if self.spec.aggregate == "sum" else self.spec.aggregate
        )
        is_true = np.zeros(x.shape, np.bool_)
        thr = np.full(x.shape, np.nan)
        if self.spec.rises is not None:
            is_true |= x >= self.spec.rises
            thr[:] = self.spec.rises
        if self.spec.drops is not None:
            is_drop = x <= -self.spec.drops
            is_true |= is_drop
            thr = np.where(is_drop | np.isnan(thr), -self.spec.drops, thr)
        return self.verdict(is_true, x, thr)
