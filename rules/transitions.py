"""What the rule engine emits: one `Transition` per state change of a (rule, target).

States of a (rule, target): ok → pending → firing → (resolved) → ok. Events are emitted
only on changes: `pending` (condition true, waiting out `for`), `inactive` (a pending
condition went away before `for`), `firing` (also re-sent when the severity changes while
firing), `resolved`. The alert stage acts on `firing` and `resolved`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import orjson

from ecocluster.core.types import Severity

__all__ = ["SEVERITY_BY_LEVEL", "Transition", "TransitionState"]

TransitionState = Literal["pending", "inactive", "firing", "resolved"]
PreviousState = Literal["ok", "pending", "firing"]
#: Level codes used by the kernels: 0 = condition false, 1..3 = true at this severity.
SEVERITY_BY_LEVEL: tuple[Severity | None, ...] = (
    None,
    Severity.INFO,
    Severity.WARNING,
    Severity.CRITICAL,
)
LEVEL_BY_SEVERITY = {s: i for i, s in enumerate(SEVERITY_BY_LEVEL) if s is not None}


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
