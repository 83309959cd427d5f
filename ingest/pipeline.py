"""The pure core of ingest: a burst of received messages → the accepted readings, the
rejections and the device statuses. No I/O here, so it is tested without a broker.

Per message: route the topic (cached), check the size, decode. Then per reading, on whole
arrays: finite values and timestamps inside the allowed window. A point that appears twice
in one burst (same series and time) is kept once, the last one winning, as the store would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson

from ecocluster.core.types import DeviceStatus, ReadingBatch, SeriesKey
from ecocluster.ingest.codecs import Columns, decode_native, decode_senml
from ecocluster.ingest.errors import PayloadError, Reason
from ecocluster.ingest.mqtt import Inbound
from ecocluster.ingest.validate import TopicRouter, check_rows

__all__ = ["Limits", "Prepared", "Rejected", "dedupe_last", "parse_status", "prepare"]


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int
    max_future_ms: int
    max_age_ms: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """A dead-letter entry: which message, why, and how many readings it stands for."""

    message: Inbound
    reason: Reason
    text: str
    field: str = ""
    count: int = 1


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
        text = doc.encode() if isinstance(doc, str) else b""
    word = text.lower()
    if word == b"online":
        return True
    if word == b"offline":
        return False
    return None


def prepare(
    messages: Sequence[Inbound],
    router: TopicRouter,
    series: Sequence[SeriesKey],
    limits: Limits,
    *,
    now_ms: int,
) -> Prepared:
    cols = Columns()
    statuses: list[DeviceStatus] = []
    kinds = {"data": 0, "senml": 0, "status": 0, "invalid": 0}
    max_bytes = limits.max_payload_bytes
    route_of = router.route
    for i, m in enumerate(messages):
        route = route_of(m.topic)
        if type(route) is PayloadError:
            kinds["invalid"] += 1
            cols.reject(i, route.reason, route.message)
            continue
        assert not isinstance(route, PayloadError)
        kind = route.kind
        kinds[kind] += 1
        payload = m.payload
        if len(payload) > max_bytes:
            cols.reject(
                i,
                Reason.PAYLOAD_TOO_LARGE,
                f"payload of {len(payload)} bytes exceeds the {max_bytes} byte limit",
            )
        elif kind == "data":
            decode_native(payload, m.recv_ms, i, route.series_of, cols)
        elif kind == "senml":
            decode_senml(payload, m.recv_ms, i, route.series_of, cols)
        elif payload:  # an empty retained payload only clears the topic
            online = parse_status(payload)
            if online is None:
                cols.reject(i, Reason.BAD_STATUS, "status payload must be online or offline")
            else:
                statuses.append(DeviceStatus(route.site, route.meter, online, m.recv_ms))

    rejected = [
        Rejected(messages[r.msg], r.reason, r.message, r.field, r.count) for r in cols.rejections
    ]
    n = len(cols)
    ts = np.fromiter(cols.ts_ms, np.int64, n)
    values = np.fromiter(cols.values, np.float64, n)
    sidx = np.fromiter(cols.series_idx, np.int64, n)
    checks = check_rows(
        ts, values, now_ms=now_ms, max_future_ms=limits.max_future_ms, max_age_ms=limits.max_age_ms
    )
    for i, reason in zip(checks.bad_idx.tolist(), checks.reasons, strict=True):
        quantity = series[sidx[i]].quantity
        rejected.append(
            Rejected(
                messages[cols.msg[i]],
                reason,
                _row_message(reason, values[i], ts[i], now_ms),
                quantity,
            )
        )
    keep = checks.keep
    batch = ReadingBatch(
        series, sidx[keep], ts[keep], values[keep], np.full(int(keep.sum()), np.nan)
    )
    return Prepared(batch, rejected, statuses, kinds)


def _row_message(reason: Reason, value: float, ts_ms: int, now_ms: int) -> str:
    if reason is Reason.NOT_FINITE:
        return f"{value} is not a finite number"
    if reason is Reason.FUTURE:
        return f"timestamp {ts_ms} is {(ts_ms - now_ms) / 1000:.0f} s in the future"
    return f"timestamp {ts_ms} is {(now_ms - ts_ms) / 86_400_000:.1f} days old"


def dedupe_last(batch: ReadingBatch) -> ReadingBatch:
    """One row per (series, ts), the latest received winning; rows sorted by series, time."""
    if len(batch) < 2:
        return batch
    order = np.lexsort((np.arange(len(batch)), batch.ts_ms, batch.series_idx))
    s, t = batch.series_idx[order], batch.ts_ms[order]
    last = np.r_[(s[1:] != s[:-1]) | (t[1:] != t[:-1]), True]
    return batch.take(order[last])
