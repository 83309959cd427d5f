"""The store port: what ingest writes to and what rules, backtests and the API read from.

Two backends implement it (`influx.py`: InfluxDB v1 HTTP API; `duckdb.py`: embedded) and
one contract test suite runs against both. Semantics both must honour:

- A point's identity is (series, ts_ms): writing it again overwrites, never duplicates
  (QoS 1 redelivery is harmless); a rewrite without a delta keeps the stored delta
  (InfluxDB's field union), so a redelivered register reading never loses or doubles it.
- `write` either makes the whole batch durable or raises; `StoreUnavailable` means "retry
  or spool", `StoreRejected` names the points the store refused (dead-letter those only;
  the others are stored; a refusal that names none names every row), `StoreFatalError`
  means retrying cannot help (credentials, a misspelt database or retention policy).
- Times are epoch milliseconds, ranges half-open `[start_ms, end_ms)`.
- Query results are `ReadingBatch`es with their own `series` table, sorted by series, then time.
- Aggregates apply `fn` to `value` and to `delta` alike (NaN where a bucket has no delta).
- Errors are `ingest.errors.StoreUnavailable` / `StoreRejected` / `StoreFatalError`, and
  `StoreQueryError` (also a `ValueError`) for a query the store refused; no library
  exception crosses the port. Filters name only `org`, `site`, `meter` (anything else is
  a `ValueError`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, Protocol, runtime_checkable

from ecocluster.core.types import DeviceStatus, ReadingBatch

AggregateFn = Literal["mean", "min", "max", "sum", "last", "count"]
GroupBy = Literal["meter", "site", "org"]
#: Label filters: {"org": "parco", "site": "cerreto-hotel", "meter": "em-01"}; all optional.
Where = Mapping[str, str]


@runtime_checkable
class Store(Protocol):
    async def open(self) -> None:
        """Connect, create the database if allowed; raise `StoreUnavailable` if unreachable."""

    async def write(self, batch: ReadingBatch) -> None:
        """Make every reading of `batch` durable (value, and delta where not NaN)."""

    async def write_statuses(self, statuses: Sequence[DeviceStatus]) -> None:
        """Record device connectivity events (`…/status` online/offline)."""

    async def device_statuses(self) -> list[DeviceStatus]:
        """The newest connectivity event of every device, sorted by site, meter."""

    async def query_range(
        self, quantity: str, start_ms: int, end_ms: int, *, where: Where | None = None
    ) -> ReadingBatch:
        """Raw readings of one quantity in a time range."""

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
        """One row per series and non-empty bucket; `ts_ms` is the bucket start."""

    async def latest(
        self, quantity: str | None = None, *, where: Where | None = None
    ) -> ReadingBatch:
        """The newest reading of every series (of one quantity, if given)."""

    async def consumption(
        self,
        quantity: str,
        start_ms: int,
        end_ms: int,
        *,
        by: GroupBy,
        where: Where | None = None,
    ) -> dict[str, float]:
        """Sum of `delta` of a register quantity per meter (`site/meter`), site or org."""

    async def close(self) -> None:
        """Flush and release connections; idempotent."""
