"""The alert worker's Prometheus metrics: who leads the timers, and what the outbox did.

Registered on the registry the node hands over (its `/metrics`), or on a private one."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["AlertMetrics"]


class AlertMetrics:
    """Usage: `AlertMetrics(registry)`; the service and its lease update it."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.leader = Gauge(
            "ecocluster_alerts_leader",
            "1 while this alert worker owns the timers (group, repeat, escalation, ack lapse)",
            registry=r,
        )
        self.leader_term = Gauge(
            "ecocluster_alerts_leader_term",
            "The timer lease's term this worker holds (0: not leading)",
            registry=r,
        )
        self.leadership_changes = Counter(
            "ecocluster_alerts_leadership_changes_total",
            "Times this worker took or lost the timer lease",
            ["change"],
            registry=r,
        )
        self.fenced = Counter(
            "ecocluster_alerts_fenced_total",
            "Timer runs refused because a newer leader term exists (a stale leader stopped)",
            registry=r,
        )
        self.sent = Counter(
            "ecocluster_alerts_notifications_sent_total",
            "Notifications delivered by this worker",
            registry=r,
        )
        self.lease_skips = Counter(
            "ecocluster_alerts_outbox_lease_skips_total",
            "Claimed notifications not sent because their lease could not cover the send",
            registry=r,
        )
