"""Alerts: lifecycle, routing, grouping, escalation, silences, outbox, Apprise dispatch.

The node builds one `AlertService` (the rules stage's `TransitionSink`, and the Python API
the HTTP API calls: see `ecocluster.alerts.service`) and runs one `AlertStage` (timers,
outbox dispatcher, optional inbound SMTP listener, and the MQTT consumer of
`{prefix}/_alerts/#` when the stage runs alone).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ecocluster.alerts.clock import Clock, ManualClock, SystemClock
    from ecocluster.alerts.links import AckClaim, InvalidAckLink
    from ecocluster.alerts.records import (
        AckResult,
        AlertDetail,
        AlertRecord,
        AuditEntry,
        NotificationRecord,
        Silence,
    )
    from ecocluster.alerts.replies import (
        InboundMessage,
        ReplyRejected,
        parse_email_reply,
        parse_httpsms,
        parse_smseagle,
        parse_smsgate,
    )
    from ecocluster.alerts.service import (
        AckRefused,
        AlertNotFound,
        AlertService,
        ChannelOutcome,
        ReplyOutcome,
        SilenceError,
    )
    from ecocluster.alerts.stage import AlertStage

#: Public names and the module that defines each, imported on first use (PEP 562): the CLI
#: registers `ecocluster alerts …` without paying for SQLAlchemy, Alembic and Apprise.
_EXPORTS: dict[str, str] = {
    "AckClaim": "ecocluster.alerts.links",
    "AckRefused": "ecocluster.alerts.service",
    "AckResult": "ecocluster.alerts.records",
    "AlertDetail": "ecocluster.alerts.records",
    "AlertNotFound": "ecocluster.alerts.service",
    "AlertRecord": "ecocluster.alerts.records",
    "AlertService": "ecocluster.alerts.service",
    "AlertStage": "ecocluster.alerts.stage",
    "AuditEntry": "ecocluster.alerts.records",
    "ChannelOutcome": "ecocluster.alerts.service",
    "Clock": "ecocluster.alerts.clock",
    "InboundMessage": "ecocluster.alerts.replies",
    "InvalidAckLink": "ecocluster.alerts.links",
    "ManualClock": "ecocluster.alerts.clock",
    "NotificationRecord": "ecocluster.alerts.records",
    "ReplyOutcome": "ecocluster.alerts.service",
    "ReplyRejected": "ecocluster.alerts.replies",
    "Silence": "ecocluster.alerts.records",
    "SilenceError": "ecocluster.alerts.service",
    "SystemClock": "ecocluster.alerts.clock",
    "parse_email_reply": "ecocluster.alerts.replies",
    "parse_httpsms": "ecocluster.alerts.replies",
    "parse_smseagle": "ecocluster.alerts.replies",
    "parse_smsgate": "ecocluster.alerts.replies",
}


__all__ = [
    "AckClaim",
    "AckRefused",
    "AckResult",
    "AlertDetail",
    "AlertNotFound",
    "AlertRecord",
    "AlertService",
    "AlertStage",
    "AuditEntry",
    "ChannelOutcome",
    "Clock",
    "InboundMessage",
    "InvalidAckLink",
    "ManualClock",
    "NotificationRecord",
    "ReplyOutcome",
    "ReplyRejected",
    "Silence",
    "SilenceError",
    "SystemClock",
    "parse_email_reply",
    "parse_httpsms",
    "parse_smseagle",
    "parse_smsgate",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
