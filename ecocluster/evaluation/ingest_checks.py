"""What ingest did with the faults no rule type exists for: malformed payloads, hostile
ids and clock skew (the dead-letter log), counter resets and meter replacements (the
register flags and the deltas handed on). Pure functions over the run's evidence.

A fault counts as handled when ingest did everything it promises for it:

- malformed / hostile_ids: every injected message was rejected (dead-lettered);
- clock_skew ahead of the receipt clock by more than `max_future_s`: every message of the
  meter inside the window was refused as `future`; a skew into the past is stored at the
  wrong time and nothing can tell (not handled, said so);
- counter_reset / meter_replacement: the register event was flagged and no negative or
  implausible delta was booked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from ecocluster.core.types import FloatArray, IntArray

from .score import MIN_MS, FaultOutcome

__all__ = [
    "DeadLetter",
    "RunEvidence",
    "Sent",
    "SeriesTrace",
    "check_fault",
    "read_jsonl",
]

#: Dead letters of a window are matched until this long after it (ingest batching).
_SLACK_MS = 15 * MIN_MS
#: A register delta this many times the series' usual largest one is implausible.
_GIANT_FACTOR = 20.0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One line of ingest's dead-letter or register-flag log."""

    topic: str
    reason: str
    recv_ms: int
    field: str = ""
    count: int = 1


def read_jsonl(path: Path) -> list[DeadLetter]:
    """A dead-letter log and its rotated half (`x.1.jsonl` first: it is older)."""
    out: list[DeadLetter] = []
    for file in (path.with_name(path.stem + ".1" + path.suffix), path):
        if not file.exists():
            continue
        for line in file.read_bytes().splitlines():
            if not line.strip():
                continue
            entry = orjson.loads(line)
            out.append(
                DeadLetter(
                    str(entry.get("topic", "")),
                    str(entry.get("reason", "")),
                    int(entry.get("recv_ms") or 0),
                    str(entry.get("field", "")),
                    int(entry.get("count") or 1),
                )
            )
    return out


@dataclass
class SeriesTrace:
    """The readings of one series as ingest handed them on (time order of arrival)."""

    ts_ms: list[IntArray] = field(default_factory=list)
    values: list[FloatArray] = field(default_factory=list)
    deltas: list[FloatArray] = field(default_factory=list)

    def arrays(self) -> tuple[IntArray, FloatArray, FloatArray]:
        if not self.ts_ms:
            return np.empty(0, np.int64), np.empty(0), np.empty(0)
        ts = np.concatenate(self.ts_ms)
        order = np.argsort(ts, kind="stable")
        return ts[order], np.concatenate(self.values)[order], np.concatenate(self.deltas)[order]


@dataclass(frozen=True, slots=True)
class Sent:
    """One published message the checks care about (not every data message)."""

    due_ms: int
    meter_idx: int
    topic: str
    kind: str
    size: int = 0


@dataclass
class RunEvidence:
    """What one run left behind for the checks."""

    prefix: str
    max_future_ms: int
    #: The subscriber's payload limit; over MQTT 5 it is its Maximum Packet Size, and the
    #: broker drops a bigger message for it instead of delivering it (MQTT-3.1.2-25).
    max_payload_bytes: int
    protocol: str
    #: (site, meter) → the plan's meter index.
    meter_index: Mapping[tuple[str, str], int]
    #: malformed and hostile messages as published.
    injected: Sequence[Sent]
    #: data messages per meter index: their due times (sorted).
    data_due: Mapping[int, IntArray]
    dead_letters: Sequence[DeadLetter]
    register_flags: Sequence[DeadLetter]
    #: (site, meter, quantity) → readings handed on by ingest.
    series: Mapping[tuple[str, str, str], SeriesTrace]


def check_fault(fault: FaultOutcome, params: Mapping[str, object], ev: RunEvidence) -> None:
    """Fill `fault.found`, `detail` and `reasons` for an ingest-handled kind."""
    if fault.kind in ("malformed", "hostile_ids"):
        _check_injected(fault, ev, "malformed" if fault.kind == "malformed" else "hostile")
    elif fault.kind == "clock_skew":
        _check_skew(fault, float(params.get("offset_s", 0.0)), ev)  # type: ignore[arg-type]
    elif fault.kind in ("counter_reset", "meter_replacement"):
        _check_register(fault, ev)


