"""The few InfluxDB v1-API calls the schema and downsampling code makes, with its errors
mapped into the project's tree at this one boundary (as `map_httpcore_exceptions` does).

    async with InfluxHttp.from_settings(settings) as influx:
        series = await influx.query('SHOW RETENTION POLICIES ON "ecocluster"')
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from ecocluster.core.errors import EcoclusterError, FatalError, TransientError
from ecocluster.core.settings import Settings

__all__ = ["InfluxHttp", "InfluxRefused", "InfluxUnavailable", "Series", "ident"]


class InfluxUnavailable(TransientError):
    """InfluxDB did not answer (down, a timeout, a 5xx): try again later."""


class InfluxRefused(EcoclusterError):
    """InfluxDB answered and said no (a statement it does not support, a bad query)."""


class InfluxCredentialsRefused(FatalError):
    """401/403: the token or user is wrong; retrying cannot help."""


def ident(name: str) -> str:
    """An InfluxQL identifier, double-quoted."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Series:
    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]] = field(default_factory=list)

    def rows(self) -> Iterator[dict[str, Any]]:
        for row in self.values:
            yield dict(zip(self.columns, row, strict=False))


@contextlib.contextmanager
def _mapped(what: str) -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException as exc:
        raise InfluxUnavailable(f"influxdb {what}: timed out") from exc
    except httpx.HTTPError as exc:
        raise InfluxUnavailable(f"influxdb {what}: {type(exc).__name__}: {exc}") from exc


class InfluxHttp:
    """A v1-API client: token (`Authorization: Token …`, 2.x/3.x) or user/password."""

    def __init__(self, client: httpx.AsyncClient, db: str) -> None:
        self._client = client
        self.db = db

    @classmethod
    @contextlib.asynccontextmanager
    async def from_settings(
        cls, settings: Settings, *, timeout_s: float = 30.0
    ) -> AsyncIterator[InfluxHttp]:
        if not settings.influx_url:
            raise FatalError("influx_url is not set: InfluxDB maintenance needs it")
        token = settings.influx_token.get_secret_value() if settings.influx_token else None
        headers = {"Authorization": f"Token {token}"} if token else {}
        auth = None
        if settings.influx_username:
            password = settings.influx_password
            auth = (settings.influx_username, password.get_secret_value() if password else "")
        async with httpx.AsyncClient(
            base_url=settings.influx_url.rstrip("/"), headers=headers, auth=auth, timeout=timeout_s
        ) as client:
            yield cls(client, settings.influx_db)

    async def query(self, q: str, *, write: bool = False) -> list[Series]:
        """Run one InfluxQL statement (POST when it changes something); epoch ms times."""
        params = {"q": q, "db": self.db, "epoch": "ms"}
        with _mapped("query"):
            if write:
                response = await self._client.post("/query", params=params)
            else:
                response = await self._client.get("/query", params=params)
        self._check(response, "query")
        doc = response.json()
        out = []
        for result in doc.get("results", []):
            if "error" in result:
                raise InfluxRefused(f"influxdb refused {_short(q)}: {result['error']}")
            for s in result.get("series", []):
                out.append(
                    Series(
                        s.get("name", ""), s.get("tags") or {}, s["columns"], s.get("values", [])
                    )
                )
        return out

    async def write(self, lines: list[str], *, rp: str | None) -> None:
        if not lines:
            return
        params = {"db": self.db, "precision": "ms"}
        if rp:
            params["rp"] = rp
        with _mapped("write"):
            response = await self._client.post(
                "/write", params=params, content="\n".join(lines).encode()
            )
        self._check(response, "write")

    def _check(self, response: httpx.Response, what: str) -> None:
        if response.status_code in (401, 403):
            raise InfluxCredentialsRefused(
                f"influxdb {what}: credentials refused ({response.status_code}); check"
                " ECOCLUSTER_INFLUX_TOKEN or ECOCLUSTER_INFLUX_USERNAME/_PASSWORD"
            )
        if response.status_code in (408, 429, 500, 502, 503, 504):
            raise InfluxUnavailable(f"influxdb {what}: answered {response.status_code}")
        if response.status_code >= 300:
            raise InfluxRefused(f"influxdb {what}: {response.status_code} {_error_text(response)}")


def _error_text(response: httpx.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(doc, dict):
        return str(doc.get("error") or doc.get("message") or doc)[:200]
    return str(doc)[:200]


def _short(q: str) -> str:
    return q if len(q) <= 80 else q[:77] + "..."
