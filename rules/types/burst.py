"""`burst`: a sudden, sustained jump of flow. Every bucket of the last `window` sits at
least `jump` above the mean of the `baseline` before it and/or at least `factor` times it
(both must hold when both are given). While the alert fires, the reference level is
frozen, so the alert lasts as long as the flow stays up (it clears once the flow is back
under reference + jump / 2, or (1 + factor) / 2 times it).

With `back_within` it is a spike detector: the jump must also be over, every reading of
the last `back_within` back under reference + jump / 2 (and (1 + factor) / 2 times it),
so a motor starting or an opening ramp, which stays up, is not a spike. The alert comes
`back_within` after the spike.

    - {name: pipe-burst, type: burst, quantity: flow_lpm, jump: 300, window: 5m,
       baseline: 30m, match: {org: acque-appennino}}
    - {name: power-spike, type: burst, quantity: power_w, window: 1m, baseline: 10m,
       factor: 3, jump: 3000, back_within: 2m}
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from ecocluster.core.durations import Duration
from ecocluster.core.types import FloatArray
from ecocluster.rules.config import RuleBase, ms
from ecocluster.rules.kernel import CompileContext, Kernel, Verdict
from ecocluster.rules.window import HotWindow

__all__ = ["BurstKernel", "BurstRule"]


class BurstRule(RuleBase):
    type: Literal["burst"]
    jump: float | None = Field(default=None, gt=0)
    factor: float | None = Field(default=None, gt=1)
    window: Duration = timedelta(minutes=5)
    baseline: Duration = timedelta(minutes=30)
    #: A spike: the jump must be over again within this long (None: a sustained burst).
    back_within: Duration | None = None

    @model_validator(mode="after")
    def _size(self) -> BurstRule:
        if self.jump is None and self.factor is None:
            raise ValueError("a burst needs `jump` (absolute) or `factor` (relative), or both")
        return self


class BurstKernel(Kernel[BurstRule]):
    def prepare(self, ctx: CompileContext) -> None:
        self.window_ms = ms(self.spec.window)
        self.back_ms = ms(self.spec.back_within)
        self.total_ms = self.window_ms + ms(self.spec.baseline) + self.back_ms
        self.check_window(ctx, "baseline", self.total_ms)
        self.reference = np.full(self.targets.n, np.nan)

    def evaluate(self, window: HotWindow, now_ms: int) -> Verdict:
        spec = self.spec
        ring = window.ring_for(self.total_ms)
        k_back = -(-self.back_ms // ring.res_ms)
        k_recent = max(1, -(-self.window_ms // ring.res_ms))
        k_total = max(k_back + k_recent + 1, -(-self.total_ms // ring.res_ms))
        sl = ring.window(self.targets.rows, (now_ms - 1) // ring.res_ms, k_total)
        means, counts = sl.mean(), sl.count  # (k_total, n)
        after_max = _after_max(means[k_total - k_back :], counts[k_total - k_back :])
        if k_back:
            means, counts = means[: k_total - k_back], counts[: k_total - k_back]
        before, recent = means[:-k_recent], means[-k_recent:]
        n_before = (counts[:-k_recent] > 0).sum(axis=0)
        before_sum = np.where(counts[:-k_recent] > 0, before, 0.0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            ref_now = np.where(n_before > 0, before_sum / n_before, np.nan)
        # Sustained = at least half the buckets the series can fill hold data (a meter
        # reporting every 5 min fills one 1-min bucket in five).
        interval = window.interval_ms[self.targets.rows]
        with np.errstate(invalid="ignore", divide="ignore"):
            fillable = k_recent * np.minimum(1.0, ring.res_ms / interval)
        fillable = np.where(np.isnan(interval), k_recent, np.clip(fillable, 1.0, k_recent))
        is_dense = (counts[-k_recent:] > 0).sum(axis=0) * 2 >= fillable
        floor = np.where(counts[-k_recent:] > 0, recent, np.inf).min(axis=0)
        floor = np.where(is_dense & np.isfinite(floor), floor, np.nan)
        is_firing = self.state.is_firing
        ref = np.where(is_firing & ~np.isnan(self.reference), self.reference, ref_now)
        need = np.full(self.targets.n, -np.inf)
        if spec.jump is not None:
            need = np.maximum(need, ref + np.where(is_firing, spec.jump / 2, spec.jump))
        if spec.factor is not None:
            f = np.where(is_firing, (1 + spec.factor) / 2, spec.factor)
            need = np.maximum(need, ref * f)
        value = floor - ref
        is_true = floor >= need
        if k_back:  # a spike: back under the half-way mark, and seen to be back
            half = np.full(self.targets.n, np.inf)
            if spec.jump is not None:
                half = np.minimum(half, ref + spec.jump / 2)
            if spec.factor is not None:
                half = np.minimum(half, ref * (1 + spec.factor) / 2)
            is_true &= after_max < half
            value = np.where(np.isnan(after_max), np.nan, value)
        self.reference = np.where(is_firing | is_true, ref, np.nan)
        return self.verdict(is_true, value, need - ref)


def _after_max(means: FloatArray, counts: npt.NDArray[np.int32]) -> FloatArray:
    """Largest bucket mean of the buckets after a spike (k, n) → (n,); NaN if none has data
    (an empty `back_within` window is unknown, not "back")."""
    if means.shape[0] == 0:
        return np.full(means.shape[1], -np.inf)
    high = np.where(counts > 0, means, -np.inf).max(axis=0)
    return np.where(np.isfinite(high), high, np.nan)
