"""A crowd of anonymous requests costs one computation per cache period.

    cache = PublicCache(max_age_s=60)
    entry = await cache.get(("summary",), build)       # build() → (bytes, media type)
    return entry.response(request, max_age_s=60)        # 200 with ETag, or 304

Entries are the *encoded* answer (bytes + a strong ETag over them), kept for `max_age_s`
of monotonic time. Concurrent misses for the same key share one computation (single
flight: the first caller computes, the others await its future), so a cold cache under
load still computes once. A failed computation is not cached: every waiter gets the error
and the next request tries again. `max_age_s = 0` disables the cache and the sharing (every
request computes: the bench's baseline). The number of computations per key is counted.
At most `max_concurrent` computations run at once (anonymous clients asking for many
distinct open-data ranges queue instead of piling queries on the store).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.responses import Response

__all__ = ["CachedBody", "PublicCache", "etag_of"]

#: Distinct keys kept at most (query parameters make keys); oldest dropped first.
_MAX_ENTRIES = 512


def etag_of(body: bytes) -> str:
    """A strong validator over the exact bytes sent (RFC 9110 §8.8.3)."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: a weak comparison; `*` matches any current representation."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = (t.strip().removeprefix("W/") for t in if_none_match.split(","))
    return etag in tags


@dataclass(frozen=True, slots=True)
class CachedBody:
    body: bytes
    media_type: str
    etag: str
    headers: dict[str, str] = field(default_factory=dict)

    def response(self, request: Request, *, max_age_s: int) -> Response:
        """200 with the body, or 304 when the client already holds this version. Same
        headers for everyone: no cookie, no per-user variation."""
        headers = {
            "ETag": self.etag,
            "Cache-Control": f"public, max-age={max_age_s}",
            **self.headers,
        }
        if _matches(request.headers.get("if-none-match"), self.etag):
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


Build = Callable[[], Awaitable[tuple[bytes, str, dict[str, str]]]]


class PublicCache:
    """Time-boxed, single-flight cache of encoded public answers."""

    def __init__(
        self,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_concurrent: int = 4,
    ) -> None:
        self.max_age_s = max_age_s
        self.clock = clock
        #: At most this many computations at once (distinct open-data queries from anonymous
        #: clients cannot pile work on the store; the rest wait their turn).
        self.max_concurrent = max_concurrent
        self._slots: asyncio.Semaphore | None = None
        self._entries: dict[Hashable, tuple[float, CachedBody]] = {}
        self._flights: dict[Hashable, asyncio.Task[CachedBody]] = {}
        #: Computations per key kind (the key's first element): what the bench counts.
        self.computations: Counter[str] = Counter()

    async def get(self, key: tuple[Hashable, ...], build: Build) -> CachedBody:
        if self.max_age_s <= 0:  # off: every request computes (no sharing at all)
            return await self._compute(key, build)
        now = self.clock()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.max_age_s:
            return hit[1]
        flight = self._flights.get(key)
        if flight is None:
            # Its own task: a client that disconnects does not cancel the others' answer.
            flight = asyncio.create_task(self._compute(key, build), name=f"public.{key[0]}")
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        return await asyncio.shield(flight)

    async def _compute(self, key: tuple[Hashable, ...], build: Build) -> CachedBody:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_concurrent)
        async with self._slots:
            body, media_type, headers = await build()
        entry = CachedBody(body, media_type, etag_of(body), headers)
        self.computations[str(key[0])] += 1
        if self.max_age_s > 0:
            self._store(key, self.clock(), entry)
        return entry

    def _landed(self, key: Hashable, done: asyncio.Task[CachedBody]) -> None:
        if self._flights.get(key) is done:
            del self._flights[key]
        if not done.cancelled():
            done.exception()  # retrieved: a failure reaches the waiters, not the loop's log

    def _store(self, key: Hashable, at: float, entry: CachedBody) -> None:
        if len(self._entries) >= _MAX_ENTRIES:
            oldest = min(self._entries, key=lambda k: self._entries[k][0])
            del self._entries[oldest]
        self._entries[key] = (at, entry)

    def clear(self) -> None:
        self._entries.clear()
