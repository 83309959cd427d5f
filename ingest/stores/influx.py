"""InfluxDB through the v1-compatible HTTP API (`/write`, `/query`), the one API InfluxDB
1.x, 2.x (v1 compatibility, token auth) and 3.x all serve.

Writes are gzip line protocol at ms precision. Timeouts, transport errors and 5xx are
retried with exponential backoff, then raised as `StoreUnavailable` (the caller spools).
A 400 means some lines were refused: InfluxDB 1.x stores the others and names each bad
line (`unable to parse '<line>': …`) or the measurement of a type conflict; those rows come
back in `StoreRejected` so only they are dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any, Final

import httpx

from ecocluster.core.types import DeviceStatus, ReadingBatch, SeriesKey
from ecocluster.ingest.errors import StoreRejected, StoreUnavailable
from ecocluster.ingest.stores._rows import batch_from_rows, check_where
from ecocluster.ingest.stores.base import AggregateFn, GroupBy, Where
from ecocluster.ingest.stores.lineproto import encode_lines, escape_tag

__all__ = ["InfluxStore", "map_store_errors"]

_log = logging.getLogger(__name__)
_UNPARSABLE: Final = re.compile(r"unable to parse '((?:[^'\\]|\\.)*)'")
_CONFLICT: Final = re.compile(r'on measurement "([^"]+)"')
_STATUS_MEASUREMENT: Final = "device_status"
#: InfluxDB stores nanoseconds in an int64: times outside ±2262 AD are clamped.
_MAX_MS: Final = 9_223_372_036_854


@contextlib.contextmanager
def map_store_errors(what: str) -> Iterator[None]:
    """Translate httpx's errors into the store's, in one place."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise StoreUnavailable(f"influxdb {what}: timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise StoreUnavailable(f"influxdb {what}: {type(exc).__name__}: {exc}") from exc
    except httpx.HTTPError as exc:
        raise StoreUnavailable(f"influxdb {what}: {type(exc).__name__}: {exc}") from exc


