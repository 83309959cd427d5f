"""InfluxDB through the v1-compatible HTTP API (`/write`, `/query`), the one API InfluxDB
1.x, 2.x (v1 compatibility, token auth) and 3.x all serve.

Writes are gzip line protocol at ms precision. Every answer is classified
(`_classify_write`), never assumed:

- 2xx: stored;
- 400 / 422 (a line it cannot parse, a field type conflict, points beyond the retention
  policy): `StoreRejected` naming the refused rows — those the store names, those the
  retention policy provably dropped, or, when it names none, every row of the batch; a
  `dropped=N` it reports is carried along for the counters. Never counted as stored;
- 413 (the body is too large): the batch is split in halves and each half written;
- 408 / 429 / 5xx / timeouts / transport errors: retried with exponential backoff, then
  `StoreUnavailable` (the caller spools);
- 401 / 403 (credentials), 404 (no such database or retention policy, or not an InfluxDB
  URL): `StoreFatalError`, one line naming the setting to fix;
- any other 4xx: `StoreRejected` for the whole batch (retrying the same request cannot help).

httpx's exceptions are mapped in one place (`map_store_errors`). Credentials in the URL
(`http://user:pass@host:8086`) are taken out of it and sent as basic auth, so the URL that
httpx logs and errors carry never holds them; httpx's per-request INFO lines are quieted.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any, Final
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import numpy as np

from ecocluster.core.retry import Backoff
from ecocluster.core.types import DeviceStatus, ReadingBatch, SeriesKey
from ecocluster.ingest.errors import (
    StoreFatalError,
    StoreQueryError,
    StoreRejected,
    StoreUnavailable,
)
from ecocluster.ingest.stores._rows import batch_from_rows, check_where
from ecocluster.ingest.stores.base import AggregateFn, GroupBy, Where
from ecocluster.ingest.stores.lineproto import encode_lines, escape_tag

__all__ = ["InfluxStore", "map_store_errors", "redact_url"]

_log = logging.getLogger(__name__)
# One INFO line per store request (and the URL in it) is noise at best: quiet httpx.
for _name in ("httpx", "httpcore"):
    if logging.getLogger(_name).level < logging.WARNING:
        logging.getLogger(_name).setLevel(logging.WARNING)

_UNPARSABLE: Final = re.compile(r"unable to parse '((?:[^'\\]|\\.)*)'")
_CONFLICT: Final = re.compile(r'on measurement "([^"]+)"')
_DROPPED: Final = re.compile(r"dropped=(\d+)")
_DURATION_PART: Final = re.compile(r"(\d+)(ns|us|µs|ms|s|m|h|d|w)")
_DURATION_MS: Final = {
    "ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1, "s": 1e3, "m": 6e4, "h": 3.6e6, "d": 8.64e7,
    "w": 6.048e8,
}  # fmt: skip
_STATUS_MEASUREMENT: Final = "device_status"
#: InfluxDB stores nanoseconds in an int64: times outside ±2262 AD are clamped.
_MAX_MS: Final = 9_223_372_036_854
_TRANSIENT_4XX: Final = frozenset({408, 425, 429})


def redact_url(url: str) -> str:
    """The URL without its credentials (`http://user:***@host` → `http://host`)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:  # an invalid port: httpx says so, without the credentials
        netloc = host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _url_credentials(url: str) -> tuple[str | None, str | None]:
    parts = urlsplit(url)
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return user, password


