"""Helpers the store backends share: filters, and building sorted query results."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import numpy as np

from ecocluster.core.types import ReadingBatch, SeriesKey, is_valid_id
from ecocluster.ingest.stores.base import Where

__all__ = ["FILTER_LABELS", "batch_from_rows", "check_where", "group_key"]

FILTER_LABELS: Final = ("org", "site", "meter")


def check_where(where: Where | None) -> dict[str, str]:
    """The filters as a plain dict; unknown labels or invalid ids are a `ValueError`."""
    out = dict(where or {})
    for label, value in out.items():
        if label not in FILTER_LABELS:
            raise ValueError(f"unknown filter {label!r} (known: {', '.join(FILTER_LABELS)})")
        if not isinstance(value, str) or not is_valid_id(value):
            raise ValueError(f"invalid {label} id {value!r}")
    return out


def matches(key: SeriesKey, where: dict[str, str]) -> bool:
    return all(getattr(key, label) == value for label, value in where.items())


def group_key(key: SeriesKey, by: str) -> str:
    if by == "meter":
        return f"{key.site}/{key.meter}"
    if by == "site":
        return key.site
    if by == "org":
        return key.org
    raise ValueError(f"cannot group by {by!r} (meter, site or org)")


def batch_from_rows(rows: Iterable[tuple[SeriesKey, int, float, float]]) -> ReadingBatch:
    """(key, ts_ms, value, delta) rows in any order → a batch sorted by series, then time."""
    rows = sorted(rows, key=lambda r: (r[0], r[1]))
    if not rows:
        return ReadingBatch.empty()
    series: list[SeriesKey] = []
    index: dict[SeriesKey, int] = {}
    idx = np.empty(len(rows), np.int64)
    for i, (key, *_rest) in enumerate(rows):
        j = index.get(key)
        if j is None:
            j = index[key] = len(series)
            series.append(key)
        idx[i] = j
    return ReadingBatch(
        series=tuple(series),
        series_idx=idx,
        ts_ms=np.fromiter((r[1] for r in rows), np.int64, len(rows)),
        values=np.fromiter((r[2] for r in rows), np.float64, len(rows)),
        deltas=np.fromiter((np.nan if r[3] is None else r[3] for r in rows), np.float64, len(rows)),
    )
