"""What the alert service returns: plain frozen dataclasses, free of secrets."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ecocluster.core.alerting import Matcher, parse_matcher

__all__ = ["AckResult", "AlertDetail", "AlertRecord", "AuditEntry", "NotificationRecord", "Silence"]


@dataclass(frozen=True, slots=True)
class AlertRecord:
    id: int
    fingerprint: str
    code: str
    rule: str
    severity: str
    labels: Mapping[str, str]
    state: str
    value: float | None
    threshold: float | None
    description: str | None
    starts_ms: int
    ends_ms: int | None
    updated_ms: int
    fired_count: int
    acked_by: str | None
    acked_ms: int | None
    ack_comment: str | None
    ack_channel: str | None
    assignee: str | None
    escalation: str | None
    escalation_step: int
    silenced_by: str | None
    inhibited: bool
    recipients: tuple[str, ...]

    @property
    def acknowledged(self) -> bool:
        return self.acked_ms is not None

    @classmethod
    def from_row(cls, row: Any) -> AlertRecord:
        m = row._mapping
        return cls(
            id=m["id"],
            fingerprint=m["fingerprint"],
            code=m["code"],
            rule=m["rule"],
            severity=m["severity"],
            labels=json.loads(m["labels"]),
            state=m["state"],
            value=m["value"],
            threshold=m["threshold"],
            description=m["description"],
            starts_ms=m["starts_ms"],
            ends_ms=m["ends_ms"],
            updated_ms=m["updated_ms"],
            fired_count=m["fired_count"],
            acked_by=m["acked_by"],
            acked_ms=m["acked_ms"],
            ack_comment=m["ack_comment"],
            ack_channel=m["ack_channel"],
            assignee=m["assignee"],
            escalation=m["escalation"],
            escalation_step=m["esc_step"],
            silenced_by=m["silenced_by"],
            inhibited=bool(m["inhibited"]),
            recipients=tuple(json.loads(m["recipients"])),
        )

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__slots__}
        out["labels"] = dict(self.labels)
        out["recipients"] = list(self.recipients)
        return out


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at_ms: int
    event: str
    actor: str | None
    channel: str | None
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    """One outbox row as the API may show it: never the Apprise URL, only its index."""

    id: int
    kind: str
    contact_id: str
    channel: int
    status: str
    attempts: int
    created_ms: int
    sent_ms: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class AlertDetail:
    alert: AlertRecord
    audit: tuple[AuditEntry, ...]
    notifications: tuple[NotificationRecord, ...]


@dataclass(frozen=True, slots=True)
class AckResult:
    alert: AlertRecord
    #: False when the alert was already acknowledged (the ack is idempotent).
    changed: bool


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[str, ...]
    starts_ms: int
    ends_ms: int
    author: str
    reason: str
    end_on_resolve: bool
    created_ms: int
    expired_ms: int | None = None
    expired_by: str | None = None
    _parsed: tuple[Matcher, ...] = field(default=(), repr=False, compare=False)

    def active(self, now_ms: int) -> bool:
        return self.expired_ms is None and self.starts_ms <= now_ms < self.ends_ms

    def matches(self, labels: Mapping[str, str]) -> bool:
        parsed = self._parsed or tuple(parse_matcher(t) for t in self.matchers)
        return all(m.matches(labels) for m in parsed)

    @classmethod
    def from_row(cls, row: Any) -> Silence:
        m = row._mapping
        texts = tuple(json.loads(m["matchers"]))
        return cls(
            id=m["id"],
            matchers=texts,
            starts_ms=m["starts_ms"],
            ends_ms=m["ends_ms"],
            author=m["author"],
            reason=m["reason"],
            end_on_resolve=bool(m["end_on_resolve"]),
            created_ms=m["created_ms"],
            expired_ms=m["expired_ms"],
            expired_by=m["expired_by"],
            _parsed=tuple(parse_matcher(t) for t in texts),
        )
