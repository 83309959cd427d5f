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
from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ecocluster.core.errors import FatalError, TransientError

__all__ = ["AlertDatabase", "AlertStoreError", "AlertStoreUnavailable", "safe_url"]

_log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"


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
            engine = create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=5)
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
        try:
            with self.engine.begin() as conn:
                return fn(conn, *a, **k)
        except SQLAlchemyError as exc:
            raise _mapped(exc, getattr(fn, "__name__", "query")) from exc

    async def run(
        self, fn: Callable[Concatenate[Connection, P], T], *a: P.args, **k: P.kwargs
    ) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: self.run_sync(fn, *a, **k))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.engine.dispose()


def _mapped(exc: SQLAlchemyError, what: str) -> Exception:
    text = str(getattr(exc, "orig", exc)).splitlines()[0][:200] if str(exc) else type(exc).__name__
    transient = isinstance(exc, DBAPIError) and (
        exc.connection_invalidated
        or "locked" in text
        or "could not connect" in text
        or "connection" in text.lower()
    )
    cls = AlertStoreUnavailable if transient else AlertStoreError
    return cls(f"alert database ({what}): {text}")
