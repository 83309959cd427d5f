"""Per-series seasonal baselines: a robust online mean and spread per hour of the week.

Fed with the mean of each completed coarse bucket (e.g. 15 min), so one update is one
vectorised step over every series that had data in that bucket. The mean is an EWMA with
`alpha = 1 / min(n + 1, n_eff)` (a plain mean while history is short); residuals are
clipped to ±3 spreads before updating, so an outage or a burst barely moves it. The
spread is the same EWMA of |residual| (a mean absolute deviation, ≈ 0.8 σ for noise).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from ecocluster.core.types import FloatArray, IntArray

__all__ = ["HOURS_PER_WEEK", "BaselineTable", "hour_of_week"]

HOURS_PER_WEEK = 168
#: |x - mean| / spread beyond which an update is clipped (robustness against outliers).
_CLIP = 3.0
#: MAD of a normal distribution is sqrt(2/pi) σ: divide by this to get σ units.
MAD_TO_SIGMA = 1.2533


def hour_of_week(ts_ms: int, tz: ZoneInfo) -> int:
    """Local hour of the week, Monday 00:00 = 0 (…167), in the territory's time zone."""
    local = datetime.fromtimestamp(ts_ms / 1000, tz)
    return local.weekday() * 24 + local.hour


class BaselineTable:
    """(n_series, 168) float32 mean and spread, uint16 sample counts: 10 bytes per bin."""

    def __init__(self, n_series: int, *, n_eff: int = 16) -> None:
        self.n_eff = n_eff
        self.mean = np.zeros((n_series, HOURS_PER_WEEK), np.float32)
        self.spread = np.zeros((n_series, HOURS_PER_WEEK), np.float32)
        self.n = np.zeros((n_series, HOURS_PER_WEEK), np.uint16)

    @property
    def nbytes(self) -> int:
        return self.mean.nbytes + self.spread.nbytes + self.n.nbytes

    def grow(self, n_new: int) -> None:
        self.mean = np.concatenate([self.mean, np.zeros((n_new, HOURS_PER_WEEK), np.float32)])
        self.spread = np.concatenate([self.spread, np.zeros((n_new, HOURS_PER_WEEK), np.float32)])
        self.n = np.concatenate([self.n, np.zeros((n_new, HOURS_PER_WEEK), np.uint16)])

    def update(self, rows: IntArray, how: int, x: FloatArray) -> None:
        """One sample `x` (n,) for each of `rows` (n,) in hour-of-week bin `how`."""
        keep = np.isfinite(x)
        rows, x = rows[keep], x[keep]
        n = self.n[rows, how].astype(np.float64)
        mean = self.mean[rows, how].astype(np.float64)
        spread = self.spread[rows, how].astype(np.float64)
        alpha = 1.0 / np.minimum(n + 1.0, self.n_eff)
        resid = x - mean
        is_clipped = n >= 4
        # Floors keep a flat start (spread 0) able to learn a real change of level.
        bound = _CLIP * np.maximum(spread, np.maximum(0.1 * np.abs(mean), 1e-6))
        resid = np.where(is_clipped, np.clip(resid, -bound, bound), resid)
        new_mean = np.where(n == 0, x, mean + alpha * resid)
        new_spread = np.where(n == 0, 0.0, spread + alpha * (np.abs(resid) - spread))
        self.mean[rows, how] = new_mean
        self.spread[rows, how] = new_spread
        self.n[rows, how] = np.minimum(n + 1, np.iinfo(np.uint16).max)

    def zscore(
        self, rows: IntArray, how: int, x: FloatArray, *, rel_floor: float, abs_floor: float
    ) -> tuple[FloatArray, FloatArray, IntArray]:
        """Robust z of `x` (n,) against bin `how`: (z, expected, samples), each (n,).

        The spread is floored at `rel_floor * |mean|` and `abs_floor`, so a flat history
        (a meter that always read 0) does not turn every wobble into an anomaly.
        """
        mean = self.mean[rows, how].astype(np.float64)
        sigma = self.spread[rows, how].astype(np.float64) * MAD_TO_SIGMA
        sigma = np.maximum(sigma, np.maximum(rel_floor * np.abs(mean), abs_floor))
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (x - mean) / sigma
        return z, mean, self.n[rows, how].astype(np.int64)
