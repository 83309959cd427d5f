"""Who a `notify:` list means right now: contacts, roles (scoped to the alert's
organisation when it has someone in that role) and on-call schedules (the person on duty)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from ecocluster.alerts.oncall import on_duty
from ecocluster.core.alerting import parse_recipient
from ecocluster.core.registry import Cluster

__all__ = ["expand"]


def expand(
    cluster: Cluster, names: Iterable[str], labels: Mapping[str, str], at_ms: int
) -> list[str]:
    """Contact ids, deduplicated, in the order named."""
    out: list[str] = []
    tz = cluster.territory.timezone
    for text in names:
        kind, name = parse_recipient(text)
        if kind in (None, "contact") and name in cluster.contact_by_id:
            found = [name]
        elif kind in (None, "schedule") and name in cluster.schedule_by_name:
            at = datetime.fromtimestamp(at_ms / 1000, UTC)
            found = [on_duty(cluster.schedule_by_name[name], at, tz).contact]
        else:
            holders = [c for c in cluster.contacts if name in c.roles]
            local = [c.id for c in holders if c.org == labels.get("org")]
            found = local or [c.id for c in holders]
        out.extend(c for c in found if c not in out)
    return out
