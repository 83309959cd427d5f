"""A ring of fixed-resolution buckets (count/sum/min/max) for every series at once.

Bucket `b` covers `[b * res_ms, (b + 1) * res_ms)`. All series share bucket times, so the
ring has one head (the newest bucket number) and advancing it clears whole columns. A
reading older than the ring's horizon is dropped; the rest are scattered in with
`np.add.at` / `np.minimum.at` / `np.maximum.at`, never a Python loop per reading.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from ecocluster.core.types import BoolArray, FloatArray, IntArray

CountArray: TypeAlias = npt.NDArray[np.int32]

__all__ = ["BucketRing", "WindowSlice"]

_NO_BUCKET = -(2**62)


class WindowSlice:
    """Buckets of some rows over a window, oldest first: each field (k, n_rows).

    Fields are gathered lazily (a rule that needs only counts and sums never copies the
    extremes), one contiguous bucket row at a time with `np.take`.
    """

    def __init__(
        self, ring: BucketRing, rows: IntArray | slice, slots: IntArray, is_held: BoolArray
    ) -> None:
        if (
            not isinstance(rows, slice)
            and rows.shape[0]
            and rows[-1] - rows[0] + 1 == rows.shape[0]
        ):
            rows = slice(int(rows[0]), int(rows[-1]) + 1)  # ascending and contiguous: copy blocks
        self._ring, self._rows, self._slots, self._is_held = ring, rows, slots, is_held

    def _gather(self, table: npt.NDArray[Any], fill: float) -> npt.NDArray[Any]:
        rows = self._rows
        if isinstance(rows, slice):
            out = table[self._slots, rows]
        else:
            out = np.empty((self._slots.shape[0], rows.shape[0]), table.dtype)
            for j, slot in enumerate(self._slots.tolist()):
                np.take(table[slot], rows, out=out[j])
        if not self._is_held.all():
            out[~self._is_held] = fill
        return out

    @cached_property
    def count(self) -> CountArray:
        return self._gather(self._ring.count, 0)

    @cached_property
    def sum(self) -> FloatArray:
        return self._gather(self._ring.sum, 0.0)

    @cached_property
    def min(self) -> FloatArray:
        return self._gather(self._ring.min, np.inf)

    @cached_property
    def max(self) -> FloatArray:
        return self._gather(self._ring.max, -np.inf)

    def mean(self) -> FloatArray:
        """Mean of each bucket, NaN where empty: (k, n_rows)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.sum / np.maximum(self.count, 1), np.nan)

    def total_mean(self) -> FloatArray:
        """Mean over the whole window, NaN where empty: (n_rows,)."""
        n = self.count.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, self.sum.sum(axis=0) / np.maximum(n, 1), np.nan)

    def total_min(self) -> FloatArray:
        low = self.min.min(axis=0)
        return np.where(np.isfinite(low), low, np.nan)

    def total_max(self) -> FloatArray:
        high = self.max.max(axis=0)
        return np.where(np.isfinite(high), high, np.nan)


class BucketRing:
    """`n_buckets` buckets of `res_ms` for `n_series` rows: 28 bytes per bucket per series.

    Stored bucket-major, (n_buckets, n_series): opening a bucket clears one contiguous
    row, and a window gathers k contiguous rows.
    """

    def __init__(self, n_series: int, *, res_ms: int, n_buckets: int) -> None:
        if res_ms <= 0 or n_buckets < 2:
            raise ValueError("a ring needs res_ms > 0 and at least 2 buckets")
        self.res_ms = int(res_ms)
        self.n_buckets = int(n_buckets)
        self.head = _NO_BUCKET
        self.count = np.zeros((n_buckets, n_series), np.int32)
        self.sum = np.zeros((n_buckets, n_series), np.float64)
        self.min = np.full((n_buckets, n_series), np.inf)
        self.max = np.full((n_buckets, n_series), -np.inf)

    @property
    def horizon_ms(self) -> int:
        return self.res_ms * self.n_buckets

    @property
    def nbytes(self) -> int:
        return self.count.nbytes + self.sum.nbytes + self.min.nbytes + self.max.nbytes

    def grow(self, n_new: int) -> None:
        """Add `n_new` empty rows at the end."""
        k = self.n_buckets
        self.count = np.concatenate([self.count, np.zeros((k, n_new), np.int32)], axis=1)
        self.sum = np.concatenate([self.sum, np.zeros((k, n_new))], axis=1)
        self.min = np.concatenate([self.min, np.full((k, n_new), np.inf)], axis=1)
        self.max = np.concatenate([self.max, np.full((k, n_new), -np.inf)], axis=1)

    def advance(self, bucket: int) -> None:
        """Make `bucket` the head, clearing the columns of every bucket newly entered."""
        if bucket <= self.head:
            return
        first = max(self.head + 1, bucket - self.n_buckets + 1)
        slots = np.arange(first, bucket + 1) % self.n_buckets
        self.count[slots] = 0
        self.sum[slots] = 0.0
        self.min[slots] = np.inf
        self.max[slots] = -np.inf
        self.head = bucket

    def scatter(self, rows: IntArray, ts_ms: IntArray, values: FloatArray) -> None:
        """Add readings (each (n,)); the ring must already be advanced past them."""
        bucket = ts_ms // self.res_ms
        keep: BoolArray = (bucket > self.head - self.n_buckets) & (bucket <= self.head)
        if not keep.all():
            rows, bucket, values = rows[keep], bucket[keep], values[keep]
        flat = (bucket % self.n_buckets) * self.count.shape[1] + rows
        np.add.at(self.count.reshape(-1), flat, np.int32(1))  # an int64 1 takes a slow path
        np.add.at(self.sum.reshape(-1), flat, values)
        np.minimum.at(self.min.reshape(-1), flat, values)
        np.maximum.at(self.max.reshape(-1), flat, values)

    def fold(self, finer: BucketRing, bucket: int) -> None:
        """Add bucket `bucket` of a finer ring (all rows) into the bucket holding it here."""
        if not (finer.head - finer.n_buckets < bucket <= finer.head):
            return
        mine = bucket * finer.res_ms // self.res_ms
        if not (self.head - self.n_buckets < mine <= self.head):
            return
        src, dst = bucket % finer.n_buckets, mine % self.n_buckets
        self.count[dst] += finer.count[src]
        self.sum[dst] += finer.sum[src]
        np.minimum(self.min[dst], finer.min[src], out=self.min[dst])
        np.maximum(self.max[dst], finer.max[src], out=self.max[dst])

    def window(self, rows: IntArray | slice, end_bucket: int, k: int) -> WindowSlice:
        """The `k` buckets ending at `end_bucket` (inclusive) for `rows`: (k, n), oldest first.

        Buckets newer than the head or older than the horizon come back empty.
        """
        buckets = np.arange(end_bucket - k + 1, end_bucket + 1)
        is_held = (buckets <= self.head) & (buckets > self.head - self.n_buckets)
        return WindowSlice(self, rows, buckets % self.n_buckets, is_held)

    def column_mean(self, bucket: int) -> tuple[IntArray, FloatArray]:
        """Rows with data in `bucket` and their mean there: ((n,), (n,))."""
        if not (self.head - self.n_buckets < bucket <= self.head):
            return np.empty(0, np.int64), np.empty(0)
        slot = bucket % self.n_buckets
        count = self.count[slot]
        rows_idx = np.flatnonzero(count > 0)
        return rows_idx, self.sum[slot, rows_idx] / count[rows_idx]
