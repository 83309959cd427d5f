"""What the API needs from the alert service, and nothing more (a port, httpx-style).

The real `ecocluster.alerts.AlertService` is adapted to this port in `alert_adapter.py`;
tests may also use any other implementation. Values crossing the port are plain frozen
dataclasses so the API's response models never depend on the alert service's internals.

Errors an implementation raises: `AlertNotFound`, `AckRefused` (scope, state), and
`InboundRejected` (a webhook whose signature or shape is wrong); anything else means the
alert service is in trouble and the API answers 503.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = [
    "AckLink",
    "AckRefused",
    "AlertEvent",
    "AlertFilter",
    "AlertNotFound",
    "AlertPort",
    "AlertRecord",
    "InboundRejected",
    "InboundResult",
    "SilenceDraft",
    "SilenceRecord",
    "SilenceRejected",
]

AlertState = Literal["firing", "resolved"]


class AlertNotFound(LookupError):
    """No alert (or silence) with that id."""


class AckRefused(PermissionError):
    """The alert service refused an acknowledgement or a change (scope, expired link, …)."""


class InboundRejected(ValueError):
    """An inbound webhook was refused: bad signature, unknown gateway, unreadable body."""


class SilenceRejected(ValueError):
    """The alert service refused a silence (bad matcher, no reason, …); the API says 422."""


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One entry of an alert's append-only audit trail."""

    at_ms: int
    kind: str  # fired, notified, delivered, failed, acked, assigned, escalated, resolved, …
    by: str | None = None
    channel: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class AlertRecord:
    id: str
    code: str
    rule: str
    severity: str
    state: AlertState
    labels: Mapping[str, str]
    value: float | None
    threshold: float | None
    started_ms: int
    updated_ms: int
    resolved_ms: int | None = None
    acked_by: str | None = None
    acked_ms: int | None = None
    ack_comment: str | None = None
    ack_channel: str | None = None
    assignee: str | None = None
    silenced: bool = False
    description: str | None = None
    events: Sequence[AlertEvent] = ()

    @property
    def org(self) -> str | None:
        return self.labels.get("org")

    @property
    def site(self) -> str | None:
        return self.labels.get("site")


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Filters of a listing; `orgs` None = every organisation (the caller's scope)."""

    orgs: frozenset[str] | None = None
    state: AlertState | None = None
    severity: str | None = None
    site: str | None = None
    rule: str | None = None
    acknowledged: bool | None = None
    since_ms: int | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class SilenceDraft:
    matchers: Mapping[str, str]
    starts_ms: int
    ends_ms: int
    reason: str
    author: str
    end_on_recovery: bool = False


@dataclass(frozen=True, slots=True)
class SilenceRecord:
    id: str
    matchers: Mapping[str, str]
    starts_ms: int
    ends_ms: int
    reason: str
    author: str
    end_on_recovery: bool = False
    expired_ms: int | None = None
    expired_by: str | None = None

    def active_at(self, now_ms: int) -> bool:
        return self.expired_ms is None and self.starts_ms <= now_ms < self.ends_ms


@dataclass(frozen=True, slots=True)
class AckLink:
    """What a signed one-click link names, once verified."""

    alert_id: str
    contact: str | None
    expires_ms: int


@dataclass(frozen=True, slots=True)
class InboundResult:
    """The outcome of an inbound reply: which alert, done or why not (sent back as JSON)."""

    accepted: bool
    message: str
    alert_id: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


class AlertPort(Protocol):
    async def list_alerts(self, flt: AlertFilter) -> list[AlertRecord]: ...

    async def get_alert(self, alert_id: str) -> AlertRecord:
        """The alert with its whole audit trail; `AlertNotFound` if none."""

    async def ack(
        self, alert_id: str, *, by: str, comment: str | None, channel: str = "api"
    ) -> AlertRecord:
        """Acknowledge (idempotent: a second ack keeps the first one's who and when)."""

    async def assign(self, alert_id: str, *, assignee: str | None, by: str) -> AlertRecord: ...

    async def list_silences(self, *, include_expired: bool = False) -> list[SilenceRecord]: ...

    async def create_silence(self, draft: SilenceDraft) -> SilenceRecord: ...

    async def get_silence(self, silence_id: str) -> SilenceRecord: ...

    async def expire_silence(self, silence_id: str, *, by: str) -> SilenceRecord: ...

    def verify_ack_link(self, token: str) -> AckLink:
        """Check the HMAC and expiry of a one-click link; `AckRefused` when bad or expired."""

    async def ack_by_link(self, token: str, *, comment: str | None = None) -> AlertRecord: ...

    async def handle_inbound(
        self, gateway: str, body: bytes, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> InboundResult:
        """An SMS gateway's incoming-message webhook (smseagle, android, httpsms, …)."""

    async def ping(self) -> None:
        """Raise if the alert database cannot be reached (readiness)."""

    def subscribe(self, listener: Callable[[AlertRecord], None]) -> Callable[[], None]:
        """Call `listener` (in the loop, quickly) on every alert change; returns unsubscribe."""


_PORT_ERRORS = (AlertNotFound, AckRefused, InboundRejected, SilenceRejected)


class GuardedAlerts:
    """Wraps an `AlertPort` so that its unexpected failures (database down, a bug) reach
    the API as `Unavailable` (503, named), never as a 500; the port's own errors pass."""

    def __init__(self, port: AlertPort) -> None:
        self.port = port

    def __getattr__(self, name: str) -> object:
        import functools
        import inspect

        from ecocluster.api.errors import Unavailable
        from ecocluster.core.errors import describe

        target = getattr(self.port, name)
        if not callable(target):
            return target
        if inspect.iscoroutinefunction(target):

            @functools.wraps(target)
            async def guarded_async(*args: object, **kwargs: object) -> object:
                try:
                    return await target(*args, **kwargs)
                except _PORT_ERRORS:
                    raise
                except Exception as exc:
                    raise Unavailable(f"the alert service failed: {describe(exc)}") from exc

            return guarded_async

        @functools.wraps(target)
        def guarded(*args: object, **kwargs: object) -> object:
            try:
                return target(*args, **kwargs)
            except _PORT_ERRORS:
                raise
            except Exception as exc:
                raise Unavailable(f"the alert service failed: {describe(exc)}") from exc

        return guarded
