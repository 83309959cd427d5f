"""`anomaly`: the recent mean departs from what the series' own history expects, by at
least `z` robust deviations AND by at least `min_effect` in the quantity's unit.

    - {name: power-anomaly, type: anomaly, quantity: power_w, z: 5, window: 15m,
       min_effect: 2000, min_history: 14d, severity: info}

`season: week` (default) compares with the 15-minute slot of the territory's week that
each reading of the window fell in (working day / Saturday / Sunday-or-holiday, see
`rules/baseline.py`), weighted by where the window's data lies: an hourly reading at
HH:00 meets the HH:00 slot, a window across an opening ramp meets each side in its share.
`season: none` compares with a robust running level of the series itself (time constant
`learn`), for signals without a weekly rhythm.

Warm-up counts real samples: a series is judged once it has taught the baseline for
`min_history` and every slot its window touches holds `min_samples` bucket means, however
often it reports. A spread of zero (a meter that always read exactly 0) is floored, and
`min_effect` keeps an infinitesimal change from being an anomaly.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import numpy as np
from pydantic import Field

from ecocluster.core.durations import Duration
from ecocluster.core.types import FloatArray, IntArray
from ecocluster.rules.baseline import MAD_TO_SIGMA, Expectation
from ecocluster.rules.config import RuleBase, ms
from ecocluster.rules.kernel import CompileContext, Kernel, Verdict
from ecocluster.rules.ring import WindowSlice
from ecocluster.rules.window import HotWindow

__all__ = ["DEFAULT_MIN_EFFECT", "AnomalyKernel", "AnomalyRule"]

#: Smallest departure worth an alert when the rule gives no `min_effect`, by quantity.
DEFAULT_MIN_EFFECT: dict[str, float] = {
    "power_w": 500.0,
    "flow_lpm": 2.0,
    "temp_c": 2.0,
    "rh_pct": 10.0,
    "co2_ppm": 200.0,
    "pm10_ugm3": 20.0,
    "pm25_ugm3": 15.0,
    "no2_ugm3": 40.0,
    "o3_ugm3": 40.0,
    "so2_ugm3": 20.0,
    "co_mgm3": 2.0,
}
_NEVER = np.iinfo(np.int64).max
#: The smallest spread a z-score is divided by: never infinite, never NaN.
_TINY = 1e-9
_CLIP = 3.0


class AnomalyRule(RuleBase):
    type: Literal["anomaly"]
    z: float = Field(default=4.0, gt=0)
    window: Duration = timedelta(minutes=15)
    min_history: Duration = timedelta(days=14)
    #: Bucket means each slot the window touches must hold (season `week`), or readings
    #: the running level must have seen (season `none`).
    min_samples: int = Field(default=3, ge=1, le=255)
    direction: Literal["both", "above", "below"] = "both"
    #: Smallest |recent − expected| that counts, in the quantity's unit (None: a default
    #: per quantity, `DEFAULT_MIN_EFFECT`).
    min_effect: float | None = Field(default=None, ge=0)
    #: Spread floors: a share of the expected value, and an absolute amount.
    rel_floor: float = Field(default=0.05, ge=0)
    abs_floor: float = Field(default=0.0, ge=0)
    season: Literal["week", "none"] = "week"
    #: Time constant of the running level (season `none`).
    learn: Duration = timedelta(hours=6)


class AnomalyKernel(Kernel[AnomalyRule]):
    def prepare(self, ctx: CompileContext) -> None:
        spec = self.spec
        self.window_ms = ms(spec.window)
        self.check_window(ctx, "window", self.window_ms)
        self.min_history_ms = ms(spec.min_history)
        if spec.min_effect is not None:
            self.min_effect = spec.min_effect
        else:
            self.min_effect = DEFAULT_MIN_EFFECT.get(spec.quantity or "", 0.0)
        if spec.season == "none":
            self.running = RunningLevel(self.targets.n)

    def evaluate(self, window: HotWindow, now_ms: int) -> Verdict:
        spec, rows = self.spec, self.targets.rows
        sl = window.window(rows, now_ms, self.window_ms)
        x = sl.total_mean()
        if spec.season == "none":
            self.running.learn(window, rows, now_ms - self.window_ms, ms(spec.learn))
            exp = self.running.expect()
        else:
            exp = self._seasonal(window, sl, now_ms)
        sigma = np.fmax(exp.sigma, np.fmax(spec.rel_floor * np.abs(exp.level), spec.abs_floor))
        sigma = np.fmax(sigma, _TINY)  # fmax: a NaN (no history) side gives way
        effect = x - exp.level
        z = effect / sigma
        if spec.direction == "above":
            is_true = (z >= spec.z) & (effect >= self.min_effect)
        elif spec.direction == "below":
            is_true = (z <= -spec.z) & (effect <= -self.min_effect)
        else:
            is_true = (np.abs(z) >= spec.z) & (np.abs(effect) >= self.min_effect)
        is_warm = (exp.samples >= spec.min_samples) & (exp.since_ms <= now_ms - self.min_history_ms)
        is_true &= is_warm
        return self.verdict(is_true, x, exp.level)

    def _seasonal(self, window: HotWindow, sl: WindowSlice, now_ms: int) -> Expectation:
        """The baseline of the slots the window's data fell in, weighted by counts."""
        ring = window.ring_for(self.window_ms)
        counts = sl.count.astype(np.float64)  # (k, n)
        k = counts.shape[0]
        end = (now_ms - 1) // ring.res_ms
        starts = np.arange(end - k + 1, end + 1, dtype=np.int64) * ring.res_ms
        slots, inverse = np.unique(window.calendar.slots(starts), return_inverse=True)
        weights = np.zeros((slots.shape[0], counts.shape[1]))
        for j in range(slots.shape[0]):
            weights[j] = counts[inverse == j].sum(axis=0)
        return window.baseline.expect(self.targets.rows, slots, weights)


