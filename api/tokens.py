"""Bearer tokens, stored hashed in a small SQLite file in the data directory.

A token is `eco_<id>_<secret>`: `id` (8 hex) names it in listings and revocations, `secret`
is 32 random bytes. Only `sha256(token)` is stored: with 256 bits of entropy a fast hash is
as safe as a slow one (nothing to brute-force), and it keeps each request's check at
microseconds. The file is the API's own, not the alert service's database: tokens are an API
concern, the alert database may be a shared PostgreSQL owned by another process, and the
`token` commands must work on a node where no alert stage runs.

    store = TokenStore(settings.data_dir / "api-tokens.sqlite")
    issued = store.create(role="facility_manager", org="parco", name="Anna Bianchi")
    print(issued.token)               # shown once, never stored or logged
    store.verify(issued.token)        # → Principal, or None when unknown or revoked
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, get_args

from ecocluster.core.types import is_valid_id

__all__ = ["ROLES", "IssuedToken", "Principal", "Role", "TokenInfo", "TokenStore"]

Role = Literal["coordinator", "facility_manager", "emergency_coordinator", "viewer"]
ROLES: Final[tuple[str, ...]] = get_args(Role)
_PREFIX: Final = "eco_"
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, role TEXT NOT NULL, org TEXT,
    name TEXT NOT NULL, contact TEXT, created_ms INTEGER NOT NULL, revoked_ms INTEGER)
"""
#: A positive check is remembered this long: a revocation by another process (the CLI)
#: takes effect within it.
_CACHE_S: Final = 2.0


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's role, organisation (None = the whole territory) and name."""

    token_id: str
    role: Role
    org: str | None
    name: str
    contact: str | None = None

    @property
    def who(self) -> str:
        """How the audit trail names this caller."""
        return self.contact or self.name


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    role: str
    org: str | None
    name: str
    contact: str | None
    created_ms: int
    revoked_ms: int | None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    info: TokenInfo
    #: The bearer token itself: shown once to whoever created it.
    token: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_grant(role: str, org: str | None) -> None:
    """Raise `ValueError` for a role/organisation pair that makes no sense."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
    if org is not None and not is_valid_id(org):
        raise ValueError(f"invalid organisation id {org!r}")
    if role == "facility_manager" and org is None:
        raise ValueError("a facility_manager token needs --org (the organisation it manages)")
    if role in ("coordinator", "viewer") and org is not None:
        raise ValueError(f"a {role} token covers the whole territory: drop --org")


class TokenStore:
    """Thread-safe; each call opens no new connection (one per store, serialised)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None
        self._cache: dict[str, tuple[float, Principal]] = {}

    def _db(self) -> sqlite3.Connection:
        if self._con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(_SCHEMA)
            self._con = con
        return self._con

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def create(
        self, *, role: str, org: str | None, name: str, contact: str | None = None
    ) -> IssuedToken:
        check_grant(role, org)
        if not name.strip():
            raise ValueError("a token needs a --name (who holds it: shown in the audit trail)")
        token_id = secrets.token_hex(4)
        token = f"{_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        now = time.time_ns() // 1_000_000
        with self._lock:
            self._db().execute(
                "INSERT INTO tokens (id, hash, role, org, name, contact, created_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (token_id, _hash(token), role, org, name.strip(), contact, now),
            )
        info = TokenInfo(token_id, role, org, name.strip(), contact, now, None)
        return IssuedToken(info, token)

    def revoke(self, token_id: str) -> bool:
        """Revoke by id; False when no such (unrevoked) token exists."""
        with self._lock:
            cur = self._db().execute(
                "UPDATE tokens SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL",
                (time.time_ns() // 1_000_000, token_id),
            )
            self._cache.clear()
            return cur.rowcount > 0

    def list(self, *, include_revoked: bool = False) -> list[TokenInfo]:
        sql = "SELECT id, role, org, name, contact, created_ms, revoked_ms FROM tokens"
        if not include_revoked:
            sql += " WHERE revoked_ms IS NULL"
        with self._lock:
            rows = self._db().execute(sql + " ORDER BY created_ms, id").fetchall()
        return [TokenInfo(*row) for row in rows]

    def verify(self, token: str) -> Principal | None:
        """The principal of a valid token, None for an unknown, malformed or revoked one."""
        if not token.startswith(_PREFIX) or len(token) > 200:
            return None
        digest = _hash(token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < _CACHE_S:
            return cached[1]
        with self._lock:
            row = (
                self._db()
                .execute(
                    "SELECT id, role, org, name, contact FROM tokens"
                    " WHERE hash = ? AND revoked_ms IS NULL",
                    (digest,),
                )
                .fetchone()
            )
        if row is None:
            self._cache.pop(digest, None)
            return None
        principal = Principal(row[0], row[1], row[2], row[3], row[4])
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now, principal)
        return principal
