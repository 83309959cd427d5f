"""The alert database: an engine (SQLite in WAL mode, or PostgreSQL), its migrations, and
one way to run work on it from asyncio.

All work is a plain function `fn(conn, *args)` run inside one transaction on a worker
thread (`await db.run(fn, …)`), so the event loop never blocks on I/O and a transaction is
never split across awaits. SQLite gets a single writer thread (it serialises writers
anyway); PostgreSQL a small pool, with outbox claims using `FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Insert, Table, create_engine, event, make_url
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ecocluster.core.errors import FatalError, TransientError

__all__ = [
    "AlertDatabase",
    "AlertStoreError",
    "AlertStoreUnavailable",
    "insert_ignore",
    "safe_url",
]

_log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"
#: SQLSTATEs after which the whole transaction function is simply run again: two workers
#: touched the same rows in opposite orders (deadlock) or a serialisation conflict.
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})
_RETRIES = 3


class AlertStoreError(FatalError):
    """The alert database refused the work for good (schema, constraint, bad URL)."""


class AlertStoreUnavailable(TransientError):
    """The alert database is away (locked, connection refused): retry later."""


def safe_url(url: str) -> str:
    """The URL with its password hidden: the only form that may be logged or printed."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<invalid database URL>"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite opens transactions lazily, before the first write: a read-then-write
    # (an outbox claim) would see rows another process is claiming. We begin ourselves,
    # IMMEDIATE, so every transaction holds the write lock from its first statement.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process crash
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class AlertDatabase:
    """Usage: `db = AlertDatabase.open(url); await db.run(fn, arg)`; `db.close()`."""

    def __init__(self, engine: Engine, *, workers: int) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="alerts-db")

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> AlertDatabase:
        try:
            parsed = make_url(url)
        except Exception:
            raise AlertStoreError(f"alert database: invalid URL {safe_url(url)}") from None
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
            workers = 1
        else:
            # a worker paused inside a transaction must not hold its row locks (and the
            # leader term a new leader bumps) for ever
            engine = create_engine(
                parsed,
                pool_pre_ping=True,
                pool_size=5,
                max_overflow=5,
                connect_args={"options": "-c idle_in_transaction_session_timeout=60000"},
            )
            workers = 4
        db = cls(engine, workers=workers)
        if migrate:
            db.migrate()
        return db

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic), inside one transaction."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except DBAPIError as exc:
            raise _mapped(exc, "migrating") from exc

    def run_sync(self, fn: Callable[Concatenate[Connection, P], T], *a: P.args, **k: P.kwargs) -> T:
        for attempt in range(_RETRIES + 1):
            try:
                with self.engine.begin() as conn:
                    return fn(conn, *a, **k)
            except SQLAlchemyError as exc:
                if attempt < _RETRIES and _sqlstate(exc) in _RETRY_SQLSTATES:
                    _log.info("alert database: %s; running it again", _first_line(exc))
                    continue
                raise _mapped(exc, getattr(fn, "__name__", "query")) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def run(
        self, fn: Callable[Concatenate[Connection, P], T], *a: P.args, **k: P.kwargs
    ) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: self.run_sync(fn, *a, **k))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.engine.dispose()


def insert_ignore(conn: Connection, table: Table) -> Insert:
    """`INSERT … ON CONFLICT DO NOTHING` in the connection's dialect: the row a concurrent
    worker inserted first wins, and ours is silently dropped (RETURNING tells which)."""
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    return make(table).on_conflict_do_nothing()


def _sqlstate(exc: SQLAlchemyError) -> str | None:
    return getattr(getattr(exc, "orig", None), "sqlstate", None)


def _first_line(exc: SQLAlchemyError) -> str:
    text = str(getattr(exc, "orig", exc))
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _mapped(exc: SQLAlchemyError, what: str) -> Exception:
    text = _first_line(exc)
    transient = isinstance(exc, DBAPIError) and (
        _sqlstate(exc) in _RETRY_SQLSTATES
        or exc.connection_invalidated
        or "locked" in text
        or "could not connect" in text
        or "connection" in text.lower()
    )
    cls = AlertStoreUnavailable if transient else AlertStoreError
    return cls(f"alert database ({what}): {text}")
