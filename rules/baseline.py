"""Per-series seasonal baselines: a robust level and spread per 15-minute slot of the
territory's week, in its own calendar.

A slot is (day type, quarter hour of the local day): day types are working days,
Saturdays, and Sundays together with the territory's public holidays, so 288 slots learn
the opening and closing ramps of a depot or a school at 15-minute resolution and a
holiday Monday is compared with Sundays, not with Mondays.

Fed with the mean of each completed coarse bucket (e.g. 15 min), so one update is one
vectorised step over every series that had data in that bucket. Updates are robust
(Huber-style, as in robust Holt-Winters): the level is an EWMA with
`alpha = 1 / min(n + 1, n_eff)` (a plain mean while history is short) of residuals
clipped to ±3 spreads once a slot has a few samples, so the faults the rule must find
(a stuck value, a leak, an overload) barely move what "normal" is. The spread is the
same EWMA of |residual|: a mean absolute deviation, ≈ 0.8 σ for Gaussian noise.

Warm-up is counted in actual samples: each slot counts the bucket means it learned from,
and each series remembers when it first taught the table, so a sparse (hourly) series
is as ready after two weeks as a dense one.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

from ecocluster.core.holidays import ITALIAN_FIXED_HOLIDAYS, easter_sunday
from ecocluster.core.types import FloatArray, IntArray

__all__ = [
    "N_SLOTS",
    "SLOT_MS",
    "BaselineTable",
    "Calendar",
    "Expectation",
]

SLOT_MS = 900_000
SLOTS_PER_DAY = 96
#: Day types: 0 working day, 1 Saturday, 2 Sunday or public holiday.
DAY_TYPES = 3
N_SLOTS = DAY_TYPES * SLOTS_PER_DAY
#: |x - level| / spread beyond which an update is clipped (robustness against outliers).
_CLIP = 3.0
#: Updates are clipped once a slot holds this many samples.
_CLIP_FROM = 3
#: MAD of a normal distribution is sqrt(2/pi) σ: divide by this to get σ units.
MAD_TO_SIGMA = 1.2533
_NEVER = np.iinfo(np.int64).max

_IT_ZONES = frozenset({"Europe/Rome", "Europe/Vatican", "Europe/San_Marino"})
#: Holidays kept where the territory's country is not known from its time zone.
_COMMON_FIXED = ((1, 1), (12, 25))


class Calendar:
    """The territory's clock and public holidays: which slot a local instant falls in.

    The holiday list follows the time zone: Italian national holidays (with Easter
    Monday) for Europe/Rome, only New Year and Christmas elsewhere.
    """

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        key = getattr(tz, "key", "") or ""
        self._fixed = ITALIAN_FIXED_HOLIDAYS if key in _IT_ZONES else _COMMON_FIXED
        self._easter_monday = key in _IT_ZONES
        self._day_type = lru_cache(maxsize=4096)(self._compute_day_type)

    def is_holiday(self, day: date) -> bool:
        if (day.month, day.day) in self._fixed:
            return True
        return self._easter_monday and day == easter_sunday(day.year) + timedelta(days=1)

    def _compute_day_type(self, day: date) -> int:
        if day.weekday() == 6 or self.is_holiday(day):
            return 2
        return 1 if day.weekday() == 5 else 0

    def slot(self, ts_ms: int) -> int:
        """Slot of the instant `ts_ms`: day type × 96 + local quarter hour."""
        local = datetime.fromtimestamp(ts_ms / 1000, self.tz)
        quarter = local.hour * 4 + local.minute // 15
        return self._day_type(local.date()) * SLOTS_PER_DAY + quarter

    def slots(self, starts_ms: IntArray) -> IntArray:
        """Slot of each instant (k,), for the few bucket starts of one window."""
        return np.fromiter((self.slot(int(t)) for t in starts_ms), np.int64, starts_ms.shape[0])


class Expectation:
    """What the baseline expects of a window, per series (n,): `level`, `sigma` (σ units,
    unfloored), `samples` (the fewest samples among the slots the window's data fell in)
    and `since_ms` (when the series first taught the table)."""

    __slots__ = ("level", "samples", "sigma", "since_ms")

    def __init__(
        self, level: FloatArray, sigma: FloatArray, samples: IntArray, since_ms: IntArray
    ) -> None:
        self.level, self.sigma, self.samples, self.since_ms = level, sigma, samples, since_ms


class BaselineTable:
    """(n_series, 288) float32 level and spread, uint8 sample counts (saturating at 255):
    9 bytes per slot, plus when each series first taught the table."""

    def __init__(self, n_series: int, *, n_eff: int = 12) -> None:
        self.n_eff = n_eff
        self.level = np.zeros((n_series, N_SLOTS), np.float32)
        self.spread = np.zeros((n_series, N_SLOTS), np.float32)
        self.n = np.zeros((n_series, N_SLOTS), np.uint8)
        self.first_ms = np.full(n_series, _NEVER, np.int64)

    @property
    def nbytes(self) -> int:
        return self.level.nbytes + self.spread.nbytes + self.n.nbytes + self.first_ms.nbytes

    def grow(self, n_new: int) -> None:
        self.level = np.concatenate([self.level, np.zeros((n_new, N_SLOTS), np.float32)])
        self.spread = np.concatenate([self.spread, np.zeros((n_new, N_SLOTS), np.float32)])
        self.n = np.concatenate([self.n, np.zeros((n_new, N_SLOTS), np.uint8)])
        self.first_ms = np.concatenate([self.first_ms, np.full(n_new, _NEVER, np.int64)])

    def update(self, rows: IntArray, slot: int, x: FloatArray, start_ms: int) -> None:
        """One bucket mean `x` (n,) for each of `rows` (n,), of the bucket starting at
        `start_ms`, which falls in `slot`."""
        keep = np.isfinite(x)
        rows, x = rows[keep], x[keep]
        n = self.n[rows, slot].astype(np.float64)
        level = self.level[rows, slot].astype(np.float64)
        spread = self.spread[rows, slot].astype(np.float64)
        alpha = 1.0 / np.minimum(n + 1.0, self.n_eff)
        resid = x - level
        # Floors keep a flat start (spread 0) able to learn a real change of level.
        bound = _CLIP * np.maximum(spread, np.maximum(0.1 * np.abs(level), 1e-6))
        resid = np.where(n >= _CLIP_FROM, np.clip(resid, -bound, bound), resid)
        self.level[rows, slot] = np.where(n == 0, x, level + alpha * resid)
        self.spread[rows, slot] = np.where(n == 0, 0.0, spread + alpha * (np.abs(resid) - spread))
        self.n[rows, slot] = np.minimum(n + 1, 255)
        self.first_ms[rows] = np.minimum(self.first_ms[rows], start_ms)

    def expect(self, rows: IntArray, slots: IntArray, weights: FloatArray) -> Expectation:
        """The expected mean of a window whose data fell in `slots` (k,) with `weights`
        (k, n): per series, the count-weighted level of those slots (so an hourly reading
        at HH:00 is compared with the HH:00 slot, and a window across a ramp with the
        right share of each side), the count-weighted spread, and the fewest samples
        among the slots that hold weight."""
        level = self.level[rows[None, :], slots[:, None]].astype(np.float64)  # (k, n)
        spread = self.spread[rows[None, :], slots[:, None]].astype(np.float64)
        counts = self.n[rows[None, :], slots[:, None]].astype(np.int64)
        total = weights.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            expected = (weights * level).sum(axis=0) / total
            sigma = (weights * spread).sum(axis=0) / total * MAD_TO_SIGMA
        samples = np.where(weights > 0, counts, 255).min(axis=0)
        samples = np.where(total > 0, samples, 0)
        return Expectation(expected, sigma, samples, self.first_ms[rows])
