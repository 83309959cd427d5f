"""The alert lifecycle as transaction functions `fn(conn, ctx, …, now_ms)` (run on the
database thread by the service): transitions in, groups flushed, escalations climbed.

Alertmanager's semantics, with the fixes the territory needs: a new alert joins the
aggregation group of each route it matches; a group's first notification waits
`group_wait`, later ones are considered every `group_interval` and sent when the group has
new alerts or `repeat_interval` has passed. Resolved notices go out at once — to everyone
told of the alert, or, when nobody was (still inside `group_wait`, silenced, inhibited), to
the route's recipients — never held back by grouping (Alertmanager #226, #1660, #2398).
Acknowledged, silenced and inhibited alerts are left out of repeats and escalations.

Several workers on one database: every worker applies transitions, and applying one twice
(two workers both subscribed, a redelivery) changes nothing the second time — a new alert is
`INSERT … ON CONFLICT DO NOTHING` on its unique fingerprint, and every change of an existing
one is an `UPDATE … WHERE` on the state it read (state, fired count, severity) and on the
transition being no older than the newest applied (`last_at_ms`), so of two workers racing
only one changes the row, audits and notifies. Timers run on the leader only (`run_due`
checks the leader term first), and each step is again conditional on what it read
(`UPDATE … WHERE esc_step = :expected`): no step fires twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from sqlalchemy import ColumnElement, Connection, bindparam, delete, insert, or_, select, update

from ecocluster.alerts.context import Context, audit
from ecocluster.alerts.fingerprint import fingerprint, new_code
from ecocluster.alerts.leader import check_term
from ecocluster.alerts.outbox import enqueue
from ecocluster.alerts.recipients import expand
from ecocluster.alerts.records import AlertRecord, Silence
from ecocluster.alerts.routing import RouteNode, group_key, match_routes
from ecocluster.alerts.store import schema as t
from ecocluster.alerts.store.db import insert_ignore
from ecocluster.alerts.suppress import Inhibitor
from ecocluster.alerts.timeintervals import in_any
from ecocluster.core.transitions import Transition

__all__ = ["apply_transitions", "escalate", "next_due", "run_due"]

A = t.alerts.c


def _load(conn: Connection, alert_id: int) -> AlertRecord:
    return AlertRecord.from_row(conn.execute(select(t.alerts).where(A.id == alert_id)).one())


def _route_by_key(ctx: Context) -> dict[str, RouteNode]:
    out: dict[str, RouteNode] = {}
    stack = [ctx.tree]
    while stack:
        node = stack.pop()
        out[node.key] = node
        stack.extend(node.children)
    return out


def _muted(ctx: Context, node: RouteNode, now_ms: int) -> bool:
    intervals = ctx.cluster.time_interval_by_name
    mute = [s for n in node.opts.mute_time_intervals for s in intervals[n].time_intervals]
    if mute and in_any(mute, now_ms, ctx.tz):
        return True
    active = [s for n in node.opts.active_time_intervals for s in intervals[n].time_intervals]
    return bool(active) and not in_any(active, now_ms, ctx.tz)


# -- transitions ----------------------------------------------------------------------------
def apply_transitions(
    conn: Connection, ctx: Context, transitions: Sequence[Transition], now_ms: int
) -> int:
    """Fold rule transitions into alert state; returns how many changed an alert."""
    changed = 0
    codes: set[str] | None = None  # the codes in use, read once per batch (storms)
    fresh, rest = _split_fresh(conn, transitions)
    if fresh:
        codes = {c for (c,) in conn.execute(select(A.code)).all()}
        done, lost = _fire_fresh(conn, ctx, fresh, now_ms, codes)
        changed += done
        if lost:  # inserted first by another worker (or a code clash): the one-by-one path
            later = {id(tr) for tr in rest} | lost
            rest = [tr for tr in transitions if id(tr) in later]
    for tr in rest:
        if tr.state == "firing":
            if codes is None:
                codes = {c for (c,) in conn.execute(select(A.code)).all()}
            changed += _fire(conn, ctx, tr, now_ms, codes)
        elif tr.state == "resolved":
            changed += _resolve(conn, ctx, tr, now_ms)
    return changed


def _labels_of(tr: Transition) -> dict[str, str]:
    return {**tr.labels, "rule": tr.rule, "severity": str(tr.severity)}


def _split_fresh(
    conn: Connection, transitions: Sequence[Transition]
) -> tuple[list[tuple[str, Transition]], list[Transition]]:
    """Firing transitions of alerts never seen (the bulk of a storm: inserted in bulk), and
    the rest (in order, one by one). A fingerprint seen twice in the batch goes to the rest
    after its first."""
    firing = [
        (fingerprint(tr.rule, _labels_of(tr)), tr) for tr in transitions if tr.state == "firing"
    ]
    known: set[str] = set()
    fps = [fp for fp, _ in firing]
    for start in range(0, len(fps), 500):
        chunk = fps[start : start + 500]
        known |= {
            fp for (fp,) in conn.execute(select(A.fingerprint).where(A.fingerprint.in_(chunk)))
        }
    fresh: list[tuple[str, Transition]] = []
    taken: set[str] = set()
    fresh_ids: set[int] = set()
    for fp, tr in firing:
        if fp not in known and fp not in taken:
            taken.add(fp)
            fresh.append((fp, tr))
            fresh_ids.add(id(tr))
    return fresh, [tr for tr in transitions if id(tr) not in fresh_ids]


def _fire_fresh(
    conn: Connection,
    ctx: Context,
    fresh: list[tuple[str, Transition]],
    now_ms: int,
    codes: set[str],
) -> tuple[int, set[int]]:
    """New alerts in bulk: one executemany per table instead of a round trip per alert.
    Returns how many were inserted, and (as `id(transition)`) those another worker
    inserted first, left for the one-by-one path."""
    rows = []
    for fp, tr in fresh:
        code = new_code(codes)
        codes.add(code)
        rows.append(
            {
                "fingerprint": fp,
                "code": code,
                "rule": tr.rule,
                "fired_count": 1,
                "severity": str(tr.severity),
                "labels": json.dumps(_labels_of(tr), sort_keys=True),
                "value": _number(tr.value),
                "threshold": _number(tr.threshold),
                "description": tr.description,
                "updated_ms": now_ms,
                "state": "firing",
                "starts_ms": tr.since_ms or tr.at_ms,
                "ends_ms": None,
                "esc_step": 0,
                "inhibited": False,
                "notified": False,
                "recipients": "[]",
                "last_at_ms": tr.at_ms,
            }
        )
    stmt = insert_ignore(conn, t.alerts).returning(A.id, A.fingerprint)
    ids: dict[str, int] = {fp: i for i, fp in conn.execute(stmt, rows)}
    lost = {id(tr) for fp, tr in fresh if fp not in ids}
    fresh = [(fp, tr) for fp, tr in fresh if fp in ids]
    if not fresh:
        return 0, lost
    audits = [
        _audit_row(
            ids[fp],
            now_ms,
            "fired",
            {
                "value": _number(tr.value),
                "threshold": _number(tr.threshold),
                "severity": str(tr.severity),
            },
        )
        for fp, tr in fresh
    ]
    groups = {(g.route_key, g.group_key): g.id for g in conn.execute(select(t.groups)).all()}
    plans: list[tuple[int, list[tuple[str, str, dict[str, str], int]], str | None]] = []
    new_groups: dict[tuple[str, str], dict[str, object]] = {}
    for fp, tr in fresh:
        labels = _labels_of(tr)
        nodes = match_routes(ctx.tree, labels)
        keyed = []
        for node in nodes:
            if node.opts.notify or node.opts.escalate:
                key, picked = group_key(node.opts, labels)
                keyed.append((node.key, key, picked, node.opts.group_wait_ms))
                if (node.key, key) not in groups and (node.key, key) not in new_groups:
                    new_groups[(node.key, key)] = {
                        "route_key": node.key,
                        "group_key": key,
                        "labels": json.dumps(picked),
                        "next_flush_ms": now_ms + node.opts.group_wait_ms,
                        "last_notified_ms": None,
                        "created_ms": now_ms,
                    }
        chain = next((n.opts.escalate for n in nodes if n.opts.escalate), None)
        plans.append((ids[fp], keyed, chain))
        if not keyed:
            audits.append(
                _audit_row(ids[fp], now_ms, "unrouted", {"routes": [n.key for n in nodes]})
            )
    if new_groups:
        conn.execute(insert_ignore(conn, t.groups), list(new_groups.values()))
        groups = {(g.route_key, g.group_key): g.id for g in conn.execute(select(t.groups)).all()}
    members, escalations = [], []
    for alert_id, keyed, chain in plans:
        for route_key, key, _, _ in keyed:
            members.append(
                {"group_id": groups[(route_key, key)], "alert_id": alert_id, "notified": False}
            )
        if keyed:
            audits.append(
                _audit_row(
                    alert_id,
                    now_ms,
                    "grouped",
                    {"groups": [{"route": r, "group": g} for r, _, g, _ in keyed]},
                )
            )
        if chain and chain in ctx.cluster.escalation_by_name:
            after = ctx.cluster.escalation_by_name[chain].steps[0].after
            escalations.append(
                {
                    "b_id": alert_id,
                    "b_chain": chain,
                    "b_base": now_ms,
                    "b_due": now_ms + int(after.total_seconds() * 1000),
                }
            )
    if members:
        conn.execute(insert(t.group_members), members)
    if escalations:
        conn.execute(
            update(t.alerts)
            .where(A.id == bindparam("b_id"))
            .values(
                escalation=bindparam("b_chain"),
                esc_step=0,
                esc_base_ms=bindparam("b_base"),
                esc_due_ms=bindparam("b_due"),
            ),
            escalations,
        )
    conn.execute(insert(t.audit), audits)
    return len(fresh), lost


def _audit_row(
    alert_id: int, at_ms: int, event: str, detail: Mapping[str, object]
) -> dict[str, object]:
    return {
        "alert_id": alert_id,
        "at_ms": at_ms,
        "event": event,
        "actor": None,
        "channel": None,
        "detail": json.dumps(detail, default=str),
    }


def _number(value: float) -> float | None:
    return None if value != value else float(value)  # NaN → NULL


def _fire(conn: Connection, ctx: Context, tr: Transition, now_ms: int, codes: set[str]) -> int:
    labels = {**tr.labels, "rule": tr.rule, "severity": str(tr.severity)}
    fp = fingerprint(tr.rule, labels)
    row = conn.execute(select(t.alerts).where(A.fingerprint == fp)).first()
    detail = {
        "value": _number(tr.value),
        "threshold": _number(tr.threshold),
        "severity": str(tr.severity),
    }
    common = {
        "severity": str(tr.severity),
        "labels": json.dumps(labels, sort_keys=True),
        "value": _number(tr.value),
        "threshold": _number(tr.threshold),
        "description": tr.description,
        "updated_ms": now_ms,
    }
    if row is not None and _stale(row, tr):
        return 0  # older than what was applied (a replay by another worker, a backlog)
    if row is not None and row.state == "firing":
        if row.severity == str(tr.severity):
            return 0  # a redelivered transition: already known
        changed = conn.execute(
            update(t.alerts)
            .where(A.id == row.id, A.state == "firing", A.severity == row.severity, _newer(tr))
            .values(**common, last_at_ms=tr.at_ms)
        )
        if changed.rowcount != 1:
            return 0  # another worker applied it first
        audit(conn, row.id, now_ms, "updated", detail=detail)
        return 1
    reset = {
        "state": "firing",
        "starts_ms": tr.since_ms or tr.at_ms,
        "ends_ms": None,
        "acked_by": None,
        "acked_ms": None,
        "ack_comment": None,
        "ack_channel": None,
        "escalation": None,
        "esc_step": 0,
        "esc_base_ms": None,
        "esc_due_ms": None,
        "ack_rearm_ms": None,
        "silenced_by": None,
        "inhibited": False,
        "notified": False,
        "recipients": "[]",
    }
    if row is None:
        inserted = _insert_new(conn, fp, tr, codes, {**common, **reset})
        if inserted is None:
            return 0  # another worker inserted this alert first
        alert_id = inserted
    else:
        alert_id = row.id
        changed = conn.execute(
            update(t.alerts)
            .where(
                A.id == alert_id,
                A.state == row.state,
                A.fired_count == row.fired_count,
                _newer(tr),
            )
            .values(fired_count=row.fired_count + 1, last_at_ms=tr.at_ms, **common, **reset)
        )
        if changed.rowcount != 1:
            return 0  # another worker re-fired it first
    audit(conn, alert_id, now_ms, "fired", detail=detail)
    _route(conn, ctx, alert_id, labels, now_ms)
    return 1


def _stale(row: object, tr: Transition) -> bool:
    last = row._mapping["last_at_ms"]  # type: ignore[attr-defined]
    return last is not None and tr.at_ms < last


def _newer(tr: Transition) -> ColumnElement[bool]:
    """The row has not meanwhile taken a newer transition (checked again under the row
    lock: of two workers racing, the second sees the first's commit)."""
    return or_(A.last_at_ms.is_(None), A.last_at_ms <= tr.at_ms)


def _insert_new(
    conn: Connection, fp: str, tr: Transition, codes: set[str], values: dict[str, object]
) -> int | None:
    """Insert a new alert; None if another worker inserted the fingerprint first. A code
    clash with another worker's concurrent alert just draws another code."""
    for _ in range(5):
        code = new_code(codes)
        codes.add(code)
        stmt = insert_ignore(conn, t.alerts).returning(A.id)
        row = conn.execute(
            stmt.values(
                fingerprint=fp,
                code=code,
                rule=tr.rule,
                fired_count=1,
                last_at_ms=tr.at_ms,
                **values,
            )
        ).first()
        if row is not None:
            return int(row[0])
        if conn.execute(select(A.id).where(A.fingerprint == fp)).first() is not None:
            return None
    raise RuntimeError("alert store: no free alert code after 5 draws")


def _route(
    conn: Connection, ctx: Context, alert_id: int, labels: dict[str, str], now_ms: int
) -> None:
    nodes = match_routes(ctx.tree, labels)
    groups = []
    for node in nodes:
        if not node.opts.notify and not node.opts.escalate:
            continue
        key, picked = group_key(node.opts, labels)
        g = conn.execute(
            select(t.groups).where(t.groups.c.route_key == node.key, t.groups.c.group_key == key)
        ).first()
        if g is None:
            conn.execute(
                insert_ignore(conn, t.groups).values(
                    route_key=node.key,
                    group_key=key,
                    labels=json.dumps(picked),
                    next_flush_ms=now_ms + node.opts.group_wait_ms,
                    last_notified_ms=None,
                    created_ms=now_ms,
                )
            )
            g = conn.execute(
                select(t.groups).where(
                    t.groups.c.route_key == node.key, t.groups.c.group_key == key
                )
            ).one()
        group_id = g.id
        exists = conn.execute(
            select(t.group_members).where(
                t.group_members.c.group_id == group_id, t.group_members.c.alert_id == alert_id
            )
        ).first()
        if exists is None:
            conn.execute(
                insert(t.group_members).values(group_id=group_id, alert_id=alert_id, notified=False)
            )
        else:
            conn.execute(
                update(t.group_members)
                .where(
                    t.group_members.c.group_id == group_id, t.group_members.c.alert_id == alert_id
                )
                .values(notified=False)
            )
        groups.append({"route": node.key, "group": picked})
    if not groups:
        audit(conn, alert_id, now_ms, "unrouted", detail={"routes": [n.key for n in nodes]})
        return
    audit(conn, alert_id, now_ms, "grouped", detail={"groups": groups})
    chain = next((n.opts.escalate for n in nodes if n.opts.escalate), None)
    if chain and chain in ctx.cluster.escalation_by_name:
        first = ctx.cluster.escalation_by_name[chain].steps[0]
        conn.execute(
            update(t.alerts)
            .where(A.id == alert_id)
            .values(
                escalation=chain,
                esc_step=0,
                esc_base_ms=now_ms,
                esc_due_ms=now_ms + int(first.after.total_seconds() * 1000),
            )
        )


def _resolve(conn: Connection, ctx: Context, tr: Transition, now_ms: int) -> int:
    labels = {**tr.labels, "rule": tr.rule, "severity": str(tr.severity)}
    row = conn.execute(
        select(t.alerts).where(A.fingerprint == fingerprint(tr.rule, labels))
    ).first()
    if row is None or row.state != "firing" or _stale(row, tr):
        return 0
    changed = conn.execute(
        update(t.alerts)
        .where(A.id == row.id, A.state == "firing", A.fired_count == row.fired_count, _newer(tr))
        .values(
            state="resolved",
            ends_ms=tr.at_ms,
            updated_ms=now_ms,
            value=_number(tr.value),
            esc_due_ms=None,
            ack_rearm_ms=None,
            last_at_ms=tr.at_ms,
        )
    )
    if changed.rowcount != 1:
        return 0  # another worker resolved it first
    audit(conn, row.id, now_ms, "resolved", detail={"value": _number(tr.value)})
    alert = _load(conn, row.id)
    recipients = list(alert.recipients)
    if not recipients:  # never told (group_wait, silenced, inhibited): tell the routes' people
        stored = json.loads(row.labels)
        for node in match_routes(ctx.tree, stored):
            if node.opts.notify and not _muted(ctx, node, now_ms):
                recipients += [
                    c
                    for c in expand(ctx.cluster, node.opts.notify, stored, now_ms)
                    if c not in recipients
                ]
    for contact in recipients:
        enqueue(
            conn,
            ctx,
            kind="resolved",
            contact_id=contact,
            alerts=[alert],
            now_ms=now_ms,
            idem_key=f"resolved:{alert.id}:{alert.fired_count}:{contact}",
        )
    if recipients:
        audit(conn, row.id, now_ms, "notified", detail={"kind": "resolved", "contacts": recipients})
    conn.execute(delete(t.group_members).where(t.group_members.c.alert_id == row.id))
    _end_silences_on_recovery(conn, alert, now_ms)
    return 1


def _end_silences_on_recovery(conn: Connection, alert: AlertRecord, now_ms: int) -> None:
    s = t.silences.c
    rows = conn.execute(
        select(t.silences).where(
            s.end_on_resolve.is_(True),
            s.expired_ms.is_(None),
            s.starts_ms <= now_ms,
            s.ends_ms > now_ms,
        )
    ).all()
    for silence in map(Silence.from_row, rows):
        if not silence.matches(alert.labels):
            continue
        still = [a for a in _firing(conn) if silence.matches(a.labels)]
        if not still:
            conn.execute(
                update(t.silences)
                .where(s.id == silence.id)
                .values(expired_ms=now_ms, expired_by="recovery")
            )


def _firing(conn: Connection) -> list[AlertRecord]:
    return [
        AlertRecord.from_row(r)
        for r in conn.execute(select(t.alerts).where(A.state == "firing")).all()
    ]


# -- timers ---------------------------------------------------------------------------------
def next_due(conn: Connection) -> int | None:
    candidates = [
        conn.execute(
            select(t.groups.c.next_flush_ms).order_by(t.groups.c.next_flush_ms).limit(1)
        ).scalar(),
        conn.execute(
            select(A.esc_due_ms).where(A.esc_due_ms.is_not(None)).order_by(A.esc_due_ms).limit(1)
        ).scalar(),
        conn.execute(
            select(A.ack_rearm_ms)
            .where(A.ack_rearm_ms.is_not(None))
            .order_by(A.ack_rearm_ms)
            .limit(1)
        ).scalar(),
    ]
    found = [c for c in candidates if c is not None]
    return min(found) if found else None


class _Suppression:
    """Silences and inhibition evaluated once per run, recorded on change."""

    def __init__(self, conn: Connection, ctx: Context, now_ms: int) -> None:
        rows = conn.execute(select(t.silences).where(t.silences.c.expired_ms.is_(None))).all()
        self.silences = [s for s in map(Silence.from_row, rows) if s.active(now_ms)]
        # only what inhibition needs (fingerprint, labels), not whole records: this runs
        # before every notification, over every firing alert
        firing = conn.execute(select(A.fingerprint, A.labels).where(A.state == "firing")).all()
        self.inhibitor = Inhibitor(ctx.inhibit_rules, [(fp, json.loads(lb)) for fp, lb in firing])
        self.conn, self.now_ms = conn, now_ms

    def check(self, alert: AlertRecord) -> bool:
        """True if the alert may be notified now."""
        silence = next((s for s in self.silences if s.matches(alert.labels)), None)
        inhibited = silence is None and self.inhibitor.inhibited(alert.fingerprint, alert.labels)
        silenced_by = silence.id if silence else None
        if silenced_by != alert.silenced_by or inhibited != alert.inhibited:
            self.conn.execute(
                update(t.alerts)
                .where(A.id == alert.id)
                .values(silenced_by=silenced_by, inhibited=inhibited)
            )
            if silence is not None:
                audit(
                    self.conn,
                    alert.id,
                    self.now_ms,
                    "silenced",
                    actor=silence.author,
                    detail={"silence": silence.id, "reason": silence.reason},
                )
            elif inhibited:
                audit(self.conn, alert.id, self.now_ms, "inhibited")
        return silence is None and not inhibited


def run_due(
    conn: Connection, ctx: Context, now_ms: int, limit: int = 500, *, term: int | None = None
) -> int:
    """Flush due groups, climb due escalations, lapse due acks. Returns work done.

    `term`: the leader term this worker holds (None: a single worker on SQLite); a newer
    term in the database raises `NotLeader` before anything is touched."""
    check_term(conn, term)
    done = 0
    suppression: _Suppression | None = None

    def sup() -> _Suppression:
        nonlocal suppression
        if suppression is None:
            suppression = _Suppression(conn, ctx, now_ms)
        return suppression

    routes = _route_by_key(ctx)
    groups = conn.execute(
        select(t.groups)
        .where(t.groups.c.next_flush_ms <= now_ms)
        .order_by(t.groups.c.next_flush_ms)
        .limit(limit)
    ).all()
    for group in groups:
        _flush(conn, ctx, group, routes.get(group.route_key), sup(), now_ms)
        done += 1
    for row in conn.execute(select(t.alerts).where(A.ack_rearm_ms <= now_ms).limit(limit)).all():
        _lapse_ack(conn, ctx, AlertRecord.from_row(row), row.ack_rearm_ms, now_ms)
        done += 1
    for row in conn.execute(select(t.alerts).where(A.esc_due_ms <= now_ms).limit(limit)).all():
        escalate(conn, ctx, AlertRecord.from_row(row), now_ms, sup())
        done += 1
    return done


def _flush(
    conn: Connection,
    ctx: Context,
    group: object,
    node: RouteNode | None,
    sup: _Suppression,
    now_ms: int,
) -> None:
    g = group._mapping  # type: ignore[attr-defined]
    members = conn.execute(
        select(t.alerts, t.group_members.c.notified.label("member_notified"))
        .join(t.group_members, t.group_members.c.alert_id == A.id)
        .where(t.group_members.c.group_id == g["id"], A.state == "firing")
        .order_by(A.starts_ms, A.id)
    ).all()
    if node is None or not members:
        conn.execute(delete(t.group_members).where(t.group_members.c.group_id == g["id"]))
        conn.execute(delete(t.groups).where(t.groups.c.id == g["id"]))
        return
    moved = conn.execute(
        update(t.groups)
        .where(t.groups.c.id == g["id"], t.groups.c.next_flush_ms == g["next_flush_ms"])
        .values(next_flush_ms=now_ms + node.opts.group_interval_ms)
    )
    if moved.rowcount != 1:
        return  # flushed meanwhile by another run: never twice
    if _muted(ctx, node, now_ms):
        return
    active = []
    for m in members:
        alert = AlertRecord.from_row(m)
        if alert.acked_ms is None and sup.check(alert):
            active.append((alert, bool(m.member_notified)))
    new = [a for a, notified in active if not notified]
    last = g["last_notified_ms"]
    repeat = bool(active) and last is not None and now_ms - last >= node.opts.repeat_interval_ms
    if not new and not repeat:
        return
    kind = "firing" if new else "repeat"
    alerts = new + [a for a, notified in active if notified]
    contacts = expand(ctx.cluster, node.opts.notify, alerts[0].labels, now_ms)
    for contact in contacts:
        enqueue(
            conn,
            ctx,
            kind=kind,
            contact_id=contact,
            alerts=alerts,
            now_ms=now_ms,
            idem_key=f"group:{g['id']}:{now_ms}:{contact}",
        )
    changes = [
        {
            "b_id": a.id,
            "b_recipients": json.dumps(
                list(a.recipients) + [c for c in contacts if c not in a.recipients]
            ),
        }
        for a in alerts
    ]
    conn.execute(
        update(t.alerts)
        .where(A.id == bindparam("b_id"))
        .values(notified=True, recipients=bindparam("b_recipients")),
        changes,
    )
    detail = {"kind": kind, "contacts": contacts, "route": node.key}
    conn.execute(insert(t.audit), [_audit_row(a.id, now_ms, "notified", detail) for a in alerts])
    conn.execute(
        update(t.group_members)
        .where(
            t.group_members.c.group_id == g["id"],
            t.group_members.c.alert_id.in_([a.id for a in alerts]),
        )
        .values(notified=True)
    )
    conn.execute(update(t.groups).where(t.groups.c.id == g["id"]).values(last_notified_ms=now_ms))


def escalate(
    conn: Connection,
    ctx: Context,
    alert: AlertRecord,
    now_ms: int,
    sup: _Suppression | None = None,
) -> bool:
    """Fire the alert's next escalation step, as read in `alert`. Fenced: the step moves
    only `WHERE esc_step = alert.escalation_step` (and the alert still firing, unacked),
    so a stale reader — an ex-leader waking up, a second run — changes, audits and
    notifies nothing. Returns True if this call fired the step."""
    chain = ctx.cluster.escalation_by_name.get(alert.escalation or "")
    row = conn.execute(select(A.esc_base_ms).where(A.id == alert.id)).one()
    same_step = (A.id == alert.id, A.esc_step == alert.escalation_step)
    if (
        chain is None
        or alert.state != "firing"
        or alert.acked_ms is not None
        or alert.escalation_step >= len(chain.steps)
    ):
        conn.execute(update(t.alerts).where(*same_step).values(esc_due_ms=None))
        return False
    sup = sup or _Suppression(conn, ctx, now_ms)
    if not sup.check(alert):
        conn.execute(update(t.alerts).where(*same_step).values(esc_due_ms=now_ms + 60_000))
        return False
    step = chain.steps[alert.escalation_step]
    contacts = expand(ctx.cluster, step.notify, alert.labels, now_ms)
    nxt = alert.escalation_step + 1
    due = (
        row.esc_base_ms + int(chain.steps[nxt].after.total_seconds() * 1000)
        if nxt < len(chain.steps)
        else None
    )
    merged = list(alert.recipients) + [c for c in contacts if c not in alert.recipients]
    moved = conn.execute(
        update(t.alerts)
        .where(*same_step, A.state == "firing", A.acked_ms.is_(None), A.esc_due_ms <= now_ms)
        .values(esc_step=nxt, esc_due_ms=due, recipients=json.dumps(merged), notified=True)
    )
    if moved.rowcount != 1:
        return False  # fired (or acked, resolved) meanwhile: this reader is stale
    for contact in contacts:
        enqueue(
            conn,
            ctx,
            kind="escalation",
            contact_id=contact,
            alerts=[alert],
            now_ms=now_ms,
            idem_key=f"escalation:{alert.id}:{alert.fired_count}:{row.esc_base_ms}:"
            f"{alert.escalation_step}:{contact}",
        )
    audit(
        conn,
        alert.id,
        now_ms,
        "escalated",
        detail={"escalation": chain.name, "step": alert.escalation_step + 1, "contacts": contacts},
    )
    return True


def _lapse_ack(
    conn: Connection, ctx: Context, alert: AlertRecord, rearm_ms: int, now_ms: int
) -> None:
    values: dict[str, object] = {"ack_rearm_ms": None}
    lapses = alert.state == "firing" and alert.acked_ms is not None
    if lapses:
        chain = ctx.cluster.escalation_by_name.get(alert.escalation or "")
        values |= {"acked_by": None, "acked_ms": None, "ack_comment": None, "ack_channel": None}
        if chain is not None:
            values |= {
                "esc_step": 0,
                "esc_base_ms": now_ms,
                "esc_due_ms": now_ms + int(chain.steps[0].after.total_seconds() * 1000),
            }
    moved = conn.execute(
        update(t.alerts).where(A.id == alert.id, A.ack_rearm_ms == rearm_ms).values(**values)
    )
    if lapses and moved.rowcount == 1:
        audit(conn, alert.id, now_ms, "ack_expired", detail={"acked_by": alert.acked_by})
