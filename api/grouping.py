"""Sum per-series aggregates into per-group series: the one place history is regrouped, so
InfluxDB and DuckDB (which return the same per-series buckets) give the same sums."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ecocluster.core.types import FloatArray, IntArray, ReadingBatch, SeriesKey

__all__ = ["GroupedSeries", "group_sum", "per_series"]

GroupedSeries = list[tuple[dict[str, str], IntArray, FloatArray]]


def per_series(batch: ReadingBatch, column: FloatArray) -> GroupedSeries:
    """Split a batch (sorted by series, then time) into one (key, ts, values) per series."""
    out: GroupedSeries = []
    if len(batch) == 0:
        return out
    cuts = np.flatnonzero(np.diff(batch.series_idx)) + 1
    starts = np.r_[0, cuts]
    ends = np.r_[cuts, len(batch)]
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        key = batch.series[int(batch.series_idx[lo])]
        out.append((key._asdict(), batch.ts_ms[lo:hi], column[lo:hi]))
    return out


def group_sum(
    batch: ReadingBatch, column: FloatArray, key_of: Callable[[SeriesKey], dict[str, str]]
) -> GroupedSeries:
    """Per bucket, the sum over the series of each group (NaN values skipped; a bucket where
    every series is NaN is dropped). Groups in key order, buckets ascending."""
    keep = np.isfinite(column)
    if len(batch) == 0 or not keep.any():
        return []
    group_keys: list[tuple[tuple[str, str], ...]] = []
    group_pos: dict[tuple[tuple[str, str], ...], int] = {}
    code_of_series = np.empty(len(batch.series), np.int64)
    for i, key in enumerate(batch.series):
        labels = tuple(sorted(key_of(key).items()))
        code_of_series[i] = group_pos.setdefault(labels, len(group_pos))
        if code_of_series[i] == len(group_keys):
            group_keys.append(labels)
    codes = code_of_series[batch.series_idx[keep]]
    ts = batch.ts_ms[keep]
    pairs = np.stack([codes, ts], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    sums = np.bincount(inverse.reshape(-1), weights=column[keep], minlength=uniq.shape[0])
    out: GroupedSeries = []
    order = sorted(range(len(group_keys)), key=lambda g: group_keys[g])
    for g in order:
        mask = uniq[:, 0] == g
        out.append((dict(group_keys[g]), uniq[mask, 1], sums[mask]))
    return out
