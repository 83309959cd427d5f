"""The alert service: the one object the rest of the node talks to about alerts.

* `on_transitions(seq)` — the `TransitionSink` port: rule transitions in; returns once the
  alert state (and any notification it caused) is committed.
* Reading: `list_alerts(...)`, `get_alert(ref)` (with audit trail and notifications),
  `list_silences()`.
* Acting: `ack(ref, by=…, comment=…, channel=…, contact_id=…)`, `assign(ref, …)`,
  `add_silence(...)`, `expire_silence(id, by=…)`, `test_notify(contact)`.
* Acks from outside: `verify_ack_link(token)` / `ack_by_link(token)` (the API's signed
  link page), `handle_reply(InboundMessage)` for SMS and e-mail replies; the gateway
  payload parsers are in `ecocluster.alerts.replies`.
* Timers and delivery (`process_due`, `dispatch_due`) are driven by `AlertStage`.
  Several workers may share one PostgreSQL: each applies transitions and delivers outbox
  rows; only the holder of the timer lease (`leader`, see `ecocluster.alerts.leader`) runs
  the timers. `status()` says which this worker is; `metrics` are its Prometheus metrics.

A `ref` is an alert id (int) or its short code (str). Errors: `AlertNotFound`,
`AckRefused` (the sender may not ack this alert), `InvalidAckLink`, `SilenceError`.
Nothing returned ever contains an Apprise URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import Connection, func, insert, select, update

from ecocluster.alerts.channels import Outgoing, identities, normalise_phone, prepare, send
from ecocluster.alerts.clock import Clock, as_clock
from ecocluster.alerts.context import Context, audit
from ecocluster.alerts.engine import apply_transitions, next_due, run_due
from ecocluster.alerts.leader import LeaderLease, NotLeader
from ecocluster.alerts.links import AckClaim, AckLinks, InvalidAckLink
from ecocluster.alerts.messages import Renderer
from ecocluster.alerts.metrics import AlertMetrics
from ecocluster.alerts.outbox import Dispatcher
from ecocluster.alerts.records import (
    AckResult,
    AlertDetail,
    AlertRecord,
    AuditEntry,
    NotificationRecord,
    Silence,
)
from ecocluster.alerts.replies import InboundMessage, parse_reply
from ecocluster.alerts.routing import build_tree
from ecocluster.alerts.store import schema as t
from ecocluster.alerts.store.db import AlertDatabase
from ecocluster.alerts.suppress import builtin_rules
from ecocluster.core.alerting import parse_matcher
from ecocluster.core.errors import EcoclusterError
from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.core.transitions import Transition

__all__ = [
    "AckRefused",
    "AlertNotFound",
    "AlertService",
    "ChannelOutcome",
    "InvalidAckLink",
    "ReplyOutcome",
    "SilenceError",
    "default_db_url",
]

_log = logging.getLogger(__name__)
A = t.alerts.c
_TERRITORY_ROLES = {"cluster_coordinator"}


class AlertNotFound(EcoclusterError):
    """No alert with that id or code."""


class AckRefused(EcoclusterError):
    """The sender is unknown or may not acknowledge that alert (out of their scope)."""


class SilenceError(EcoclusterError):
    """A silence request is invalid (no reason, no matchers, end before start…)."""


@dataclass(frozen=True, slots=True)
class ChannelOutcome:
    channel: int
    scheme: str
    ok: bool
    error: str | None


@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    ok: bool
    message: str
    alert: AlertRecord | None = None


def default_db_url(settings: Settings) -> str:
    if settings.alert_db_url is not None:
        return settings.alert_db_url.get_secret_value()
    return f"sqlite:///{Path(settings.data_dir).resolve() / 'alerts.sqlite'}"


class AlertService:
    """Usage: `svc = AlertService(cluster, settings); await svc.start(); …; await svc.close()`."""

    def __init__(
        self,
        cluster: Cluster,
        settings: Settings,
        *,
        clock: Clock | Callable[[], int] | None = None,
        db_url: str | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.cluster = cluster
        self.settings = settings
        self.clock = as_clock(clock)
        self.db_url = db_url or default_db_url(settings)
        self.db: AlertDatabase | None = None
        self.ctx: Context | None = None
        self.dispatcher: Dispatcher | None = None
        self.leader: LeaderLease | None = None
        self.metrics = AlertMetrics(registry)
        #: This worker in leases and logs: its configured name (or host) and process.
        self.owner = f"{settings.alert_worker_id or socket.gethostname()}:{os.getpid()}"
        #: Set whenever new work may be due (a transition, an ack): the stage wakes on it.
        self.wakeup = asyncio.Event()
        self._identity = self._index_identities()

    # -- life -----------------------------------------------------------------------------
    async def start(self) -> None:
        db: AlertDatabase = await asyncio.to_thread(AlertDatabase.open, self.db_url)
        self.db = db
        secret = await db.run(self._link_secret)
        renderer = Renderer(self.settings.alert_templates_dir)
        links = AckLinks(
            secret, self.settings.public_base_url, int(self.settings.alert_link_ttl_s * 1000)
        )
        rules = [*builtin_rules(self.cluster), *self.cluster.inhibit_rules]
        self.ctx = Context(
            self.cluster, self.settings, build_tree(self.cluster.routes), rules, renderer, links
        )
        self.dispatcher = Dispatcher(
            db, self.ctx, owner=self.owner, metrics=self.metrics, clock=self.clock
        )
        if db.is_sqlite:
            reclaimed = await db.run(self.dispatcher.reclaim_all)
            if reclaimed:
                _log.warning("resuming %d notifications interrupted by a crash", reclaimed)
        urls = [u.get_secret_value() for c in self.cluster.contacts for u in c.notify]
        await asyncio.to_thread(prepare, urls)
        self.leader = LeaderLease(
            db, self.owner, timeout_s=self.settings.alert_leader_timeout_s, metrics=self.metrics
        )
        await self.leader.refresh()

    async def close(self) -> None:
        if self.leader is not None:
            await self.leader.release()
            self.leader = None
        if self.dispatcher is not None:
            self.dispatcher.close()
        if self.db is not None:
            await asyncio.to_thread(self.db.close)
            self.db = None

    def _link_secret(self, conn: Connection) -> bytes:
        if self.settings.alert_link_secret is not None:
            return self.settings.alert_link_secret.get_secret_value().encode()
        row = conn.execute(select(t.meta.c.value).where(t.meta.c.key == "link_secret")).first()
        if row is not None:
            return bytes.fromhex(row[0])
        value = secrets.token_bytes(32)
        conn.execute(insert(t.meta).values(key="link_secret", value=value.hex()))
        return value

    def _require(self) -> tuple[AlertDatabase, Context]:
        if self.db is None or self.ctx is None:
            raise RuntimeError("AlertService is not started (await service.start())")
        return self.db, self.ctx

    # -- TransitionSink --------------------------------------------------------------------
    async def on_transitions(self, transitions: Sequence[Transition]) -> None:
        db, ctx = self._require()
        relevant = [tr for tr in transitions if tr.state in ("firing", "resolved")]
        if not relevant:
            return
        changed = await db.run(apply_transitions, ctx, relevant, self.clock.now_ms())
        if changed:
            self.wakeup.set()

    # -- timers and delivery (driven by AlertStage) ----------------------------------------
    def status(self) -> dict[str, object]:
        """This worker and whether it runs the timers (health output; never a secret)."""
        if self.leader is None:
            return {"worker": self.owner, "leader": False, "term": None}
        return self.leader.status()

    async def refresh_leadership(self) -> bool:
        """Take, keep or lose the timer lease (the stage calls it every poll interval)."""
        self._require()
        assert self.leader is not None
        was = self.leader.leads
        leads = await self.leader.refresh()
        if leads and not was:
            self.wakeup.set()  # timers may be overdue: the old leader died with them
        return leads

    async def process_due(self) -> int:
        """Run the due timers, on the leader only; a follower returns 0."""
        db, ctx = self._require()
        lease = self.leader
        if lease is None or not lease.leads:
            return 0
        try:
            done = await db.run(run_due, ctx, self.clock.now_ms(), term=lease.term)
        except NotLeader as exc:
            lease.lost(f"fenced: {exc}")
            return 0
        if done:
            self.wakeup.set()
        return done

    async def dispatch_due(self) -> int:
        self._require()
        assert self.dispatcher is not None
        return await self.dispatcher.dispatch_due(self.clock.now_ms())

    async def next_due_ms(self) -> int | None:
        db, _ = self._require()
        dispatcher = self.dispatcher
        assert dispatcher is not None

        leads = self.leader is not None and self.leader.leads

        def both(conn: Connection) -> int | None:
            timers = next_due(conn) if leads else None  # a follower's are the leader's job
            found = [d for d in (timers, dispatcher._next_due(conn)) if d is not None]
            return min(found) if found else None

        return await db.run(both)

    async def settle(self, rounds: int = 20) -> None:
        """Run every timer and delivery due at the clock's now until nothing is left
        (tests with a `ManualClock`, and the CLI's one-shot commands)."""
        for _ in range(rounds):
            if not (await self.process_due() + await self.dispatch_due()):
                return

    # -- reading ---------------------------------------------------------------------------
    async def list_alerts(
        self,
        *,
        state: str | None = None,
        severity: str | None = None,
        org: str | None = None,
        site: str | None = None,
        rule: str | None = None,
        acknowledged: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AlertRecord]:
        db, _ = self._require()

        def query(conn: Connection) -> list[AlertRecord]:
            q = select(t.alerts)
            if state:
                q = q.where(A.state == state)
            if severity:
                q = q.where(A.severity == severity)
            if rule:
                q = q.where(A.rule == rule)
            if acknowledged is not None:
                q = q.where(A.acked_ms.is_not(None) if acknowledged else A.acked_ms.is_(None))
            rows = [
                AlertRecord.from_row(r)
                for r in conn.execute(q.order_by(A.updated_ms.desc(), A.id.desc())).all()
            ]
            if org:
                rows = [r for r in rows if r.labels.get("org") == org]
            if site:
                rows = [r for r in rows if r.labels.get("site") == site]
            return rows[offset : offset + limit]

        return await db.run(query)

    async def get_alert(self, ref: int | str) -> AlertDetail:
        db, _ = self._require()

        def query(conn: Connection) -> AlertDetail:
            alert = _find(conn, ref)
            audit_rows = conn.execute(
                select(t.audit).where(t.audit.c.alert_id == alert.id).order_by(t.audit.c.id)
            ).all()
            entries = tuple(
                AuditEntry(r.at_ms, r.event, r.actor, r.channel, json.loads(r.detail or "{}"))
                for r in audit_rows
            )
            o = t.outbox.c
            like = f"%{alert.id}%"
            rows = conn.execute(select(t.outbox).where(o.alert_ids.like(like)).order_by(o.id)).all()
            notes = tuple(
                NotificationRecord(
                    r.id,
                    r.kind,
                    r.contact_id,
                    r.channel,
                    r.status,
                    r.total_attempts,
                    r.created_ms,
                    r.sent_ms,
                    r.last_error,
                )
                for r in rows
                if alert.id in json.loads(r.alert_ids)
            )
            return AlertDetail(alert, entries, notes)

        return await db.run(query)

    # -- acting ----------------------------------------------------------------------------
    async def ack(
        self,
        ref: int | str,
        *,
        by: str,
        comment: str | None = None,
        channel: str = "api",
        contact_id: str | None = None,
    ) -> AckResult:
        """Acknowledge: stops escalation and repeats. Idempotent. With `contact_id`, the
        contact must be in scope (told of the alert, same organisation, or a territory-wide
        role); the API passes none after its own role check."""
        db, ctx = self._require()
        result = await db.run(
            self._ack, ctx, ref, by, comment, channel, contact_id, self.clock.now_ms()
        )
        if isinstance(result, str):
            raise AckRefused(result)
        self.wakeup.set()
        return result

    def _ack(
        self,
        conn: Connection,
        ctx: Context,
        ref: int | str,
        by: str,
        comment: str | None,
        channel: str,
        contact_id: str | None,
        now_ms: int,
    ) -> AckResult | str:
        alert = _find(conn, ref)
        if contact_id is not None and not self._in_scope(contact_id, alert):
            audit(
                conn,
                alert.id,
                now_ms,
                "ack_refused",
                actor=by,
                channel=channel,
                detail={"contact": contact_id},
            )
            # returned, not raised: raising would roll the audit of the refusal back
            return f"{by} may not acknowledge alert {alert.code} (out of scope)"
        if alert.acked_ms is not None:
            return AckResult(alert, changed=False)
        chain = ctx.cluster.escalation_by_name.get(alert.escalation or "")
        rearm = None
        if chain is not None and chain.ack_timeout is not None and alert.state == "firing":
            rearm = now_ms + int(chain.ack_timeout.total_seconds() * 1000)
        conn.execute(
            update(t.alerts)
            .where(A.id == alert.id)
            .values(
                acked_by=by,
                acked_ms=now_ms,
                ack_comment=comment,
                ack_channel=channel,
                esc_due_ms=None,
                ack_rearm_ms=rearm,
                updated_ms=now_ms,
            )
        )
        audit(
            conn, alert.id, now_ms, "acked", actor=by, channel=channel, detail={"comment": comment}
        )
        return AckResult(_find(conn, alert.id), changed=True)

    def _in_scope(self, contact_id: str, alert: AlertRecord) -> bool:
        contact = self.cluster.contact_by_id.get(contact_id)
        if contact is None:
            return False
        return (
            contact_id in alert.recipients
            or contact.org == alert.labels.get("org")
            or bool(_TERRITORY_ROLES & set(contact.roles))
        )

    async def assign(self, ref: int | str, *, assignee: str | None, by: str) -> AlertRecord:
        db, _ = self._require()
        now_ms = self.clock.now_ms()

        def change(conn: Connection) -> AlertRecord:
            alert = _find(conn, ref)
            conn.execute(
                update(t.alerts)
                .where(A.id == alert.id)
                .values(assignee=assignee, updated_ms=now_ms)
            )
            audit(conn, alert.id, now_ms, "assigned", actor=by, detail={"assignee": assignee})
            return _find(conn, alert.id)

        return await db.run(change)

    async def add_silence(
        self,
        matchers: Sequence[str],
        *,
        author: str,
        reason: str,
        duration: timedelta | None = None,
        starts_ms: int | None = None,
        ends_ms: int | None = None,
        end_on_resolve: bool = False,
    ) -> Silence:
        """A silence (or maintenance window): matchers are Alertmanager strings; a reason
        is mandatory; `end_on_resolve` ends it once every alert it matches has recovered."""
        db, _ = self._require()
        now_ms = self.clock.now_ms()
        if not reason or not reason.strip():
            raise SilenceError("a silence needs a reason")
        if not matchers:
            raise SilenceError("a silence needs at least one matcher")
        try:
            for text in matchers:
                parse_matcher(text)
        except ValueError as exc:
            raise SilenceError(str(exc)) from None
        start = starts_ms if starts_ms is not None else now_ms
        end = (
            ends_ms
            if ends_ms is not None
            else start + int((duration or timedelta(hours=2)).total_seconds() * 1000)
        )
        if end <= start:
            raise SilenceError("a silence must end after it starts")
        silence_id = str(uuid.uuid4())

        def write(conn: Connection) -> Silence:
            conn.execute(
                insert(t.silences).values(
                    id=silence_id,
                    matchers=json.dumps(list(matchers)),
                    starts_ms=start,
                    ends_ms=end,
                    author=author,
                    reason=reason.strip(),
                    end_on_resolve=end_on_resolve,
                    created_ms=now_ms,
                )
            )
            return Silence.from_row(
                conn.execute(select(t.silences).where(t.silences.c.id == silence_id)).one()
            )

        return await db.run(write)

    async def list_silences(self, *, active_only: bool = False) -> list[Silence]:
        db, _ = self._require()
        now_ms = self.clock.now_ms()

        def query(conn: Connection) -> list[Silence]:
            rows = conn.execute(select(t.silences).order_by(t.silences.c.created_ms)).all()
            found = [Silence.from_row(r) for r in rows]
            return [s for s in found if s.active(now_ms)] if active_only else found

        return await db.run(query)

    async def expire_silence(self, silence_id: str, *, by: str) -> Silence:
        db, _ = self._require()
        now_ms = self.clock.now_ms()

        def change(conn: Connection) -> Silence:
            s = t.silences.c
            row = conn.execute(select(t.silences).where(s.id == silence_id)).first()
            if row is None:
                raise SilenceError(f"no silence {silence_id!r}")
            if row.expired_ms is None:
                conn.execute(
                    update(t.silences)
                    .where(s.id == silence_id)
                    .values(expired_ms=now_ms, expired_by=by)
                )
            return Silence.from_row(
                conn.execute(select(t.silences).where(s.id == silence_id)).one()
            )

        result = await db.run(change)
        self.wakeup.set()
        return result

    # -- acks from outside -----------------------------------------------------------------
    def verify_ack_link(self, token: str) -> AckClaim:
        """The claim of a signed ack link, or `InvalidAckLink` (malformed, forged, expired)."""
        _, ctx = self._require()
        return ctx.links.verify(token, self.clock.now_ms())

    async def ack_by_link(self, token: str, *, comment: str | None = None) -> AckResult:
        claim = self.verify_ack_link(token)
        contact = self.cluster.contact_by_id.get(claim.contact_id)
        by = contact.id if contact else claim.contact_id
        return await self.ack(
            claim.alert_id, by=by, comment=comment, channel="link", contact_id=claim.contact_id
        )

    def contact_for(self, channel: str, sender: str) -> str | None:
        key = normalise_phone(sender) if channel == "sms" else sender.strip().lower()
        return self._identity.get((channel, key))

    async def handle_reply(self, message: InboundMessage) -> ReplyOutcome:
        """An SMS or e-mail reply: find the contact by number or address, parse the command,
        ack in their scope. Never raises for a bad reply: the outcome says what happened."""
        contact_id = self.contact_for(message.channel, message.sender)
        if contact_id is None:
            _log.warning("reply over %s from an unknown sender ignored", message.gateway)
            return ReplyOutcome(False, "unknown sender")
        reply = parse_reply(message.text)
        if reply is None:
            return ReplyOutcome(False, "no command found (expected e.g. 'ACK 4821')")
        comment = reply.comment or ("reported resolved" if reply.verb == "resolved" else None)
        try:
            result = await self.ack(
                reply.code,
                by=contact_id,
                comment=comment,
                channel=message.channel,
                contact_id=contact_id,
            )
        except AlertNotFound:
            return ReplyOutcome(False, f"no alert with code {reply.code}")
        except AckRefused as exc:
            return ReplyOutcome(False, str(exc))
        return ReplyOutcome(
            True, "acknowledged" if result.changed else "already acknowledged", result.alert
        )

    def _index_identities(self) -> dict[tuple[str, str], str]:
        index: dict[tuple[str, str], str] = {}
        for contact in self.cluster.contacts:
            phones = {normalise_phone(p) for p in contact.phones}
            emails = {e.lower() for e in contact.emails}
            for url in contact.notify:
                found_phones, found_emails = identities(url.get_secret_value())
                phones |= found_phones
                emails |= found_emails
            for phone in phones:
                index.setdefault(("sms", phone), contact.id)
            for email in emails:
                index.setdefault(("email", email), contact.id)
        return index

    # -- test ------------------------------------------------------------------------------
    async def test_notify(self, contact_id: str) -> list[ChannelOutcome]:
        """Send a test message through each of the contact's channels, now, and report the
        outcome per channel (index and scheme; never the URL)."""
        _, ctx = self._require()
        contact = self.cluster.contact_by_id.get(contact_id)
        if contact is None:
            raise AlertNotFound(f"no contact {contact_id!r}")
        text = ctx.renderer.render(
            "test",
            [],
            language=contact.language,
            territory=self.cluster.territory.name,
            contact=contact.name,
        )
        outcomes = []
        for index, url in enumerate(contact.notify):
            secret = url.get_secret_value()
            from ecocluster.alerts.channels import channel_kind, scheme_of

            kind = channel_kind(secret)
            message = (
                Outgoing(text.subject, text.html, "html")
                if kind == "email"
                else Outgoing("", text.sms, "text")
                if kind == "sms"
                else Outgoing(text.subject, text.body, "text")
            )
            result = await asyncio.to_thread(send, secret, message, index=index)
            outcomes.append(ChannelOutcome(index, scheme_of(secret), result.ok, result.error))
        return outcomes


def _find(conn: Connection, ref: int | str) -> AlertRecord:
    if isinstance(ref, int) or (isinstance(ref, str) and ref.startswith("#")):
        key = int(str(ref).lstrip("#"))
        row = conn.execute(select(t.alerts).where(A.id == key)).first()
    else:
        row = conn.execute(select(t.alerts).where(A.code == ref.strip())).first()
    if row is None:
        raise AlertNotFound(f"no alert {ref!r}")
    return AlertRecord.from_row(row)


_ = func  # re-exported for callers building queries on the same tables
