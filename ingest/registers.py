"""Cumulative registers (`energy_kwh`, `water_m3`) → `delta`, the consumption since the
meter's previous reading (domain-reference §4.1).

Per series the tracker keeps the newest (ts, value) it has handed to the store. A reading
at or before that time (out of order, or a QoS 1 redelivery) gets no delta, so a
redelivered message never counts twice: the store keeps the delta written the first time
(InfluxDB unions fields; the DuckDB store coalesces). A register that goes down is a reset
or a replacement: Δ = the new value (a lower bound, the Flux `increase()` convention) when
that is plausible, none otherwise, and the reading is flagged. A rise above what the site
could consume in the elapsed time is flagged and gets no delta either.

The state is arrays over the cluster's series, updated with numpy per batch, and saved to a
small JSON file after each durable flush; at start it is loaded and merged with the store's
latest readings (whichever is newer wins).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import orjson

from ecocluster.core.registry import Cluster
from ecocluster.core.types import CUMULATIVE_QUANTITIES, IntArray, ReadingBatch, SeriesKey

__all__ = ["RegisterFlags", "RegisterTracker"]

_log = logging.getLogger(__name__)
_NO_TS: Final = np.iinfo(np.int64).min
#: Plausible maximum rates when the site declares no contracted power.
DEFAULT_MAX_KW: Final = 1000.0
DEFAULT_MAX_M3_PER_H: Final = 500.0
#: Headroom over the contracted power before a rise counts as implausible.
HEADROOM: Final = 1.5
#: Δ allowed however short the interval (meters resolve ~0.01 units).
_MIN_ALLOWANCE: Final = 0.05


@dataclass(frozen=True, slots=True)
class RegisterFlags:
    """Rows (of the batch `apply` returned) whose register went down or jumped."""

    reset_idx: IntArray
    jump_idx: IntArray


class RegisterTracker:
    """Computes deltas for a batch whose `series_idx` index `cluster.series`."""

    def __init__(self, cluster: Cluster, state_path: Path | None = None) -> None:
        self.series: Sequence[SeriesKey] = cluster.series
        n = len(self.series)
        self.state_path = state_path
        self.last_ts = np.full(n, _NO_TS, np.int64)
        self.last_value = np.full(n, np.nan)
        self.is_register = np.array(
            [k.quantity in CUMULATIVE_QUANTITIES for k in self.series], bool
        )
        max_per_h = np.zeros(n)
        for i, key in enumerate(self.series):
            if key.quantity == "energy_kwh":
                power_w = cluster.site_by_id[key.site].contracted_power_w
                max_per_h[i] = power_w * HEADROOM / 1000 if power_w else DEFAULT_MAX_KW
            elif key.quantity == "water_m3":
                max_per_h[i] = DEFAULT_MAX_M3_PER_H
        self.max_per_ms = max_per_h / 3_600_000
        self._index = {(k.site, k.meter, k.quantity): i for i, k in enumerate(self.series)}
        self.dirty = False

    # -- deltas -----------------------------------------------------------------------------
    def apply(self, batch: ReadingBatch) -> tuple[ReadingBatch, RegisterFlags]:
        """The batch sorted by (series, time) with `deltas` filled for registers; advances state."""
        order = np.lexsort((batch.ts_ms, batch.series_idx))
        sidx, ts, values = batch.series_idx[order], batch.ts_ms[order], batch.values[order]
        deltas = np.full(len(ts), np.nan)
        reg = self.is_register[sidx] & (ts > self.last_ts[sidx])  # late rows: no delta
        reset_idx = jump_idx = np.empty(0, np.int64)
        rows = np.flatnonzero(reg)
        if rows.size:
            s, t, v = sidx[rows], ts[rows], values[rows]
            same = np.r_[False, s[1:] == s[:-1]]
            prev_v = np.where(same, np.r_[np.nan, v[:-1]], self.last_value[s])
            prev_t = np.where(same, np.r_[_NO_TS, t[:-1]], self.last_ts[s])
            d = v - prev_v  # NaN where there is no previous reading
            dt_ms = np.where(prev_t == _NO_TS, 0, t - prev_t).astype(np.float64)
            allowance = self.max_per_ms[s] * dt_ms + _MIN_ALLOWANCE
            went_down = d < 0
            jumped = d > allowance
            d = np.where(went_down, np.where(v <= allowance, v, np.nan), d)
            d[jumped] = np.nan
            deltas[rows] = d
            reset_idx, jump_idx = rows[went_down], rows[jumped]
            last = np.r_[s[1:] != s[:-1], True]
            self.last_ts[s[last]] = t[last]
            self.last_value[s[last]] = v[last]
            self.dirty = True
        sorted_batch = ReadingBatch(batch.series, sidx, ts, values, deltas)
        return sorted_batch, RegisterFlags(reset_idx, jump_idx)

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
        except (OSError, orjson.JSONDecodeError) as exc:
            _log.warning(
                "register state %s unreadable (%s); starting from the store", self.state_path, exc
            )
            return 0
        restored = 0
        for name, (ts, value) in saved.get("series", {}).items():
            site, meter, quantity = name.split("/")
            i = self._index.get((site, meter, quantity))
            if i is not None and ts > self.last_ts[i]:
                self.last_ts[i], self.last_value[i] = ts, value
                restored += 1
        return restored

    def save(self) -> None:
        """Write the state atomically (temp file, fsync, rename) if it changed."""
        if self.state_path is None or not self.dirty:
            return
        known = np.flatnonzero(self.is_register & (self.last_ts != _NO_TS))
        state = {
            f"{self.series[i].site}/{self.series[i].meter}/{self.series[i].quantity}": [
                int(self.last_ts[i]),
                float(self.last_value[i]),
            ]
            for i in known.tolist()
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as fh:
            fh.write(orjson.dumps({"version": 1, "series": state}))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.state_path)
        self.dirty = False

    def values_of(self, i: int) -> tuple[int, float] | None:
        """The (ts, value) the tracker holds for series `i` (for tests and diagnostics)."""
        if self.last_ts[i] == _NO_TS:
            return None
        return int(self.last_ts[i]), float(self.last_value[i])
