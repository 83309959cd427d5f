"""The pure core of ingest: a burst of received messages → the accepted readings, the
rejections and the device statuses. No I/O here (the receipt stamper's journal is flushed
by the caller), so it is tested without a broker.

Per message: route the topic (cached), check the size, decode. Any exception while
handling one message rejects that message (reason `internal`) and the burst goes on: one
poison message must never block the ones after it. Then per reading, on whole arrays:
finite values inside the quantity's physical bounds, and timestamps inside the allowed
window. A point that appears twice in one burst (same series and time) is kept once, the
last one winning, as the store would.

Readings without a time follow `ingest_missing_ts`: `reject` (the default) dead-letters
them; `receipt` stamps each message distinctly (`stamps.ReceiptStamper`). A retained copy
(delivered because we subscribed, not because it was published now) is stored only with
its own time, which makes the copy an idempotent overwrite; one that would need a receipt
stamp is skipped and counted (`retained_untimed`), so a reconnect never stores it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import orjson

from ecocluster.core.errors import describe
from ecocluster.core.types import DeviceStatus, ReadingBatch, SeriesKey
from ecocluster.ingest.codecs import Columns, decode_native, decode_senml
from ecocluster.ingest.errors import PayloadError, Reason
from ecocluster.ingest.mqtt import Inbound
from ecocluster.ingest.stamps import ReceiptStamper
from ecocluster.ingest.validate import Route, TopicRouter, check_rows

__all__ = [
    "Limits",
    "Prepared",
    "Rejected",
    "dedupe_last",
    "parse_status",
    "prepare",
]

_DAY_MS: Final = 86_400_000


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int
    max_future_ms: int
    max_age_ms: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """A rejected reading or message: which message (`msg_idx` in the burst), why, and how
    many readings it stands for."""

    message: Inbound
    reason: Reason
    text: str
    field: str = ""
    count: int = 1
    msg_idx: int = -1


@dataclass(slots=True)
class Prepared:
    batch: ReadingBatch
    rejected: list[Rejected] = field(default_factory=list)
    statuses: list[DeviceStatus] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def rejected_readings(self) -> int:
        return sum(r.count for r in self.rejected)


def parse_status(payload: bytes) -> bool | None:
    """`online` / `offline`, bare or as JSON (`"online"`, `{"status": "online"}`)."""
    text = payload.strip()
    if text[:1] in (b'"', b"{"):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if isinstance(doc, dict):
            doc = doc.get("status", doc.get("state"))
        text = doc.encode("utf-8", "replace") if isinstance(doc, str) else b""
    word = text.lower()
    if word == b"online":
        return True
    if word == b"offline":
        return False
    return None


class _Burst:
    """The decoding state of one burst (columns, statuses, counters)."""

    def __init__(self, stamper: ReceiptStamper | None, max_bytes: int) -> None:
        self.cols = Columns()
        self.statuses: list[DeviceStatus] = []
        self.kinds = {"data": 0, "senml": 0, "status": 0, "invalid": 0, "retained_untimed": 0}
        self.stamper = stamper
        self.max_bytes = max_bytes

    def message(self, i: int, m: Inbound, route: Route) -> None:
        cols, payload, kind = self.cols, m.payload, route.kind
        if len(payload) > self.max_bytes:
            cols.reject(
                i,
                Reason.PAYLOAD_TOO_LARGE,
                f"payload of {len(payload)} bytes exceeds the {self.max_bytes} byte limit",
            )
            return
        if kind == "status":
            if payload:  # an empty retained payload only clears the topic
                online = parse_status(payload)
                if online is None:
                    cols.reject(i, Reason.BAD_STATUS, "status payload must be online or offline")
                else:
                    self.statuses.append(DeviceStatus(route.site, route.meter, online, m.recv_ms))
            return
        if m.retain:
            self._retained_copy(i, m, route)
            return
        relative = cols.relative_rows
        first_relative = len(relative)
        untimed = self.stamper is not None
        if kind == "data":
            decode_native(payload, i, route.series_of, cols, untimed=untimed)
        else:
            decode_senml(payload, i, route.series_of, cols, meter=route.meter, untimed=untimed)
        if len(relative) > first_relative:
            self._stamp(relative[first_relative:], m, route)

    def _retained_copy(self, i: int, m: Inbound, route: Route) -> None:
        """A copy the broker replays on subscribe: stored only with its own time."""
        cols = self.cols
        first = len(cols.rejections)
        if route.kind == "data":
            decode_native(m.payload, i, route.series_of, cols, untimed=False)
        else:
            decode_senml(m.payload, i, route.series_of, cols, meter=route.meter, untimed=False)
        self._skip_untimed_copy(first)

    def _stamp(self, rows: list[int], m: Inbound, route: Route) -> None:
        assert self.stamper is not None
        stamp = self.stamper.stamp(
            route.site,
            route.meter,
            m.topic,
            m.mid,
            m.payload,
            m.recv_ms,
            dup=getattr(m, "dup", False),
        )
        ts = self.cols.ts_ms
        for row in rows:
            ts[row] += stamp

    def _skip_untimed_copy(self, first: int) -> None:
        """A retained copy without a time of its own is not stored (nor dead-lettered again
        at every reconnect): only counted."""
        rejections = self.cols.rejections
        kept = [r for r in rejections[first:] if r.reason is not Reason.NO_TIME]
        if len(kept) < len(rejections) - first:
            self.kinds["retained_untimed"] += 1
            rejections[first:] = kept


def prepare(
    messages: Sequence[Inbound],
    router: TopicRouter,
    series: Sequence[SeriesKey],
    limits: Limits,
    *,
    now_ms: int,
    stamper: ReceiptStamper | None = None,
) -> Prepared:
    """Decode and check a burst. `stamper` set: readings without a time get a receipt
    stamp (policy `receipt`); None: they are rejected (policy `reject`)."""
    burst = _Burst(stamper, limits.max_payload_bytes)
    cols, kinds = burst.cols, burst.kinds
    route_of = router.route
    message = burst.message
    for i, m in enumerate(messages):
        try:
            route = route_of(m.topic)
            if isinstance(route, PayloadError):
                kinds["invalid"] += 1
                cols.reject(i, route.reason, route.message)
                continue
            kinds[route.kind] += 1
            message(i, m, route)
        except Exception as exc:  # one message must never stop the others
            _forget(cols, i)
            cols.reject(i, Reason.INTERNAL, f"could not be processed: {describe(exc)}"[:300])
    return _finish(messages, burst, router, series, limits, now_ms)


def _forget(cols: Columns, i: int) -> None:
    """Drop what message `i` (the last one decoded) added before it failed."""
    rows = len(cols.msg)
    while rows and cols.msg[rows - 1] == i:
        rows -= 1
    rejections = len(cols.rejections)
    while rejections and cols.rejections[rejections - 1].msg == i:
        rejections -= 1
    relative = len(cols.relative_rows)
    while relative and cols.relative_rows[relative - 1] >= rows:
        relative -= 1
    cols.truncate(rows, rejections, relative)


def _finish(
    messages: Sequence[Inbound],
    burst: _Burst,
    router: TopicRouter,
    series: Sequence[SeriesKey],
    limits: Limits,
    now_ms: int,
) -> Prepared:
    cols = burst.cols
    rejected = [
        Rejected(messages[r.msg], r.reason, r.message, r.field, r.count, r.msg)
        for r in cols.rejections
    ]
    n = len(cols)
    ts = np.fromiter(cols.ts_ms, np.int64, n)
    values = np.fromiter(cols.values, np.float64, n)
    sidx = np.fromiter(cols.series_idx, np.int64, n)
    low, high = router.bounds_for(series)
    checks = check_rows(
        ts,
        values,
        low=low[sidx],
        high=high[sidx],
        now_ms=now_ms,
        max_future_ms=limits.max_future_ms,
        max_age_ms=limits.max_age_ms,
    )
    for i, reason in zip(checks.bad_idx.tolist(), checks.reasons, strict=True):
        quantity = series[sidx[i]].quantity
        j = cols.msg[i]
        text = _row_message(reason, quantity, float(values[i]), int(ts[i]), now_ms, limits)
        rejected.append(Rejected(messages[j], reason, text, quantity, 1, j))
    keep = checks.keep
    batch = ReadingBatch(
        series, sidx[keep], ts[keep], values[keep], np.full(int(keep.sum()), np.nan)
    )
    return Prepared(batch, rejected, burst.statuses, burst.kinds)


def _row_message(
    reason: Reason, quantity: str, value: float, ts_ms: int, now_ms: int, limits: Limits
) -> str:
    if reason is Reason.NOT_FINITE:
        return f"{value} is not a finite number"
    if reason is Reason.IMPLAUSIBLE:
        return f"{quantity} = {value:g} is outside its physical bounds"
    if reason is Reason.FUTURE:
        text = f"timestamp {ts_ms} is {(ts_ms - now_ms) / 1000:.0f} s in the future"
    else:
        text = f"timestamp {ts_ms} is {(now_ms - ts_ms) / _DAY_MS:.1f} days old"
    return text + _unit_hint(ts_ms, now_ms, limits)


def _unit_hint(ts_ms: int, now_ms: int, limits: Limits) -> str:
    """Say so when the timestamp would fit as seconds, µs or ns: a firmware unit mistake."""
    low, high = now_ms - limits.max_age_ms, now_ms + limits.max_future_ms
    for factor, unit in ((1000, "seconds"), (1e-3, "microseconds"), (1e-6, "nanoseconds")):
        if low <= ts_ms * factor <= high:
            return f" (it looks like epoch {unit}; ts is epoch milliseconds)"
    return ""


def dedupe_last(batch: ReadingBatch) -> ReadingBatch:
    """One row per (series, ts), the latest received winning; rows sorted by series, time."""
    if len(batch) < 2:
        return batch
    order = np.lexsort((np.arange(len(batch)), batch.ts_ms, batch.series_idx))
    s, t = batch.series_idx[order], batch.ts_ms[order]
    last = np.r_[(s[1:] != s[:-1]) | (t[1:] != t[:-1]), True]
    return batch.take(order[last])
