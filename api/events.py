"""The live event hub behind the SSE stream: readings and alert changes, resumable.

Every event gets an id `{boot}-{seq}`; the hub keeps the last `keep` events so that a client
reconnecting with `Last-Event-ID` receives what it missed. When it missed more than that, or
the id comes from an earlier run of the server (another `boot`), it receives a `reset` event
first and should reload its snapshot. Subscribers filter by organisation (their scope) and
optionally by site; a slow subscriber's queue is bounded: when full, it is sent `reset` and
its backlog dropped, so one stalled phone never grows the server's memory.

`ReadingFeed` is the `ReadingSink` the node adds to ingest's sinks: it keeps the newest
reading per series of each batch and publishes them as one `readings` event.
"""

from __future__ import annotations

import asyncio
import collections
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from ecocluster.core.types import DeviceStatus, ReadingBatch

__all__ = ["Event", "EventHub", "ReadingFeed", "Subscription", "publish_batch", "publish_status"]

_QUEUE_MAX: Final = 256


@dataclass(frozen=True, slots=True)
class Event:
    """`rows` each carry `org` and `site` so that a subscriber can filter them."""

    seq: int
    kind: str  # readings | alert | status
    rows: tuple[Mapping[str, Any], ...]


@dataclass(eq=False, slots=True)
class Subscription:
    orgs: frozenset[str] | None
    sites: frozenset[str] | None
    kinds: frozenset[str]
    queue: asyncio.Queue[Event | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=_QUEUE_MAX)
    )
    overflowed: bool = False

    def select(self, event: Event) -> list[Mapping[str, Any]]:
        if event.kind not in self.kinds:
            return []
        orgs, sites = self.orgs, self.sites
        return [
            r
            for r in event.rows
            if (orgs is None or r.get("org") in orgs) and (sites is None or r.get("site") in sites)
        ]


class EventHub:
    def __init__(self, keep: int = 2048) -> None:
        self.boot = secrets.token_hex(3)
        self._seq = 0
        self._recent: collections.deque[Event] = collections.deque(maxlen=keep)
        self._subs: set[Subscription] = set()

    def event_id(self, event: Event) -> str:
        return f"{self.boot}-{event.seq}"

    def publish(self, kind: str, rows: Iterable[Mapping[str, Any]]) -> None:
        rows = tuple(rows)
        if not rows:
            return
        self._seq += 1
        event = Event(self._seq, kind, rows)
        self._recent.append(event)
        for sub in self._subs:
            if sub.overflowed:
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.overflowed = True

    def subscribe(
        self,
        *,
        orgs: frozenset[str] | None,
        sites: frozenset[str] | None = None,
        kinds: frozenset[str] = frozenset({"readings", "alert", "status"}),
    ) -> Subscription:
        sub = Subscription(orgs, sites, kinds)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def missed(self, last_event_id: str | None) -> tuple[bool, list[Event]]:
        """(needs_reset, events after `last_event_id`) for a reconnecting client."""
        if not last_event_id:
            return False, []
        boot, _, seq_text = last_event_id.partition("-")
        if boot != self.boot or not seq_text.isdigit():
            return True, []
        seq = int(seq_text)
        if seq > self._seq:
            return True, []
        oldest = self._recent[0].seq if self._recent else self._seq + 1
        if seq + 1 < oldest:
            return True, list(self._recent)
        return False, [e for e in self._recent if e.seq > seq]


class ReadingFeed:
    """A `ReadingSink`: each accepted batch → one `readings` event (newest per series);
    a device's online/offline → one `status` event."""

    def __init__(self, hub: EventHub, site_orgs: Mapping[str, str]) -> None:
        self.hub = hub
        self.site_orgs = site_orgs

    async def on_readings(self, batch: ReadingBatch) -> None:
        publish_batch(self.hub, batch)

    async def on_status(self, status: DeviceStatus) -> None:
        publish_status(self.hub, status, self.site_orgs.get(status.site))


def publish_status(hub: EventHub, status: DeviceStatus, org: str | None) -> None:
    row = {
        "org": org,
        "site": status.site,
        "meter": status.meter,
        "online": status.online,
        "ts_ms": status.ts_ms,
    }
    hub.publish("status", [row])


def publish_batch(hub: EventHub, batch: ReadingBatch) -> None:
    if len(batch) == 0:
        return
    sidx = batch.series_idx
    # the last row per series in time order: sort by (series, ts), keep each run's end
    order = np.lexsort((batch.ts_ms, sidx))
    s_sorted = sidx[order]
    last = order[np.r_[s_sorted[1:] != s_sorted[:-1], True]]
    last = last[np.isfinite(batch.values[last])]
    rows = []
    for i, ts, value in zip(
        sidx[last].tolist(), batch.ts_ms[last].tolist(), batch.values[last].tolist(), strict=True
    ):
        key = batch.series[i]
        rows.append(
            {
                "org": key.org,
                "site": key.site,
                "meter": key.meter,
                "quantity": key.quantity,
                "value": value,
                "ts_ms": ts,
            }
        )
    hub.publish("readings", rows)
