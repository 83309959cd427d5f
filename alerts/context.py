"""What the alert engine's transaction functions share: the territory, the resolved routing
tree, renderers and links, and the clock's `now` for this unit of work."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert

from ecocluster.alerts.chart import line_chart_png
from ecocluster.alerts.links import AckLinks
from ecocluster.alerts.messages import AlertView, Renderer, format_value, local_time
from ecocluster.alerts.records import AlertRecord
from ecocluster.alerts.routing import RouteNode
from ecocluster.alerts.store import schema as t
from ecocluster.core.alerting import InhibitRule
from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings

__all__ = ["Context", "audit"]


@dataclass(frozen=True)
class Context:
    cluster: Cluster
    settings: Settings
    tree: RouteNode
    inhibit_rules: Sequence[InhibitRule]
    renderer: Renderer
    links: AckLinks

    @property
    def tz(self) -> str:
        return self.cluster.territory.timezone

    def view(self, alert: AlertRecord, contact_id: str, now_ms: int) -> AlertView:
        labels = alert.labels
        site = self.cluster.site_by_id.get(labels.get("site", ""))
        quantity = labels.get("quantity", "")
        return AlertView(
            id=alert.id,
            code=alert.code,
            rule=alert.rule,
            severity=alert.severity,
            state=alert.state,
            org=labels.get("org", ""),
            site=labels.get("site", ""),
            site_name=site.name if site else labels.get("site", "-"),
            meter=labels.get("meter", ""),
            quantity=quantity,
            value_text=format_value(alert.value, quantity),
            threshold_text=format_value(alert.threshold, quantity),
            since_local=local_time(alert.starts_ms, self.tz),
            ended_local=local_time(alert.ends_ms, self.tz),
            description=alert.description,
            link=self.links.url(alert.id, contact_id, now_ms),
        )

    def chart(self, conn: Connection, alert: AlertRecord, now_ms: int) -> bytes | None:
        """The alert's recent values as recorded in its audit trail (fired/updated events),
        with the threshold: enough to see the shape of the breach."""
        from sqlalchemy import select

        rows = conn.execute(
            select(t.audit.c.at_ms, t.audit.c.detail)
            .where(t.audit.c.alert_id == alert.id, t.audit.c.event.in_(("fired", "updated")))
            .order_by(t.audit.c.id)
        ).all()
        ts, values = [], []
        for at_ms, detail in rows:
            value = json.loads(detail or "{}").get("value")
            if isinstance(value, int | float):
                ts.append(at_ms)
                values.append(float(value))
        if alert.value is not None:
            ts.append(now_ms)
            values.append(alert.value)
        if not ts:
            return None
        return line_chart_png(ts, values, threshold=alert.threshold, since_ms=alert.starts_ms)


def audit(
    conn: Connection,
    alert_id: int,
    at_ms: int,
    event: str,
    *,
    actor: str | None = None,
    channel: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    conn.execute(
        insert(t.audit).values(
            alert_id=alert_id,
            at_ms=at_ms,
            event=event,
            actor=actor,
            channel=channel,
            detail=json.dumps(detail, default=str) if detail else None,
        )
    )
