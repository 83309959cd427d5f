"""Cumulative registers (`energy_kwh`, `water_m3`) → `delta`, the consumption since the
meter's previous reading (domain-reference §4.1).

Rules, per series, in time order (a delta is never negative and never more than the
meter could have used in the interval, `max_rate × Δt`; a suspicious reading is flagged,
its delta not booked, and it does not become the baseline):

- **normal**: 0 ≤ Δ ≤ plausible → Δ booked, the reading is the new baseline;
- **jitter**: a drop within the meter's resolution → Δ = 0, the baseline keeps the higher
  value (so the jitter is not booked twice on the way back up);
- **rollover** at the meter's declared `register_size` R: prev > 0.9 R and cur < 0.1 R →
  Δ = (R − prev) + cur, when plausible;
- anything else (a drop, or a rise beyond plausible) is held as a **candidate** and
  flagged (`drop` / `jump`), with no delta. The next reading decides: plausible from the
  baseline → the candidate was a one-reading spike and is forgotten (water 120 → 1e9 →
  120.1 books 0.1); plausible from the candidate → the level really changed: a confirmed
  drop is a reset (`reset`: Δ = the candidate's value, the Flux `increase()` lower bound),
  a confirmed rise a replaced meter or a gap (`shift`: the step is not booked).

A reading at or before the baseline's time (out of order, or a QoS 1 redelivery) gets no
delta, so a redelivered message never counts twice: the store keeps the delta written the
first time (InfluxDB unions fields; the DuckDB store coalesces).

The common case is vectorised: a series whose rows are all normal is handled in numpy.
Only series with a candidate or a row that is not normal go through `_walk`, the one loop,
which applies the rules above reading by reading. The state (baseline and candidate per
series) is saved to a small JSON file after each durable flush; at start it is loaded and
merged with the store's latest readings (whichever is newer wins).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import orjson

from ecocluster.core.registry import Cluster
from ecocluster.core.types import (
    CUMULATIVE_QUANTITIES,
    FloatArray,
    IntArray,
    ReadingBatch,
    SeriesKey,
)

__all__ = ["FLAG_KINDS", "RegisterFlags", "RegisterTracker"]

_log = logging.getLogger(__name__)
_NO_TS: Final = np.iinfo(np.int64).min
#: Plausible maximum rates when neither the meter nor its site declares one.
DEFAULT_MAX_KW: Final = 1000.0
DEFAULT_MAX_M3_PER_H: Final = 500.0
#: Headroom over the contracted power before a rise counts as implausible.
HEADROOM: Final = 1.5
#: Δ allowed however short the interval (meters resolve ~0.01 units); also the smallest
#: backwards step taken as jitter rather than a drop.
_MIN_ALLOWANCE: Final = 0.05
_JITTER_RELATIVE: Final = 1e-6
FLAG_KINDS: Final = ("drop", "jump", "reset", "shift", "rollover")


@dataclass(frozen=True, slots=True)
class RegisterFlags:
    """Rows (of the batch `apply` returned) flagged for review, by kind (`FLAG_KINDS`)."""

    rows: dict[str, list[int]]

    @property
    def reset_idx(self) -> IntArray:
        return np.array(self.rows.get("drop", []) + self.rows.get("reset", []), np.int64)

    @property
    def jump_idx(self) -> IntArray:
        return np.array(self.rows.get("jump", []) + self.rows.get("shift", []), np.int64)


class RegisterTracker:
    """Computes deltas for a batch whose `series_idx` index `cluster.series`."""

    def __init__(self, cluster: Cluster, state_path: Path | None = None) -> None:
        self.series: Sequence[SeriesKey] = cluster.series
        n = len(self.series)
        self.state_path = state_path
        self.last_ts = np.full(n, _NO_TS, np.int64)
        self.last_value = np.full(n, np.nan)
        self.cand_ts = np.full(n, _NO_TS, np.int64)
        self.cand_value = np.full(n, np.nan)
        self.is_register = np.array(
            [k.quantity in CUMULATIVE_QUANTITIES for k in self.series], bool
        )
        max_per_h = np.zeros(n)
        self.register_size = np.full(n, np.nan)
        for i, key in enumerate(self.series):
            if not self.is_register[i]:
                continue
            meter = cluster.meter(key.site, key.meter)
            max_per_h[i] = _max_per_h(cluster, key, meter.max_rate_per_h if meter else None)
            if meter is not None and meter.register_size:
                self.register_size[i] = meter.register_size
        self.max_per_ms = max_per_h / 3_600_000
        self._index = {(k.site, k.meter, k.quantity): i for i, k in enumerate(self.series)}
        self.dirty = False

    # -- deltas -----------------------------------------------------------------------------
    def apply(self, batch: ReadingBatch) -> tuple[ReadingBatch, RegisterFlags]:
        """The batch sorted by (series, time) with `deltas` filled for registers; advances state."""
        order = np.lexsort((batch.ts_ms, batch.series_idx))
        sidx, ts, values = batch.series_idx[order], batch.ts_ms[order], batch.values[order]
        deltas = np.full(len(ts), np.nan)
        flags: dict[str, list[int]] = {}
        rows = np.flatnonzero(self.is_register[sidx] & (ts > self.last_ts[sidx]))
        if rows.size:
            self._apply_rows(rows, sidx, ts, values, deltas, flags)
            self.dirty = True
        sorted_batch = ReadingBatch(batch.series, sidx, ts, values, deltas)
        return sorted_batch, RegisterFlags(flags)

    def _apply_rows(
        self,
        rows: IntArray,
        sidx: IntArray,
        ts: IntArray,
        values: FloatArray,
        deltas: FloatArray,
        flags: dict[str, list[int]],
    ) -> None:
        s, t, v = sidx[rows], ts[rows], values[rows]
        same = np.r_[False, s[1:] == s[:-1]]
        prev_v = np.where(same, np.r_[np.nan, v[:-1]], self.last_value[s])
        prev_t = np.where(same, np.r_[_NO_TS, t[:-1]], self.last_ts[s])
        d = v - prev_v  # NaN where there is no previous reading
        dt_ms = np.where(prev_t == _NO_TS, 0, t - prev_t).astype(np.float64)
        allowance = self.max_per_ms[s] * dt_ms + _MIN_ALLOWANCE
        odd = ~(np.isnan(d) | ((d >= 0) & (d <= allowance))) | (self.cand_ts[s] != _NO_TS)
        if not odd.any():  # the common case: every row normal, no candidate pending
            deltas[rows] = d
            last = np.r_[s[1:] != s[:-1], True]
            self.last_ts[s[last]] = t[last]
            self.last_value[s[last]] = v[last]
            return
        slow = np.isin(s, np.unique(s[odd]))
        fast = ~slow
        deltas[rows[fast]] = d[fast]
        last = fast & np.r_[s[1:] != s[:-1], True]
        self.last_ts[s[last]] = t[last]
        self.last_value[s[last]] = v[last]
        if slow.any():
            slow_rows = rows[slow]
            bounds = np.flatnonzero(np.r_[True, sidx[slow_rows][1:] != sidx[slow_rows][:-1]])
            for part in np.split(slow_rows, bounds[1:]):
                self._walk(int(sidx[part[0]]), part.tolist(), ts, values, deltas, flags)

    def _walk(
        self,
        i: int,
        rows: list[int],
        ts: IntArray,
        values: FloatArray,
        deltas: FloatArray,
        flags: dict[str, list[int]],
    ) -> None:
        """The rules of the module docstring, reading by reading, for one series."""
        rate, size = float(self.max_per_ms[i]), float(self.register_size[i])
        base_t, base_v = int(self.last_ts[i]), float(self.last_value[i])
        cand_t, cand_v = int(self.cand_ts[i]), float(self.cand_value[i])
        for row in rows:
            t, v = int(ts[row]), float(values[row])
            if t <= base_t:
                continue
            if base_t == _NO_TS:
                base_t, base_v = t, v
                continue
            d, allow = v - base_v, rate * (t - base_t) + _MIN_ALLOWANCE
            jitter = max(_MIN_ALLOWANCE, _JITTER_RELATIVE * abs(base_v))
            kind = None
            if 0 <= d <= allow:
                deltas[row], base_t, base_v, cand_t = d, t, v, _NO_TS
            elif -jitter <= d < 0:
                deltas[row], base_t, cand_t = 0.0, t, _NO_TS  # keep the higher value
            elif _rolled_over(base_v, v, size) and (size - base_v) + v <= allow:
                deltas[row], base_t, base_v, cand_t, kind = (
                    (size - base_v) + v,
                    t,
                    v,
                    _NO_TS,
                    "rollover",
                )
            elif cand_t != _NO_TS and t > cand_t and _plausible(v - cand_v, rate, t - cand_t):
                booked = max(v - cand_v, 0.0)
                if cand_v < base_v:  # a confirmed drop: a reset, the candidate a lower bound
                    kind = "reset"
                    if cand_v <= rate * (cand_t - base_t) + _MIN_ALLOWANCE:
                        booked += cand_v
                else:
                    kind = "shift"
                deltas[row], base_t, base_v, cand_t = booked, t, max(v, cand_v), _NO_TS
            else:
                kind = "drop" if d < 0 else "jump"
                cand_t, cand_v = t, v
            if kind is not None:
                flags.setdefault(kind, []).append(row)
        self.last_ts[i], self.last_value[i] = base_t, base_v
        self.cand_ts[i], self.cand_value[i] = cand_t, cand_v

    # -- state ------------------------------------------------------------------------------
    def merge_latest(self, latest: ReadingBatch) -> int:
        """Adopt newer (ts, value) pairs from a store's `latest()`; returns how many."""
        adopted = 0
        for key, ts, value in zip(
            (latest.series[i] for i in latest.series_idx.tolist()),
            latest.ts_ms.tolist(),
            latest.values.tolist(),
            strict=True,
        ):
            i = self._index.get((key.site, key.meter, key.quantity))
            if i is not None and self.is_register[i] and ts > self.last_ts[i]:
                self.last_ts[i], self.last_value[i] = ts, value
                adopted += 1
        return adopted

    def load(self) -> int:
        """Restore the state file, if any; returns the series restored."""
        if self.state_path is None or not self.state_path.exists():
            return 0
        try:
            saved = orjson.loads(self.state_path.read_bytes())
            entries = saved.get("series", {}).items()
        except (OSError, orjson.JSONDecodeError, AttributeError) as exc:
            _log.warning(
                "register state %s unreadable (%s); starting from the store", self.state_path, exc
            )
            return 0
        restored = 0
        for name, state in entries:
            site, meter, quantity = [*str(name).split("/"), "", "", ""][:3]
            i = self._index.get((site, meter, quantity))
            if i is None or not isinstance(state, list) or len(state) < 2:
                continue
            ts, value = int(state[0]), float(state[1])
            if ts > self.last_ts[i]:
                self.last_ts[i], self.last_value[i] = ts, value
                if len(state) >= 4 and state[2] is not None:
                    self.cand_ts[i], self.cand_value[i] = int(state[2]), float(state[3])
                restored += 1
        return restored

    def save(self) -> None:
        """Write the state atomically (temp file, fsync, rename) if it changed. A full disk
        is logged and retried at the next save, never raised: the store has the data."""
        if self.state_path is None or not self.dirty:
            return
        known = np.flatnonzero(self.is_register & (self.last_ts != _NO_TS))
        state = {}
        for i in known.tolist():
            k = self.series[i]
            cand = self.cand_ts[i] != _NO_TS
            state[f"{k.site}/{k.meter}/{k.quantity}"] = [
                int(self.last_ts[i]),
                float(self.last_value[i]),
                int(self.cand_ts[i]) if cand else None,
                float(self.cand_value[i]) if cand else None,
            ]
        tmp = self.state_path.with_suffix(".tmp")
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as fh:
                fh.write(orjson.dumps({"version": 2, "series": state}))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.state_path)
        except OSError as exc:
            _log.warning("register state not saved (%s); retrying later", exc)
            return
        self.dirty = False

    def values_of(self, i: int) -> tuple[int, float] | None:
        """The (ts, value) baseline the tracker holds for series `i` (tests, diagnostics)."""
        if self.last_ts[i] == _NO_TS:
            return None
        return int(self.last_ts[i]), float(self.last_value[i])


def _max_per_h(cluster: Cluster, key: SeriesKey, declared: float | None) -> float:
    if declared:
        return declared
    if key.quantity == "energy_kwh":
        power_w = cluster.site_by_id[key.site].contracted_power_w
        return power_w * HEADROOM / 1000 if power_w else DEFAULT_MAX_KW
    return DEFAULT_MAX_M3_PER_H


def _rolled_over(prev: float, cur: float, size: float) -> bool:
    return not math.isnan(size) and prev > 0.9 * size and cur < 0.1 * size


def _plausible(d: float, rate: float, dt_ms: int) -> bool:
    jitter = _MIN_ALLOWANCE
    return -jitter <= d <= rate * dt_ms + _MIN_ALLOWANCE
