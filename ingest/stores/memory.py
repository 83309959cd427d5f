"""An in-memory store: a real implementation of the port for unit tests and the contract
suite (httpx's `MockTransport` idea), with the same overwrite and delta-union semantics."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence

from ecocluster.core.types import DeviceStatus, ReadingBatch, SeriesKey
from ecocluster.ingest.errors import StoreUnavailable
from ecocluster.ingest.stores._rows import batch_from_rows, check_where, group_key, matches
from ecocluster.ingest.stores.base import AggregateFn, GroupBy, Where

__all__ = ["MemoryStore"]

_Point = list[float]  # [value, delta]


def _reduce(fn: AggregateFn, points: list[tuple[int, float]]) -> float:
    """`points` (ts, x) in time order, NaN already dropped."""
    if not points:
        return math.nan
    xs = [x for _, x in points]
    reducers: dict[str, Callable[[list[float]], float]] = {
        "mean": lambda v: sum(v) / len(v),
        "min": min,
        "max": max,
        "sum": sum,
        "last": lambda v: v[-1],
        "count": lambda v: float(len(v)),
    }
    return reducers[fn](xs)


class MemoryStore:
    """`available = False` plays a store that is down (writes raise `StoreUnavailable`)."""

    def __init__(self) -> None:
        self.points: dict[SeriesKey, dict[int, _Point]] = defaultdict(dict)
        self.statuses: list[DeviceStatus] = []
        self.available = True
        self.writes = 0

    async def open(self) -> None:
        self._check()

    def _check(self) -> None:
        if not self.available:
            raise StoreUnavailable("memory store is switched off")

    async def write(self, batch: ReadingBatch) -> None:
        self._check()
        self.writes += 1
        for i, ts, value, delta in zip(
            batch.series_idx.tolist(),
            batch.ts_ms.tolist(),
            batch.values.tolist(),
            batch.deltas.tolist(),
            strict=True,
        ):
            series = self.points[batch.series[i]]
            old = series.get(ts)
            if math.isnan(delta) and old is not None:
                delta = old[1]  # field union: a rewrite without delta keeps it
            series[ts] = [value, delta]

    async def write_statuses(self, statuses: Sequence[DeviceStatus]) -> None:
        self._check()
        self.statuses.extend(statuses)

    async def device_statuses(self) -> list[DeviceStatus]:
        newest: dict[tuple[str, str], DeviceStatus] = {}
        for status in self.statuses:
            key = (status.site, status.meter)
            if key not in newest or status.ts_ms >= newest[key].ts_ms:
                newest[key] = status
        return [newest[k] for k in sorted(newest)]

    def _series(self, quantity: str | None, where: Where | None) -> list[SeriesKey]:
        filters = check_where(where)
        return [
            k
            for k in self.points
            if (quantity is None or k.quantity == quantity) and matches(k, filters)
        ]

    async def query_range(
        self, quantity: str, start_ms: int, end_ms: int, *, where: Where | None = None
    ) -> ReadingBatch:
        return batch_from_rows(
            (k, ts, p[0], p[1])
            for k in self._series(quantity, where)
            for ts, p in self.points[k].items()
            if start_ms <= ts < end_ms
        )

    async def query_aggregate(
        self,
        quantity: str,
        start_ms: int,
        end_ms: int,
        *,
        every_ms: int,
        fn: AggregateFn,
        where: Where | None = None,
    ) -> ReadingBatch:
        if every_ms <= 0:
            raise ValueError("every_ms must be positive")
        rows = []
        for k in self._series(quantity, where):
            buckets: dict[int, list[tuple[int, _Point]]] = defaultdict(list)
            for ts, p in sorted(self.points[k].items()):
                if start_ms <= ts < end_ms:
                    buckets[ts - ts % every_ms].append((ts, p))
            for start, pts in buckets.items():
                value = _reduce(fn, [(ts, p[0]) for ts, p in pts])
                delta = _reduce(fn, [(ts, p[1]) for ts, p in pts if not math.isnan(p[1])])
                rows.append((k, start, value, delta))
        return batch_from_rows(rows)

    async def latest(
        self, quantity: str | None = None, *, where: Where | None = None
    ) -> ReadingBatch:
        rows = []
        for k in self._series(quantity, where):
            if self.points[k]:
                ts = max(self.points[k])
                value, delta = self.points[k][ts]
                rows.append((k, ts, value, delta))
        return batch_from_rows(rows)

    async def consumption(
        self,
        quantity: str,
        start_ms: int,
        end_ms: int,
        *,
        by: GroupBy,
        where: Where | None = None,
    ) -> dict[str, float]:
        totals: dict[str, float] = {}
        for k in self._series(quantity, where):
            deltas = [
                p[1]
                for ts, p in self.points[k].items()
                if start_ms <= ts < end_ms and not math.isnan(p[1])
            ]
            if deltas:
                key = group_key(k, by)
                totals[key] = totals.get(key, 0.0) + sum(deltas)
        return dict(sorted(totals.items()))

    async def close(self) -> None:
        pass
