"""The embedded store (the default when no InfluxDB is configured): one DuckDB file.

Same semantics as InfluxDB: the primary key is (quantity, org, site, meter, ts), a rewrite
overwrites the value and keeps the stored delta when the new one is missing (InfluxDB's
field union). Batches are appended straight from the numpy columns (DuckDB scans a dict of
arrays), and query results come back as numpy columns (`fetchnumpy`), never row by row.
Device statuses too are written as one statement per burst, keyed by (site, meter, ts), so
a redelivered status adds no row. DuckDB calls block, so they run on one dedicated
thread, never on the loop.

DuckDB's exceptions are mapped in one place (`map_store_errors`): I/O, locks, interrupts
and memory pressure are `StoreUnavailable` (retry or spool); a database DuckDB has
invalidated is `StoreFatalError`; any other error is our statement's or our data's fault:
`StoreRejected` for a write (the rows are dead-lettered, the node goes on), otherwise
`StoreQueryError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

import duckdb
import numpy as np

from ecocluster.core.types import DeviceStatus, ReadingBatch, SeriesKey
from ecocluster.ingest.errors import (
    StoreFatalError,
    StoreQueryError,
    StoreRejected,
    StoreUnavailable,
)
from ecocluster.ingest.stores._rows import check_where
from ecocluster.ingest.stores.base import AggregateFn, GroupBy, Where

__all__ = ["DuckDBStore", "map_store_errors"]

_log = logging.getLogger(__name__)
T = TypeVar("T")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS readings (
    quantity VARCHAR NOT NULL, org VARCHAR NOT NULL, site VARCHAR NOT NULL,
    meter VARCHAR NOT NULL, ts BIGINT NOT NULL, value DOUBLE NOT NULL, delta DOUBLE,
    PRIMARY KEY (quantity, org, site, meter, ts));
CREATE TABLE IF NOT EXISTS device_status (
    site VARCHAR NOT NULL, meter VARCHAR NOT NULL, ts BIGINT NOT NULL, online BOOLEAN NOT NULL,
    PRIMARY KEY (site, meter, ts));
"""
#: Files written before statuses were keyed: the same rows, keyed (one per site, meter, ts).
_KEY_STATUSES: Final = """
CREATE TABLE device_status_keyed (
    site VARCHAR NOT NULL, meter VARCHAR NOT NULL, ts BIGINT NOT NULL, online BOOLEAN NOT NULL,
    PRIMARY KEY (site, meter, ts));
INSERT INTO device_status_keyed
    SELECT site, meter, ts, arg_max(online, rowid) FROM device_status GROUP BY site, meter, ts;
DROP TABLE device_status;
ALTER TABLE device_status_keyed RENAME TO device_status;
"""
_INSERT_STATUSES: Final = """
INSERT INTO device_status SELECT site, meter, ts, online FROM status_rows
ON CONFLICT DO UPDATE SET online = excluded.online
"""
_UPSERT: Final = """
INSERT INTO readings
SELECT k.quantity, k.org, k.site, k.meter, b.ts, b.value,
       CASE WHEN isnan(b.delta) THEN NULL ELSE b.delta END
FROM batch_rows AS b JOIN batch_keys AS k ON b.sidx = k.sidx
ON CONFLICT DO UPDATE SET value = excluded.value, delta = coalesce(excluded.delta, readings.delta)
"""
#: `SeriesKey` field order: Python's tuple order (DuckDB compares VARCHARs bytewise, which is
#: code point order, as Python compares `str`).
_SERIES_ORDER: Final = "org, site, meter, quantity"
_AGG_SQL: Final = {
    "mean": "avg({x})",
    "min": "min({x})",
    "max": "max({x})",
    "sum": "sum({x})",
    "count": "CASE WHEN count({x}) = 0 THEN NULL ELSE count({x}) END",
    "last": "arg_max({x}, CASE WHEN {x} IS NULL THEN NULL ELSE ts END)",
}


#: "Not now": the batch is retried or spooled.
_TRANSIENT: Final = (
    duckdb.IOException,
    duckdb.ConnectionException,
    duckdb.TransactionException,
    duckdb.InterruptException,
    duckdb.OutOfMemoryException,
    duckdb.SerializationException,
    duckdb.HTTPException,
    *((duckdb.ResourceInUseException,) if hasattr(duckdb, "ResourceInUseException") else ()),
)
#: The database is invalidated or out of reach for good: restart, check the file.
_FATAL: Final = (duckdb.FatalException, duckdb.InternalException, duckdb.PermissionException)


