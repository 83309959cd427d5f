"""What the rule engine emits and the alert service consumes: one `Transition` per state
change of a (rule, target), and the port it travels through (`TransitionSink`).

It lives in the kernel so that the rules stage can emit and the alert stage can receive
without importing each other's internals: in one node the alert service is a
`TransitionSink` in-process; across processes the MQTT publisher is one (QoS 1 on
`{prefix}/_alerts/{site}/{rule}`) and the alert stage subscribes.

States of a (rule, target): ok → pending → firing → (resolved) → ok. Events are emitted
only on changes: `pending` (condition true, waiting out `for`), `inactive` (a pending
condition went away before `for`), `firing` (also re-sent when the severity changes while
firing), `resolved`. The alert stage acts on `firing` and `resolved`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import orjson

from ecocluster.core.types import Severity

__all__ = ["PreviousState", "QueueSink", "Transition", "TransitionSink", "TransitionState"]

TransitionState = Literal["pending", "inactive", "firing", "resolved"]
PreviousState = Literal["ok", "pending", "firing"]


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change. `labels` has rule, severity, org, site, meter, quantity, category
    (those the target has: a site-scope rule has no meter). Times are epoch ms (event time);
    `since_ms` is when the condition became true, `at_ms` when this change happened."""

    rule: str
    state: TransitionState
    previous: PreviousState
    severity: Severity
    labels: Mapping[str, str]
    value: float
    threshold: float
    since_ms: int
    at_ms: int
    flapping: bool = False
    description: str | None = None

    @property
    def target(self) -> str:
        """A stable identity of the alert subject: the rule plus its target's labels."""
        parts = [f"{k}={v}" for k, v in sorted(self.labels.items()) if k != "severity"]
        return ",".join(parts)

    def to_json(self) -> bytes:
        body = asdict(self)
        body["labels"] = dict(self.labels)
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Transition:
        body: dict[str, Any] = orjson.loads(raw)
        body["severity"] = Severity(body["severity"])
        body["value"] = float("nan") if body["value"] is None else body["value"]
        body["threshold"] = float("nan") if body["threshold"] is None else body["threshold"]
        return cls(**body)


class TransitionSink(Protocol):
    """Where rule transitions go: the alert service in-process, or an MQTT publisher for an
    alert stage in another process. `on_transitions` returns once the sink holds them
    durably enough for its contract (committed to the alert store; queued for QoS 1)."""

    async def on_transitions(self, transitions: Sequence[Transition]) -> None: ...


class QueueSink:
    """A `TransitionSink` onto an asyncio queue: for a consumer in the same loop (tests, a
    console printer). Unbounded on purpose: a rule tick must never wait for a reader."""

    def __init__(self, queue: asyncio.Queue[Transition] | None = None) -> None:
        self.queue: asyncio.Queue[Transition] = queue if queue is not None else asyncio.Queue()

    async def on_transitions(self, transitions: Sequence[Transition]) -> None:
        for transition in transitions:
            self.queue.put_nowait(transition)