@contextlib.contextmanager
def map_store_errors(what: str) -> Iterator[None]:
    """Translate httpx's errors into the store's, in one place (httpx's own
    `map_httpcore_exceptions` is the model)."""
    try:
        yield
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise StoreFatalError(
            f"influxdb {what}: ECOCLUSTER_INFLUX_URL is not usable ({type(exc).__name__}: {exc})"
        ) from exc
    except httpx.TimeoutException as exc:
        raise StoreUnavailable(f"influxdb {what}: timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:  # transport, protocol, decoding, redirects
        raise StoreUnavailable(f"influxdb {what}: {type(exc).__name__}: {exc}") from exc
    except httpx.StreamError as exc:
        raise StoreUnavailable(f"influxdb {what}: {type(exc).__name__}: {exc}") from exc


def _q(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ident(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _error_text(response: httpx.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        return response.text[:2000]
    if isinstance(doc, dict):
        return str(doc.get("error", doc.get("message", response.text)))[:2000]
    return response.text[:2000]


def _duration_ms(text: str) -> float:
    """InfluxQL duration (`1h0m0s`, `168h0m0s`, `0s` = infinite) in ms."""
    return sum(int(n) * _DURATION_MS[u] for n, u in _DURATION_PART.findall(text))


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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        url_user, url_password = _url_credentials(url)
        self.url, self.db, self.rp = redact_url(url).rstrip("/"), db, rp
        self.create_db = create_db
        self.retries, self.backoff_s = retries, backoff_s
        headers = {"Authorization": f"Token {token}"} if token else {}
        username, password = username or url_user, password if username else url_password
        auth = (username, password or "") if username else None
        self._client = httpx.AsyncClient(
            base_url=self.url, headers=headers, auth=auth, timeout=timeout_s, transport=transport
        )
        self._db_ready = False

    def __repr__(self) -> str:
        return f"InfluxStore({self.url!r}, db={self.db!r}, rp={self.rp!r})"

    # -- writing ----------------------------------------------------------------------------
    async def open(self) -> None:
        with map_store_errors("ping"):
            response = await self._client.get("/ping")
        if response.status_code in (401, 403):
            raise self._credentials_refused(response.status_code)
        if response.status_code >= 300:
            raise StoreUnavailable(f"influxdb ping answered {response.status_code}")
        await self._ensure_db()
        if self.rp:
            await self._check_rp()

    async def _ensure_db(self) -> None:
        if self.create_db and not self._db_ready:
            try:
                await self._query(f"CREATE DATABASE {_ident(self.db)}", method="POST")
            except StoreQueryError as exc:  # InfluxDB 2.x/3.x: databases are buckets + DBRP maps
                _log.warning(
                    "could not create database %r (%s); create it (or its DBRP"
                    " mapping) yourself and set ECOCLUSTER_INFLUX_CREATE_DB=false",
                    self.db,
                    exc,
                )
        self._db_ready = True

    async def _retention_policies(self) -> dict[str, tuple[float, bool]] | None:
        """name → (duration in ms, 0 = infinite; is default), or None if it cannot tell."""
        try:
            series = await self._query(f"SHOW RETENTION POLICIES ON {_ident(self.db)}")
        except (StoreQueryError, StoreUnavailable):
            return None
        out = {}
        for s in series:
            cols = s.get("columns", [])
            for row in s.get("values", []):
                doc = dict(zip(cols, row, strict=False))
                out[str(doc.get("name"))] = (
                    _duration_ms(str(doc.get("duration", ""))),
                    bool(doc.get("default")),
                )
        return out

    async def _check_rp(self) -> None:
        policies = await self._retention_policies()
        if policies is not None and self.rp not in policies:
            raise StoreFatalError(
                f"influxdb database {self.db!r} has no retention policy {self.rp!r}"
                f" (ECOCLUSTER_INFLUX_RP); it has: {', '.join(sorted(policies)) or 'none'}"
            )

    def _credentials_refused(self, code: int) -> StoreFatalError:
        return StoreFatalError(
            f"influxdb at {self.url} refused our credentials ({code}): check"
            " ECOCLUSTER_INFLUX_TOKEN or ECOCLUSTER_INFLUX_USERNAME / _PASSWORD"
        )

    async def write(self, batch: ReadingBatch) -> None:
        if len(batch) == 0:
            return
        await self._write_rows(encode_lines(batch), batch, np.arange(len(batch)))

    async def _write_rows(self, lines: list[str], batch: ReadingBatch, rows: Any) -> None:
        """Write `lines` (rows `rows` of `batch`); raise `StoreRejected` with batch rows."""
        code, text = await self._post_lines(lines)
        if code == 413 and len(lines) > 1:  # too large for the server: halves
            half = len(lines) // 2
            refused: list[StoreRejected] = []
            for part in (slice(None, half), slice(half, None)):
                try:
                    await self._write_rows(lines[part], batch, rows[part])
                except StoreRejected as exc:
                    refused.append(exc)
            if refused:
                raise StoreRejected(
                    refused[0].args[0],
                    [i for r in refused for i in r.rejected_idx],
                    [w for r in refused for w in r.reasons],
                    dropped=sum(r.dropped or 0 for r in refused) or None,
                )
            return
        if code == 413:
            raise StoreRejected(
                "influxdb: the line is larger than the server's max-body-size",
                [int(rows[0])],
                ["line too large for the server"],
            )
        if 400 <= code < 500:
            raise await self._rejected(code, text, lines, batch, rows)

    async def write_statuses(self, statuses: Sequence[DeviceStatus]) -> None:
        lines = [
            f"{_STATUS_MEASUREMENT},meter={escape_tag(s.meter)},site={escape_tag(s.site)} "
            f"online={'true' if s.online else 'false'} {s.ts_ms}"
            for s in statuses
        ]
        if lines:
            code, text = await self._post_lines(lines)
            if 400 <= code < 500:
                raise StoreRejected(
                    f"influxdb refused statuses ({code}): {text[:200]}",
                    list(range(len(lines))),
                    [text[:200]] * len(lines),
                )

    async def _post_lines(self, lines: list[str]) -> tuple[int, str]:
        """Post and classify: returns (2xx, "") or a non-transient 4xx and its text; raises
        `StoreUnavailable` after the retries, `StoreFatalError` for 401/403/404."""
        body = gzip.compress("\n".join(lines).encode("utf-8", "backslashreplace"), compresslevel=1)
        params = {"db": self.db, "precision": "ms"} | ({"rp": self.rp} if self.rp else {})
        headers = {"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"}
        backoff = Backoff(initial_s=self.backoff_s, max_s=max(self.backoff_s, 5.0))
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
                if 200 <= code < 300:
                    return code, ""
                text = _error_text(response)
                if code == 404 and "database not found" in text and self.create_db:
                    self._db_ready = False
                    await self._ensure_db()
                    continue
                if code in (401, 403):
                    raise self._credentials_refused(code)
                if code == 404:
                    raise self._not_found(text)
                if 400 <= code < 500 and code not in _TRANSIENT_4XX:
                    return code, text
                if attempt == self.retries:
                    raise StoreUnavailable(f"influxdb write answered {code}: {text[:200]}")
            await backoff.sleep()
        raise StoreUnavailable("influxdb write failed")

    def _not_found(self, text: str) -> StoreFatalError:
        if "retention policy not found" in text:
            return StoreFatalError(
                f"influxdb: {text[:200]} on database {self.db!r} (ECOCLUSTER_INFLUX_RP)"
            )
        if "database not found" in text:
            return StoreFatalError(
                f"influxdb: database {self.db!r} not found (ECOCLUSTER_INFLUX_DB); create it or"
                " set ECOCLUSTER_INFLUX_CREATE_DB=true"
            )
        return StoreFatalError(
            f"influxdb at {self.url} answered 404 to /write: is ECOCLUSTER_INFLUX_URL the"
            f" server's base URL? ({text[:120]})"
        )

    async def _rejected(
        self, code: int, text: str, lines: list[str], batch: ReadingBatch, rows: Any
    ) -> StoreRejected:
        """The rows of `batch` the store refused: the ones it names, else the ones the
        retention policy provably dropped, else all of `rows`."""
        row_of = {line: i for i, line in enumerate(lines)}
        bad: dict[int, str] = {}
        for match in _UNPARSABLE.finditer(text):
            i = row_of.get(match.group(1).replace("\\'", "'"))
            if i is not None:
                bad[int(rows[i])] = "influxdb could not parse the line"
        for measurement in _CONFLICT.findall(text):
            for i in rows.tolist():
                if batch.series[batch.series_idx[i]].quantity == measurement:
                    bad.setdefault(i, f"field type conflict on {measurement}")
        found = _DROPPED.search(text)
        dropped = int(found.group(1)) if found else None
        if "retention policy" in text and dropped:
            for i in await self._beyond_retention(batch, rows, dropped - len(bad)):
                bad.setdefault(i, "older than the retention policy keeps")
        if not bad:  # the store named nothing: nothing of the batch is known to be stored
            why = f"influxdb refused the write ({code}): {text[:200]}"
            bad = {int(i): why for i in rows.tolist()}
        _log.warning(
            "influxdb refused %d of %d points (%d): %s", len(bad), len(lines), code, text[:300]
        )
        return StoreRejected(
            f"influxdb refused {len(bad)} of {len(lines)} points ({code}): {text[:300]}",
            list(bad),
            list(bad.values()),
            dropped=dropped,
        )

    async def _beyond_retention(self, batch: ReadingBatch, rows: Any, n: int) -> list[int]:
        """The `n` rows older than the retention policy's horizon, if exactly `n` are."""
        if n <= 0:
            return []
        policies = await self._retention_policies() or {}
        chosen = (
            policies.get(self.rp) if self.rp else next((p for p in policies.values() if p[1]), None)
        )
        if chosen is None or chosen[0] <= 0:
            return []
        horizon = time.time() * 1000 - chosen[0]
        old = [int(i) for i in rows.tolist() if batch.ts_ms[i] < horizon]
        return old if len(old) == n else []

    # -- querying ---------------------------------------------------------------------------
    async def _query(self, q: str, *, method: str = "GET") -> list[dict[str, Any]]:
        params = {"q": q, "epoch": "ms"}
        if not q.startswith("CREATE"):
            params["db"] = self.db
            if self.rp:
                params["rp"] = self.rp
        with map_store_errors("query"):
            response = await self._client.request(method, "/query", params=params)
        code = response.status_code
        if code >= 500 or code in _TRANSIENT_4XX:
            raise StoreUnavailable(f"influxdb query answered {code}")
        if code in (401, 403):
            raise self._credentials_refused(code)
        try:
            doc = response.json()
            result = doc["results"][0] if code < 400 and "error" not in doc else doc
        except (ValueError, KeyError, IndexError, TypeError):
            raise StoreUnavailable(
                f"influxdb query answered {code} with no InfluxDB result: {response.text[:120]!r}"
            ) from None
        error = result.get("error") if isinstance(result, dict) else None
        if error is not None or code >= 400:
            text = str(error or response.text)[:300]
            if "database not found" in text:
                return []
            raise StoreQueryError(f"influxdb query failed ({code}): {text}")
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