@contextlib.contextmanager
def map_store_errors(what: str, *, rows: int | None = None) -> Iterator[None]:
    """DuckDB's exceptions → the store's, in one place. `rows`: the size of the batch being
    written, whose rows a data error rejects."""
    try:
        yield
    except _TRANSIENT as exc:
        raise StoreUnavailable(f"duckdb {what}: {_first_line(exc)}") from exc
    except _FATAL as exc:
        raise StoreFatalError(f"duckdb {what}: {_first_line(exc)}") from exc
    except duckdb.Error as exc:
        if rows is not None:
            why = f"duckdb refused the write: {_first_line(exc)}"
            raise StoreRejected(why, list(range(rows)), [why] * rows) from exc
        raise StoreQueryError(f"duckdb {what}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


class DuckDBStore:
    """Usage: `store = DuckDBStore(settings.data_dir / "ecocluster.duckdb"); await store.open()`."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path) if str(path) != ":memory:" else path
        self._con: duckdb.DuckDBPyConnection | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="duckdb")

    async def _run(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise StoreUnavailable("duckdb store is not open")
        return self._con

    async def open(self) -> None:
        def connect() -> None:
            with map_store_errors("open"):
                if isinstance(self.path, Path):
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                self._con = duckdb.connect(str(self.path))
                self._con.execute(_SCHEMA)
                keyed = self._con.execute(
                    "SELECT count(*) FROM duckdb_constraints()"
                    " WHERE table_name = 'device_status' AND constraint_type = 'PRIMARY KEY'"
                ).fetchall()
                if keyed[0][0] == 0:
                    self._con.execute(_KEY_STATUSES)

        if self._con is None:
            await self._run(connect)

    async def write(self, batch: ReadingBatch) -> None:
        if len(batch) == 0:
            return
        await self._run(self._write_sync, batch)

    def _write_sync(self, batch: ReadingBatch) -> None:
        con = self._connection()
        # One row per point identity, the last one winning, as InfluxDB does in one request.
        order = np.lexsort((np.arange(len(batch)), batch.ts_ms, batch.series_idx))
        sidx, ts = batch.series_idx[order], batch.ts_ms[order]
        last = np.r_[(sidx[1:] != sidx[:-1]) | (ts[1:] != ts[:-1]), True]
        keep = order[last]
        used = np.unique(batch.series_idx)
        keys = [batch.series[i] for i in used.tolist()]
        batch_keys = {
            "sidx": used,
            "quantity": np.array([k.quantity for k in keys], object),
            "org": np.array([k.org for k in keys], object),
            "site": np.array([k.site for k in keys], object),
            "meter": np.array([k.meter for k in keys], object),
        }
        batch_rows = {
            "sidx": batch.series_idx[keep],
            "ts": batch.ts_ms[keep],
            "value": batch.values[keep],
            "delta": batch.deltas[keep],
        }
        with map_store_errors("write", rows=len(batch)):
            con.register("batch_keys", batch_keys)
            con.register("batch_rows", batch_rows)
            try:
                con.execute(_UPSERT)
            finally:
                con.unregister("batch_keys")
                con.unregister("batch_rows")

    async def write_statuses(self, statuses: Sequence[DeviceStatus]) -> None:
        if statuses:
            await self._run(self._write_statuses_sync, statuses)

    def _write_statuses_sync(self, statuses: Sequence[DeviceStatus]) -> None:
        """One statement for the whole burst; a status already stored (same site, meter,
        ts: a redelivery) adds no row."""
        newest: dict[tuple[str, str, int], bool] = {}
        for s in statuses:
            newest[(s.site, s.meter, s.ts_ms)] = s.online
        rows = {
            "site": np.array([k[0] for k in newest], object),
            "meter": np.array([k[1] for k in newest], object),
            "ts": np.array([k[2] for k in newest], np.int64),
            "online": np.array(list(newest.values()), bool),
        }
        con = self._connection()
        with map_store_errors("write statuses", rows=len(statuses)):
            con.register("status_rows", rows)
            try:
                con.execute(_INSERT_STATUSES)
            finally:
                con.unregister("status_rows")

    def _fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        with map_store_errors("query"):
            return self._connection().execute(sql, params).fetchall()

    @staticmethod
    def _filters(
        quantity: str | None, start_ms: int | None, end_ms: int | None, where: Where | None
    ) -> tuple[str, list[Any]]:
        terms: list[str] = []
        params: list[Any] = []
        if quantity is not None:
            terms.append("quantity = ?")
            params.append(quantity)
        for label, value in sorted(check_where(where).items()):
            terms.append(f"{label} = ?")
            params.append(value)
        if start_ms is not None:
            terms.append("ts >= ?")
            params.append(int(start_ms))
        if end_ms is not None:
            terms.append("ts < ?")
            params.append(int(end_ms))
        return (" WHERE " + " AND ".join(terms)) if terms else "", params

    def _fetch_batch(self, sql: str, params: list[Any]) -> ReadingBatch:
        """`sql` selects (org, site, meter, quantity, ts, value, delta), one row per series
        and ts → a batch sorted by series, then time, built from numpy columns.

        One query, one row per series in series order, with its readings as time-ordered
        lists: `fetchnumpy` turns each list into a numpy array, so Python touches the series,
        never the readings, and the series table comes with the rows (no second query).
        """
        per_series = (
            "SELECT org, site, meter, quantity, list(ts::BIGINT ORDER BY ts) AS ts,"
            " list(value::DOUBLE ORDER BY ts) AS value,"
            " list(coalesce(delta::DOUBLE, 'NaN'::DOUBLE) ORDER BY ts) AS delta"
            f" FROM ({sql}) AS r GROUP BY org, site, meter, quantity ORDER BY {_SERIES_ORDER}"
        )
        with map_store_errors("query"):
            found = self._connection().execute(per_series, params).fetchnumpy()
        n_series = len(found["ts"])
        if n_series == 0:
            return ReadingBatch.empty()
        series = tuple(
            map(
                SeriesKey,
                found["org"].tolist(),
                found["site"].tolist(),
                found["meter"].tolist(),
                found["quantity"].tolist(),
            )
        )
        counts = np.fromiter(map(len, found["ts"]), np.int64, n_series)
        return ReadingBatch(
            series=series,
            series_idx=np.repeat(np.arange(n_series, dtype=np.int64), counts),
            ts_ms=np.concatenate(found["ts"]).astype(np.int64, copy=False),
            values=np.concatenate(found["value"]).astype(np.float64, copy=False),
            deltas=np.concatenate(found["delta"]).astype(np.float64, copy=False),
        )

    async def _rows(self, sql: str, params: list[Any]) -> ReadingBatch:
        return await self._run(self._fetch_batch, sql, params)

    async def query_range(
        self, quantity: str, start_ms: int, end_ms: int, *, where: Where | None = None
    ) -> ReadingBatch:
        cond, params = self._filters(quantity, start_ms, end_ms, where)
        return await self._rows(
            f"SELECT org, site, meter, quantity, ts, value, delta FROM readings{cond}", params
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
        if fn not in _AGG_SQL:
            raise ValueError(f"unknown aggregate {fn!r}")
        if every_ms <= 0:
            raise ValueError("every_ms must be positive")
        cond, params = self._filters(quantity, start_ms, end_ms, where)
        bucket = f"(ts - ((ts % {int(every_ms)}) + {int(every_ms)}) % {int(every_ms)})"
        value_sql = _AGG_SQL[fn].format(x="value")
        delta_sql = _AGG_SQL[fn].format(x="delta")
        sql = (
            "SELECT org, site, meter, quantity, bucket AS ts, v AS value, d AS delta FROM ("
            f"SELECT org, site, meter, quantity, {bucket} AS bucket, {value_sql} AS v,"
            f" {delta_sql} AS d FROM readings{cond} GROUP BY org, site, meter, quantity, bucket)"
        )
        return await self._rows(sql, params)

    async def latest(
        self, quantity: str | None = None, *, where: Where | None = None
    ) -> ReadingBatch:
        cond, params = self._filters(quantity, None, None, where)
        # arg_max skips a NULL arg (it would return an older reading's delta); a struct is
        # never NULL, so this takes the newest reading's delta, NULL or not, on any version.
        sql = (
            "SELECT org, site, meter, quantity, t AS ts, v AS value, d AS delta FROM ("
            "SELECT org, site, meter, quantity, max(ts) AS t, arg_max(value, ts) AS v,"
            " arg_max(struct_pack(d := delta), ts).d AS d"
            f" FROM readings{cond} GROUP BY org, site, meter, quantity)"
        )
        return await self._rows(sql, params)

    async def consumption(
        self,
        quantity: str,
        start_ms: int,
        end_ms: int,
        *,
        by: GroupBy,
        where: Where | None = None,
    ) -> dict[str, float]:
        key = {"meter": "site || '/' || meter", "site": "site", "org": "org"}.get(by)
        if key is None:
            raise ValueError(f"cannot group by {by!r} (meter, site or org)")
        cond, params = self._filters(quantity, start_ms, end_ms, where)
        cond += " AND delta IS NOT NULL"
        rows = await self._run(
            self._fetch, f"SELECT {key} AS k, sum(delta) FROM readings{cond} GROUP BY k", params
        )
        return {k: float(v) for k, v in sorted(rows)}

    async def device_statuses(self) -> list[DeviceStatus]:
        rows = await self._run(
            self._fetch,
            "SELECT site, meter, max(ts), arg_max(online, ts) FROM device_status"
            " GROUP BY site, meter ORDER BY site, meter",
            [],
        )
        return [DeviceStatus(s, m, bool(on), int(ts)) for s, m, ts, on in rows]

    async def close(self) -> None:
        def shut() -> None:
            if self._con is not None:
                self._con.close()
                self._con = None

        await self._run(shut)
        self._executor.shutdown(wait=True)
