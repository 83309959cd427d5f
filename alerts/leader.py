"""The timer lease: one alert worker at a time runs the due timers (group flushes, repeats,
escalation steps, ack lapses), however many share the alert database.

PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) held on a connection of
its own. It vanishes with that session: a SIGKILLed holder's socket closes and the server
drops the lock at once; a paused or cut-off holder stops heartbeating and the server ends
its session after `alert_leader_timeout_s` (idle_session_timeout, TCP keepalives). Followers
try to take it every `alert_leader_poll_s`.

Fencing: whoever takes the lock bumps `meta.leader_term` and keeps the new value. Every
timer run starts by reading the term `FOR SHARE` and refuses to run unless it is its own
(`NotLeader`), so a paused ex-leader that wakes up after losing the lock cannot fire a
step: the bump waits for its in-flight run, and its later runs see the newer term. (The
escalation, flush and lapse updates are also conditional on the values they read, see
`engine`.) SQLite is one worker: the lease is trivially held.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Connection, select, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ecocluster.alerts.metrics import AlertMetrics
from ecocluster.alerts.store import schema as t
from ecocluster.alerts.store.db import AlertDatabase
from ecocluster.core.errors import EcoclusterError

__all__ = ["LOCK_KEY", "TERM_KEY", "LeaderLease", "NotLeader", "check_term"]

_log = logging.getLogger(__name__)
#: The advisory lock's key (advisory locks are per database: one lease per alert database).
LOCK_KEY = int.from_bytes(hashlib.sha256(b"ecocluster.alerts.timers").digest()[:8], "big") >> 1
TERM_KEY = "leader_term"
_LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout: an ex-leader's run still holds the term
_BUMP = text(
    "INSERT INTO meta (key, value) VALUES (:key, '1') ON CONFLICT (key) DO UPDATE"
    " SET value = CAST(CAST(meta.value AS BIGINT) + 1 AS TEXT) RETURNING value"
)


class NotLeader(EcoclusterError):
    """A timer run refused: a newer leader term exists, this worker no longer leads."""


def check_term(conn: Connection, term: int | None) -> None:
    """Inside a timer run's transaction: go on only while `term` is the leader's. The
    share lock makes a new leader's term bump wait until this transaction ends."""
    if term is None:
        return  # SQLite: a single worker
    query = select(t.meta.c.value).where(t.meta.c.key == TERM_KEY).with_for_update(read=True)
    found = conn.execute(query).scalar()
    if found is None or int(found) != term:
        raise NotLeader(f"timer lease: term {found} is the leader's, this worker holds {term}")


class LeaderLease:
    """Usage: `await lease.refresh()` every `poll_s` (takes, keeps or loses the lease);
    `lease.leads`, `lease.term` (None on SQLite); `await lease.release()` at shutdown."""

    def __init__(
        self, db: AlertDatabase, owner: str, *, timeout_s: float, metrics: AlertMetrics
    ) -> None:
        self.db = db
        self.owner = owner
        self.timeout_s = timeout_s
        self.metrics = metrics
        self.term: int | None = None
        self._conn: Connection | None = None
        self._locked = False
        self._announced = False
        self._leads = False
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="alerts-lease")

    @property
    def leads(self) -> bool:
        return self._leads

    def status(self) -> dict[str, object]:
        """For health output and logs: never a secret."""
        return {"worker": self.owner, "leader": self.leads, "term": self.term}

    async def refresh(self) -> bool:
        """Take the lease if free, check it is still held if ours; returns `leads`."""
        if self.db.is_sqlite:
            self._change(True, "single worker on SQLite")
            return True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._pool, self._refresh_sync)
        except SQLAlchemyError as exc:
            await loop.run_in_executor(self._pool, self._drop)
            self._change(False, f"lease connection failed: {_line(exc)}")
            return False
        if self._locked and self.term is not None:
            self._change(True, f"term {self.term}")
        elif not self._announced:
            self._announced = True
            _log.info("alert timers: %s follows (another worker holds the lease)", self.owner)
        return self.leads

    def lost(self, reason: str) -> None:
        """A timer run was fenced (a newer term exists): stop leading at once."""
        self.metrics.fenced.inc()
        self._pool.submit(self._drop)
        self._change(False, reason)

    async def release(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._drop)
        self._change(False, "shutting down")
        self._pool.shutdown(wait=True)

    # -- on the lease thread ------------------------------------------------------------------
    def _refresh_sync(self) -> None:
        conn = self._conn or self._open()
        if not self._locked:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar()
            self._locked = bool(got)
        else:
            conn.execute(text("SELECT 1"))  # heartbeat: keeps idle_session_timeout away
        if self._locked and self.term is None:
            try:
                self.term = int(conn.execute(_BUMP, {"key": TERM_KEY}).scalar_one())
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                    raise
                _log.info("alert timers: %s waits for the old leader's last run", self.owner)

    def _open(self) -> Connection:
        conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        timeout_ms = int(self.timeout_s * 1000)
        keep = max(1, int(self.timeout_s / 3))
        for setting, value in (
            ("idle_session_timeout", f"{timeout_ms}ms"),
            ("tcp_keepalives_idle", str(keep)),
            ("tcp_keepalives_interval", str(max(1, keep // 2))),
            ("tcp_keepalives_count", "3"),
            ("lock_timeout", "2s"),
            ("application_name", f"ecocluster-alerts-lease {self.owner}"[:63]),
        ):
            conn.execute(
                text("SELECT set_config(:name, :value, false)"), {"name": setting, "value": value}
            )
        self._conn = conn
        return conn

    def _drop(self) -> None:
        """Close the lease session for real (never back into the pool: the lock would
        survive in a pooled connection)."""
        conn, self._conn = self._conn, None
        self._locked, self.term = False, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception as exc:  # already broken: nothing left to release
                _log.debug("alert timers: closing the lease session: %s", exc)

    # -- on the loop ---------------------------------------------------------------------------
    def _change(self, leads: bool, reason: str) -> None:
        if leads == self._leads:
            return
        self._leads = leads
        self.metrics.leader.set(1 if leads else 0)
        self.metrics.leader_term.set((self.term or 0) if leads else 0)
        self.metrics.leadership_changes.labels("taken" if leads else "lost").inc()
        if self.db.is_sqlite:
            _log.debug(
                "alert timers: %s %s (%s)", self.owner, "leads" if leads else "stops", reason
            )
        elif leads:
            _log.info("alert timers: %s took the leadership (%s)", self.owner, reason)
        else:
            _log.warning("alert timers: %s lost the leadership (%s)", self.owner, reason)


def _line(exc: BaseException) -> str:
    text_ = str(getattr(exc, "orig", exc)) or type(exc).__name__
    return text_.splitlines()[0][:200]