def _in_window(ts: int, fault: FaultOutcome) -> bool:
    return fault.start_ms <= ts <= max(fault.end_ms, fault.start_ms) + _SLACK_MS


def _check_injected(fault: FaultOutcome, ev: RunEvidence, kind: str) -> None:
    """Injected messages are handled when dead-lettered, or never delivered to ingest:
    a topic with the wrong number of levels matches no subscription, and over MQTT 5 a
    payload over the subscriber's Maximum Packet Size is dropped by the broker."""
    idx = ev.meter_index.get((fault.site, fault.meter), -2)
    sent = [
        s
        for s in ev.injected
        if s.kind == kind and s.meter_idx == idx and fault.start_ms <= s.due_ms < fault.end_ms
    ]
    topics = {s.topic for s in sent}
    reasons: Counter[str] = Counter()
    for d in ev.dead_letters:
        if d.topic in topics and _in_window(d.recv_ms, fault):
            reasons[d.reason] += 1
    upstream = [s for s in sent if _never_delivered(s, ev)]
    rejected = min(sum(reasons.values()), len(sent))
    handled = min(rejected + len(upstream), len(sent))
    fault.reasons = dict(reasons)
    if upstream:
        fault.reasons["not delivered"] = len(upstream)
    fault.found = bool(sent) and handled >= len(sent)
    fault.detail = f"{handled}/{len(sent)} refused: dead-lettered {rejected} ({_fmt(reasons)})"
    if upstream:
        fault.detail += f", {len(upstream)} never delivered (subscription or packet size)"


def _never_delivered(sent: Sent, ev: RunEvidence) -> bool:
    wrong_levels = len(sent.topic.split("/")) != 4
    too_big = ev.protocol == "5" and sent.size > ev.max_payload_bytes
    return wrong_levels or too_big


def _check_skew(fault: FaultOutcome, offset_s: float, ev: RunEvidence) -> None:
    idx = ev.meter_index.get((fault.site, fault.meter), -2)
    due = ev.data_due.get(idx, np.empty(0, np.int64))
    n_sent = int(((due >= fault.start_ms) & (due < fault.end_ms)).sum())
    topic = f"{ev.prefix}/{fault.site}/{fault.meter}/"
    reasons: Counter[str] = Counter(
        d.reason
        for d in ev.dead_letters
        if d.topic.startswith(topic) and _in_window(d.recv_ms, fault)
    )
    fault.reasons = dict(reasons)
    if offset_s * 1000 <= ev.max_future_ms:
        fault.found = False
        fault.detail = (
            f"skew {offset_s:+.0f} s: readings stored at the wrong time, not detectable "
            f"({reasons.get('future', 0)}/{n_sent} refused)"
        )
        return
    refused = min(reasons.get("future", 0), n_sent)
    fault.found = n_sent > 0 and refused >= n_sent
    fault.detail = f"{refused}/{n_sent} messages refused as future (skew {offset_s:+.0f} s)"


def _check_register(fault: FaultOutcome, ev: RunEvidence) -> None:
    quantity = fault.quantity or ""
    flags: Counter[str] = Counter(
        f.reason
        for f in ev.register_flags
        if f.topic == f"{fault.site}/{fault.meter}" and f.field == quantity
    )
    trace = ev.series.get((fault.site, fault.meter, quantity))
    ts, _, deltas = trace.arrays() if trace is not None else SeriesTrace().arrays()
    inside = (ts >= fault.start_ms) & (ts <= max(fault.end_ms, fault.start_ms) + 2 * 60 * MIN_MS)
    booked = deltas[inside & ~np.isnan(deltas)]
    usual = deltas[~inside & ~np.isnan(deltas)]
    usual_max = float(np.percentile(usual, 99)) if usual.size else 0.0
    negative = int((booked < 0).sum())
    biggest = float(booked.max()) if booked.size else 0.0
    giant = biggest > _GIANT_FACTOR * max(usual_max, 1e-3)
    fault.reasons = dict(flags)
    fault.found = bool(flags) and negative == 0 and not giant
    fault.detail = (
        f"flags {_fmt(flags)}; {negative} negative deltas; largest {biggest:.3g} "
        f"(usual ≤ {usual_max:.3g})"
    )


def _fmt(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