def _q(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ident(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text


class InfluxStore:
    """Usage: `store = InfluxStore("http://127.0.0.1:8086", "ecocluster"); await store.open()`."""

    def __init__(
        self,
        url: str,
        db: str,
        *,
        rp: str | None = None,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        create_db: bool = True,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.2,
    ) -> None:
        self.url, self.db, self.rp = url.rstrip("/"), db, rp
        self.create_db = create_db
        self.retries, self.backoff_s = retries, backoff_s
        headers = {"Authorization": f"Token {token}"} if token else {}
        auth = (username, password or "") if username else None
        self._client = httpx.AsyncClient(
            base_url=self.url, headers=headers, auth=auth, timeout=timeout_s
        )
        self._db_ready = False

    # -- writing ----------------------------------------------------------------------------
    async def open(self) -> None:
        with map_store_errors("ping"):
            response = await self._client.get("/ping")
        if response.status_code >= 300:
            raise StoreUnavailable(f"influxdb ping answered {response.status_code}")
        await self._ensure_db()

    async def _ensure_db(self) -> None:
        if self.create_db and not self._db_ready:
            try:
                await self._query(f"CREATE DATABASE {_ident(self.db)}", method="POST")
            except ValueError as exc:  # InfluxDB 2.x/3.x: databases are buckets + DBRP maps
                _log.warning(
                    "could not create database %r (%s); create it (or its DBRP"
                    " mapping) yourself and set ECOCLUSTER_INFLUX_CREATE_DB=false",
                    self.db,
                    exc,
                )
        self._db_ready = True

    async def write(self, batch: ReadingBatch) -> None:
        if len(batch) == 0:
            return
        lines = encode_lines(batch)
        status, text = await self._post_lines(lines)
        if status == 400:
            raise self._rejected(text, lines, batch)

    async def write_statuses(self, statuses: Sequence[DeviceStatus]) -> None:
        lines = [
            f"{_STATUS_MEASUREMENT},meter={escape_tag(s.meter)},site={escape_tag(s.site)} "
            f"online={'true' if s.online else 'false'} {s.ts_ms}"
            for s in statuses
        ]
        if lines:
            status, text = await self._post_lines(lines)
            if status == 400:
                raise StoreRejected(f"influxdb refused statuses: {text[:200]}", [], [])

    async def _post_lines(self, lines: list[str]) -> tuple[int, str]:
        body = gzip.compress("\n".join(lines).encode(), compresslevel=1)
        params = {"db": self.db, "precision": "ms"} | ({"rp": self.rp} if self.rp else {})
        headers = {"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"}
        delay = self.backoff_s
        for attempt in range(1, self.retries + 1):
            try:
                with map_store_errors("write"):
                    response = await self._client.post(
                        "/write", params=params, content=body, headers=headers
                    )
            except StoreUnavailable:
                if attempt == self.retries:
                    raise
            else:
                code = response.status_code
                if code == 204:
                    return code, ""
                if code == 400:
                    return code, _error_text(response)
                if code == 404 and "database not found" in response.text and self.create_db:
                    self._db_ready = False
                    await self._ensure_db()
                    continue
                if code in (401, 403):
                    raise StoreUnavailable(f"influxdb refused our credentials ({code})")
                if code < 500 or attempt == self.retries:
                    raise StoreUnavailable(f"influxdb write answered {code}: {response.text[:200]}")
            await asyncio.sleep(delay)
            delay *= 2
        raise StoreUnavailable("influxdb write failed")

    def _rejected(self, text: str, lines: list[str], batch: ReadingBatch) -> StoreRejected:
        row_of = {line: i for i, line in enumerate(lines)}
        bad: dict[int, str] = {}
        for match in _UNPARSABLE.finditer(text):
            i = row_of.get(match.group(1))
            if i is not None:
                bad[i] = "influxdb could not parse the line"
        for measurement in _CONFLICT.findall(text):
            for i, sidx in enumerate(batch.series_idx.tolist()):
                if batch.series[sidx].quantity == measurement:
                    bad.setdefault(i, f"field type conflict on {measurement}")
        _log.warning("influxdb refused %d of %d points: %s", len(bad), len(lines), text[:300])
        return StoreRejected(f"influxdb partial write: {text[:300]}", list(bad), list(bad.values()))

    # -- querying ---------------------------------------------------------------------------
    async def _query(self, q: str, *, method: str = "GET") -> list[dict[str, Any]]:
        params = {"q": q, "epoch": "ms"}
        if not q.startswith("CREATE"):
            params["db"] = self.db
            if self.rp:
                params["rp"] = self.rp
        with map_store_errors("query"):
            response = await self._client.request(method, "/query", params=params)
        if response.status_code >= 500:
            raise StoreUnavailable(f"influxdb query answered {response.status_code}")
        doc = response.json()
        if response.status_code >= 400 or "error" in doc:
            raise ValueError(f"influxdb query failed: {doc.get('error', response.text)[:300]}")
        result = doc["results"][0]
        if "error" in result:
            if "database not found" in result["error"]:
                return []
            raise ValueError(f"influxdb query failed: {result['error'][:300]}")
        series: list[dict[str, Any]] = result.get("series", [])
        return series

    @staticmethod
    def _where(start_ms: int | None, end_ms: int | None, where: Where | None) -> str:
        terms = [f"{_ident(k)} = {_q(v)}" for k, v in sorted(check_where(where).items())]
        if start_ms is not None:
            terms.append(f"time >= {max(-_MAX_MS, min(int(start_ms), _MAX_MS))}ms")
        if end_ms is not None:
            terms.append(f"time < {max(-_MAX_MS, min(int(end_ms), _MAX_MS))}ms")
        return (" WHERE " + " AND ".join(terms)) if terms else ""

    @staticmethod
    def _rows(series: list[dict[str, Any]], quantity: str | None = None) -> list[Any]:
        rows = []
        for s in series:
            tags = s.get("tags") or {}
            key = SeriesKey(
                tags.get("org", ""),
                tags.get("site", ""),
                tags.get("meter", ""),
                quantity or s["name"],
            )
            for ts, value, delta in s["values"]:
                if value is None:
                    continue
                rows.append((key, int(ts), float(value), None if delta is None else float(delta)))
        return rows

    async def query_range(
        self, quantity: str, start_ms: int, end_ms: int, *, where: Where | None = None
    ) -> ReadingBatch:
        q = (
            f"SELECT value, delta FROM {_ident(quantity)}{self._where(start_ms, end_ms, where)}"
            ' GROUP BY "org", "site", "meter"'
        )
        return batch_from_rows(self._rows(await self._query(q), quantity))

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
        if fn not in ("mean", "min", "max", "sum", "last", "count"):
            raise ValueError(f"unknown aggregate {fn!r}")
        if every_ms <= 0:
            raise ValueError("every_ms must be positive")
        q = (
            f"SELECT {fn}(value), {fn}(delta) FROM {_ident(quantity)}"
            f"{self._where(start_ms, end_ms, where)}"
            f' GROUP BY time({int(every_ms)}ms), "org", "site", "meter" fill(none)'
        )
        rows = self._rows(await self._query(q), quantity)
        if fn == "count":  # count() of a field with no points in a bucket is 0, not null
            rows = [(k, ts, v, d if d else None) for k, ts, v, d in rows]
        return batch_from_rows(rows)

    async def latest(
        self, quantity: str | None = None, *, where: Where | None = None
    ) -> ReadingBatch:
        source = _ident(quantity) if quantity else "/^[a-z0-9]+_[a-z0-9]+$/"
        q = (
            f"SELECT last(value), delta FROM {source}{self._where(None, None, where)}"
            ' GROUP BY "org", "site", "meter"'
        )
        series = await self._query(q)
        series = [s for s in series if s["name"] != _STATUS_MEASUREMENT]
        return batch_from_rows(self._rows(series, quantity))

    async def consumption(
        self,
        quantity: str,
        start_ms: int,
        end_ms: int,
        *,
        by: GroupBy,
        where: Where | None = None,
    ) -> dict[str, float]:
        tags = {"meter": '"site", "meter"', "site": '"site"', "org": '"org"'}.get(by)
        if tags is None:
            raise ValueError(f"cannot group by {by!r} (meter, site or org)")
        q = (
            f"SELECT sum(delta) FROM {_ident(quantity)}{self._where(start_ms, end_ms, where)}"
            f" GROUP BY {tags}"
        )
        totals = {}
        for s in await self._query(q):
            t = s.get("tags") or {}
            key = f"{t['site']}/{t['meter']}" if by == "meter" else t[by]
            value = s["values"][0][1]
            if value is not None:
                totals[key] = float(value)
        return dict(sorted(totals.items()))

    async def device_statuses(self) -> list[DeviceStatus]:
        q = f'SELECT last(online) FROM {_STATUS_MEASUREMENT} GROUP BY "site", "meter"'
        out = []
        for s in await self._query(q):
            t = s.get("tags") or {}
            ts, online = s["values"][0]
            out.append(DeviceStatus(t["site"], t["meter"], bool(online), int(ts)))
        return sorted(out, key=lambda d: (d.site, d.meter))

    async def close(self) -> None:
        await self._client.aclose()