class RunningLevel:
    """A robust running level and spread per target (season `none`): an EWMA of every
    fine-bucket mean older than the rule's window, residuals clipped at 3 spreads."""

    def __init__(self, n: int) -> None:
        self.level = np.full(n, np.nan)
        self.spread = np.zeros(n)
        self.count = np.zeros(n, np.int64)
        self.first_ms = np.full(n, _NEVER, np.int64)
        self.fed_through = -(2**62)

    def learn(self, window: HotWindow, rows: IntArray, before_ms: int, learn_ms: int) -> None:
        """Fold in every fine bucket that ends at or before `before_ms` not yet seen."""
        ring = window.fine
        last = min(before_ms // ring.res_ms - 1, ring.head)
        first = max(self.fed_through + 1, ring.head - ring.n_buckets + 1)
        if last < first:
            return
        self.fed_through = last
        sl = ring.window(rows, last, last - first + 1)  # (k, n), oldest first
        counts = sl.count
        filled = np.flatnonzero(counts.any(axis=1))
        if filled.shape[0] == 0:
            return
        interval = window.interval_ms[rows]
        interval = np.where(np.isnan(interval), float(ring.res_ms), interval)
        n_eff = np.maximum(learn_ms / np.maximum(interval, ring.res_ms), 1.0)
        sums = sl.sum
        for j in filled.tolist():
            has = counts[j] > 0
            idx = np.flatnonzero(has)
            mean = sums[j, has] / counts[j, has]
            self._update(idx, mean, n_eff[has], (first + j) * ring.res_ms)

    def _update(self, idx: IntArray, x: FloatArray, n_eff: FloatArray, start_ms: int) -> None:
        n = self.count[idx].astype(np.float64)
        level = self.level[idx]
        level = np.where(np.isnan(level), 0.0, level)
        spread = self.spread[idx]
        alpha = 1.0 / np.minimum(n + 1.0, n_eff)
        resid = x - level
        bound = _CLIP * np.maximum(spread, np.maximum(0.01 * np.abs(level), 1e-6))
        resid = np.where(n >= 3, np.clip(resid, -bound, bound), resid)
        self.level[idx] = np.where(n == 0, x, level + alpha * resid)
        self.spread[idx] = np.where(n == 0, 0.0, spread + alpha * (np.abs(resid) - spread))
        self.count[idx] += 1
        self.first_ms[idx] = np.minimum(self.first_ms[idx], start_ms)

    def expect(self) -> Expectation:
        samples = np.minimum(self.count, 255)
        return Expectation(self.level, self.spread * MAD_TO_SIGMA, samples, self.first_ms)
