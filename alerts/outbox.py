"""The transactional outbox: notifications are rows written in the same transaction as the
alert state that caused them, then delivered by the dispatcher.

A row is `pending` (due at `next_ms`), `sending` (claimed by `claimed_by` until
`lease_ms`), `sent`, `folded` (storm protection: merged into a summary) or `failed` (given
up). Delivery: claim (→ sending, attempts+1; `FOR UPDATE SKIP LOCKED` on PostgreSQL, so
workers sharing the database never claim the same row) in one transaction, send through
Apprise outside any transaction, record the outcome in another.

Leases, for several workers: a `sending` row may be claimed again only once its lease has
run out. Each send worker sends one row and records it before its next; it starts a send
only while the lease still covers the whole send timeout, and its outcome is recorded only
while the row still carries its claim (owner and lease), so a worker that was too slow
cannot overwrite its successor's. A crash between send and record leaves the row `sending`;
it is sent again when its lease ends (at once on a restart of a single SQLite node): a crash
costs at most one duplicate per notification (those in flight) and loses nothing.

Retries: exponential backoff with full jitter on one channel for `alert_channel_attempts`
attempts, then failover to the contact's next channel; after the last channel, round again
at the maximum backoff until `alert_give_up_s`.
Storm protection: at most `alert_storm_limit` notifications per contact per minute; the
rest are folded into a summary sent at the end of the current 5-second slot.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from ecocluster.alerts.channels import Outgoing, SendResult, channel_kind, scheme_of, send
from ecocluster.alerts.clock import Clock
from ecocluster.alerts.context import Context, audit
from ecocluster.alerts.metrics import AlertMetrics
from ecocluster.alerts.records import AlertRecord
from ecocluster.alerts.store import schema as t
from ecocluster.alerts.store.db import AlertDatabase, insert_ignore
from ecocluster.core.retry import Backoff

__all__ = ["Dispatcher", "enqueue"]

_log = logging.getLogger(__name__)
_WINDOW_MS = 60_000
#: Folded notifications are summarised at the end of 5-second slots: at most 12 summaries
#: a minute per contact, and a storm's backlog is told within seconds, not a minute.
_SUMMARY_DELAY_MS = 5_000
#: A claim's lease beyond the send timeout: room for queueing behind the other sends and
#: for recording the outcome.
_LEASE_MARGIN_MS = 5_000


def enqueue(
    conn: Connection,
    ctx: Context,
    *,
    kind: str,
    contact_id: str,
    alerts: Sequence[AlertRecord],
    now_ms: int,
    idem_key: str,
    count: int | None = None,
) -> int | None:
    """Render and insert one notification; None if this idempotency key exists already."""
    if conn.execute(select(t.outbox.c.id).where(t.outbox.c.idem_key == idem_key)).first():
        return None
    contact = ctx.cluster.contact_by_id[contact_id]
    views = [ctx.view(a, contact_id, now_ms) for a in alerts]
    # the chart only goes into e-mail: drawn only for contacts who have an e-mail channel
    wants_chart = any(channel_kind(u.get_secret_value()) == "email" for u in contact.notify)
    chart = (
        ctx.chart(conn, alerts[0], now_ms) if wants_chart and alerts and kind != "summary" else None
    )
    text = ctx.renderer.render(
        kind,
        views,
        language=contact.language,
        territory=ctx.cluster.territory.name,
        contact=contact.name,
        count=count,
        chart=chart is not None,
    )
    status = "pending" if contact.notify else "failed"
    result = conn.execute(
        insert_ignore(conn, t.outbox)
        .returning(t.outbox.c.id)
        .values(
            idem_key=idem_key,
            kind=kind,
            contact_id=contact_id,
            channel=0,
            alert_ids=json.dumps([a.id for a in alerts]),
            language=contact.language,
            subject=text.subject,
            body=text.body,
            html=text.html,
            sms=text.sms,
            chart=chart,
            status=status,
            attempts=0,
            total_attempts=0,
            next_ms=now_ms,
            created_ms=now_ms,
            last_error=None if contact.notify else "contact has no channels",
        )
    ).first()
    if result is None:
        return None  # the same key committed meanwhile by another worker
    row_id = int(result[0])
    if not contact.notify:
        for a in alerts:
            audit(
                conn,
                a.id,
                now_ms,
                "failed",
                actor=contact_id,
                detail={"notification": row_id, "error": "contact has no channels"},
            )
    return row_id


def _audit_many(
    conn: Connection,
    alert_ids: Sequence[int],
    at_ms: int,
    event: str,
    actor: str | None,
    channel: str | None,
    detail: dict[str, object],
) -> None:
    """One audit event on many alerts (a group notification), in one executemany."""
    if alert_ids:
        text = json.dumps(detail, default=str)
        conn.execute(
            insert(t.audit),
            [
                {
                    "alert_id": i,
                    "at_ms": at_ms,
                    "event": event,
                    "actor": actor,
                    "channel": channel,
                    "detail": text,
                }
                for i in alert_ids
            ],
        )


@dataclass(frozen=True, slots=True)
class _Job:
    id: int
    contact_id: str
    channel: int
    attempts: int
    message: Outgoing
    url_index: int
    #: The claim's lease end: the outcome is recorded only while the row still carries it.
    lease_ms: int


def _message_for(row: object, url: str) -> Outgoing:
    m = row._mapping  # type: ignore[attr-defined]
    kind = channel_kind(url)
    if kind == "email":
        return Outgoing(m["subject"], m["html"] or m["body"], "html", m["chart"])
    if kind == "sms":
        return Outgoing("", m["sms"], "text")
    return Outgoing(m["subject"], m["body"], "text")


class Dispatcher:
    """Delivers due outbox rows. `await dispatch_due(now_ms)` is one round; the stage calls
    it whenever rows are due or new ones are written (`wakeup`)."""

    def __init__(
        self,
        db: AlertDatabase,
        ctx: Context,
        *,
        owner: str = "local",
        metrics: AlertMetrics | None = None,
        clock: Clock | None = None,
        batch: int = 200,
    ) -> None:
        self.db = db
        self.ctx = ctx
        self.owner = owner
        self.metrics = metrics or AlertMetrics()
        self._clock = clock
        self.batch = batch
        s = ctx.settings
        self._sem = asyncio.Semaphore(s.alert_dispatch_workers)
        self._pool_workers = s.alert_dispatch_workers
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(s.alert_dispatch_workers, thread_name_prefix="alerts-send")
        self.sent = 0
        self.failed_attempts = 0

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- one round -------------------------------------------------------------------------
    async def dispatch_due(self, now_ms: int) -> int:
        """Claim due rows and send them concurrently; returns how many were attempted."""
        jobs = await self.db.run(self._claim, now_ms)
        if not jobs:
            return 0
        loop = asyncio.get_running_loop()
        timeout = self.ctx.settings.alert_send_timeout_s

        async def one(job: _Job) -> tuple[_Job, bool, str | None]:
            # A worker sends and records one row before its next send: a crash can then
            # re-send at most the rows in flight, one per worker.
            async with self._sem:
                if self._now_ms(now_ms) + int(timeout * 1000) > job.lease_ms:
                    # the lease would run out mid-send: another worker may claim it then,
                    # so leave it (unsent, not recorded) to whoever claims it next
                    self.metrics.lease_skips.inc()
                    return job, False, None
                return await send_and_record(job)

        async def send_and_record(job: _Job) -> tuple[_Job, bool, str | None]:
            url = self.ctx.cluster.contact_by_id[job.contact_id].notify[job.channel]
            secret = url.get_secret_value()
            try:
                result = await asyncio.wait_for(
                    loop.run_in_executor(
                        self._pool, lambda: send(secret, job.message, index=job.channel)
                    ),
                    timeout,
                )
            except TimeoutError:
                result = SendResult(
                    False, f"channel {job.channel} ({scheme_of(secret)}): timed out"
                )
            outcome = (job, result.ok, result.error)
            # recorded at once, not with the batch: a crash now re-sends this one row only
            await self.db.run(self._record, [outcome], now_ms)
            return outcome

        await asyncio.gather(*(one(j) for j in jobs))
        return len(jobs)

    def _now_ms(self, fallback: int) -> int:
        return self._clock.now_ms() if self._clock is not None else fallback

    async def next_due_ms(self) -> int | None:
        return await self.db.run(self._next_due)

    def _next_due(self, conn: Connection) -> int | None:
        pending = conn.execute(
            select(func.min(t.outbox.c.next_ms)).where(t.outbox.c.status == "pending")
        ).scalar()
        leased = conn.execute(
            select(func.min(t.outbox.c.lease_ms)).where(t.outbox.c.status == "sending")
        ).scalar()
        found = [v for v in (pending, leased) if v is not None]
        return min(found) if found else None

    def reclaim_all(self, conn: Connection) -> int:
        """At the start of a single node: nobody else can be sending, so every `sending` row
        is from a crashed run: make it due now (at most one duplicate each)."""
        return conn.execute(
            update(t.outbox).where(t.outbox.c.status == "sending").values(status="pending")
        ).rowcount

    # -- claim -----------------------------------------------------------------------------
    def _claim(self, conn: Connection, now_ms: int) -> list[_Job]:
        o = t.outbox.c
        due = or_(
            and_(o.status == "pending", o.next_ms <= now_ms),
            and_(o.status == "sending", o.lease_ms <= now_ms),
        )
        query = select(t.outbox).where(due).order_by(o.next_ms, o.id).limit(self.batch)
        if not self.db.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        rows = conn.execute(query).all()
        if not rows:
            return []
        recent: Counter[str] = Counter(
            dict(
                conn.execute(
                    select(o.contact_id, func.count())
                    .where(o.kind != "summary", o.sent_ms >= now_ms - _WINDOW_MS)
                    .where(o.contact_id.in_({r.contact_id for r in rows}))
                    .group_by(o.contact_id)
                ).all()
            )
        )
        limit = self.ctx.settings.alert_storm_limit
        lease = now_ms + int(self.ctx.settings.alert_send_timeout_s * 1000) + _LEASE_MARGIN_MS
        jobs = []
        for row in rows:
            contact = self.ctx.cluster.contact_by_id.get(row.contact_id)
            if contact is None or not contact.notify:
                conn.execute(
                    update(t.outbox)
                    .where(o.id == row.id)
                    .values(
                        status="failed", last_error="contact no longer exists or has no channels"
                    )
                )
                continue
            if row.kind == "summary":
                if not self._fill_summary(conn, row, now_ms):
                    continue
                row = conn.execute(select(t.outbox).where(o.id == row.id)).one()
            elif row.status == "pending" and row.attempts == 0 and row.total_attempts == 0:
                if recent[row.contact_id] >= limit:
                    self._fold(conn, row, now_ms)
                    continue
                recent[row.contact_id] += 1
            channel = min(row.channel, len(contact.notify) - 1)
            conn.execute(
                update(t.outbox)
                .where(o.id == row.id)
                .values(
                    status="sending",
                    lease_ms=lease,
                    claimed_by=self.owner,
                    attempts=row.attempts + 1,
                    total_attempts=row.total_attempts + 1,
                    channel=channel,
                )
            )
            url = contact.notify[channel].get_secret_value()
            jobs.append(
                _Job(
                    row.id,
                    row.contact_id,
                    channel,
                    row.attempts + 1,
                    _message_for(row, url),
                    channel,
                    lease,
                )
            )
        return jobs

    def _fold(self, conn: Connection, row: object, now_ms: int) -> None:
        o = t.outbox.c
        r = row._mapping  # type: ignore[attr-defined]
        conn.execute(update(t.outbox).where(o.id == r["id"]).values(status="folded"))
        slot = now_ms // _SUMMARY_DELAY_MS
        key = f"summary:{r['contact_id']}:{slot}"
        if conn.execute(select(o.id).where(o.idem_key == key)).first() is None:
            contact = self.ctx.cluster.contact_by_id[r["contact_id"]]
            conn.execute(
                insert(t.outbox).values(
                    idem_key=key,
                    kind="summary",
                    contact_id=r["contact_id"],
                    channel=0,
                    alert_ids="[]",
                    language=contact.language,
                    subject="",
                    body="",
                    html=None,
                    sms="",
                    chart=None,
                    status="pending",
                    attempts=0,
                    total_attempts=0,
                    next_ms=(slot + 1) * _SUMMARY_DELAY_MS,
                    created_ms=now_ms,
                )
            )
        _audit_many(
            conn,
            json.loads(r["alert_ids"]),
            now_ms,
            "folded",
            r["contact_id"],
            None,
            {"notification": r["id"], "summary": key},
        )

    def _fill_summary(self, conn: Connection, row: object, now_ms: int) -> bool:
        """Render a summary of every folded row of its contact not yet summarised."""
        o = t.outbox.c
        r = row._mapping  # type: ignore[attr-defined]
        if r["body"]:
            return True  # already rendered (a retry)
        folded = conn.execute(
            select(o.id, o.alert_ids).where(
                o.contact_id == r["contact_id"], o.status == "folded", o.folded_into.is_(None)
            )
        ).all()
        if not folded:
            conn.execute(
                update(t.outbox).where(o.id == r["id"]).values(status="sent", sent_ms=now_ms)
            )
            return False
        ids: list[int] = []
        for _, alert_ids in folded:
            ids.extend(i for i in json.loads(alert_ids) if i not in ids)
        alerts = [
            AlertRecord.from_row(a)
            for a in conn.execute(select(t.alerts).where(t.alerts.c.id.in_(ids))).all()
        ]
        contact = self.ctx.cluster.contact_by_id[r["contact_id"]]
        views = [self.ctx.view(a, contact.id, now_ms) for a in alerts]
        text = self.ctx.renderer.render(
            "summary",
            views,
            language=contact.language,
            territory=self.ctx.cluster.territory.name,
            contact=contact.name,
            count=len(folded),
        )
        conn.execute(
            update(t.outbox)
            .where(o.id == r["id"])
            .values(
                subject=text.subject,
                body=text.body,
                html=text.html,
                sms=text.sms,
                alert_ids=json.dumps(ids),
            )
        )
        conn.execute(
            update(t.outbox).where(o.id.in_([f.id for f in folded])).values(folded_into=r["id"])
        )
        return True

    # -- record ----------------------------------------------------------------------------
    def _record(
        self, conn: Connection, outcomes: list[tuple[_Job, bool, str | None]], now_ms: int
    ) -> None:
        s = self.ctx.settings
        o = t.outbox.c
        for job, ok, error in outcomes:
            query = select(t.outbox).where(o.id == job.id)
            if not self.db.is_sqlite:
                query = query.with_for_update()
            row = conn.execute(query).one()
            if (row.status, row.claimed_by, row.lease_ms) != ("sending", self.owner, job.lease_ms):
                _log.warning(
                    "notification %d: its lease ran out before the outcome was recorded;"
                    " left to the worker that claimed it since",
                    job.id,
                )
                continue
            alert_ids = json.loads(row.alert_ids)
            contact = self.ctx.cluster.contact_by_id[row.contact_id]
            scheme = scheme_of(contact.notify[job.channel].get_secret_value())
            if ok:
                self.sent += 1
                self.metrics.sent.inc()
                conn.execute(
                    update(t.outbox)
                    .where(o.id == job.id)
                    .values(status="sent", sent_ms=now_ms, lease_ms=None, last_error=None)
                )
                detail = {"notification": job.id, "kind": row.kind, "channel": job.channel}
                _audit_many(conn, alert_ids, now_ms, "delivered", row.contact_id, scheme, detail)
                continue
            self.failed_attempts += 1
            values: dict[str, object] = {"lease_ms": None, "last_error": error}
            if job.attempts < s.alert_channel_attempts:
                event, wait = (
                    "retried",
                    int(
                        Backoff(s.alert_retry_base_s, s.alert_retry_max_s).delay(job.attempts - 1)
                        * 1000
                    ),
                )
                values |= {"status": "pending", "next_ms": now_ms + wait}
            elif job.channel + 1 < len(contact.notify):
                event = "failover"
                values |= {
                    "status": "pending",
                    "next_ms": now_ms,
                    "channel": job.channel + 1,
                    "attempts": 0,
                }
            elif now_ms - row.created_ms >= s.alert_give_up_s * 1000:
                event = "failed"
                values |= {"status": "failed"}
            else:
                event = "retried"
                values |= {
                    "status": "pending",
                    "channel": 0,
                    "attempts": 0,
                    "next_ms": now_ms + int(s.alert_retry_max_s * 1000),
                }
            conn.execute(update(t.outbox).where(o.id == job.id).values(**values))
            _log.warning("notification %d to %s: %s (%s)", job.id, row.contact_id, error, event)
            detail = {
                "notification": job.id,
                "error": error,
                "channel": job.channel,
                "attempt": job.attempts,
            }
            _audit_many(conn, alert_ids, now_ms, event, row.contact_id, scheme, detail)
