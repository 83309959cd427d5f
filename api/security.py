"""Who may call what: bearer authentication, roles, organisation scope, per-token rate limit.

Roles (a token has exactly one):

- `coordinator`: sees the whole territory; acks, assigns, silences.
- `facility_manager`: sees their organisation's sites, meters, data and alerts; acks those.
- `emergency_coordinator`: alerts and data of their organisation (the whole territory
  when the token names none); acks, assigns, silences in that scope.
- `viewer`: territory-wide aggregates only (no site, meter or alert detail); changes nothing.

401 means "who are you?" (no, unknown or revoked token); 403 means "not you": the token is
valid but its role or organisation does not reach the resource. A resource of another
organisation is answered 403 without echoing anything about it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ecocluster.api.errors import Forbidden, NotFound, RateLimited, Unauthorized
from ecocluster.api.tokens import Principal, TokenStore
from ecocluster.core.cluster import Meter, Site
from ecocluster.core.registry import Cluster

__all__ = [
    "ACK",
    "ALERTS",
    "ALL",
    "ASSIGN",
    "DATA",
    "RateLimiter",
    "Scope",
    "SecurityConfig",
    "bearer",
    "require",
]

ALL: Final = frozenset({"coordinator", "facility_manager", "emergency_coordinator", "viewer"})
#: Per-site and per-meter data (registry detail, live, history, consumption below territory).
DATA: Final = frozenset({"coordinator", "facility_manager", "emergency_coordinator"})
ALERTS: Final = DATA
ACK: Final = DATA
ASSIGN: Final = frozenset({"coordinator", "emergency_coordinator"})
SILENCE: Final = ASSIGN
METRICS: Final = frozenset({"coordinator"})

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A token from `ecocluster token create --role … [--org …]`.",
)


class RateLimiter:
    """A token bucket per token id: `rate_per_s` sustained, `burst` at once."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> None:
        if self.rate_per_s <= 0:
            return
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate_per_s)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate_per_s
            raise RateLimited(
                f"too many requests for this token: retry in {wait:.1f} s", retry_after_s=wait
            )
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 50_000:
            self._buckets.clear()


@dataclass(slots=True)
class SecurityConfig:
    tokens: TokenStore
    limiter: RateLimiter


def _config(request: Request) -> SecurityConfig:
    config: SecurityConfig = request.app.state.security
    return config


def require(
    roles: frozenset[str],
) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency: the authenticated caller, if their role is in `roles` (else 403)."""

    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> Principal:
        if credentials is None:
            raise Unauthorized("missing bearer token (Authorization: Bearer eco_…)")
        config = _config(request)
        principal = config.tokens.verify(credentials.credentials)
        if principal is None:
            raise Unauthorized("unknown or revoked token")
        config.limiter.take(principal.token_id)
        if principal.role not in roles:
            allowed = ", ".join(sorted(roles))
            raise Forbidden(f"role {principal.role} may not do this (allowed: {allowed})")
        request.state.principal = principal
        return principal

    return dependency


@dataclass(frozen=True, slots=True)
class Scope:
    """The organisations a caller reaches, with checks that raise 404 / 403."""

    principal: Principal
    cluster: Cluster

    @property
    def orgs(self) -> frozenset[str] | None:
        """None = every organisation."""
        p = self.principal
        if p.role in ("coordinator", "viewer") or p.org is None:
            return None
        return frozenset({p.org})

    def reaches(self, org: str | None) -> bool:
        orgs = self.orgs
        return orgs is None or (org is not None and org in orgs)

    def _outside(self, what: str) -> Forbidden:
        # The requested id is not echoed: an answer about another organisation says nothing.
        return Forbidden(f"that {what} is outside your scope (organisation {self.principal.org})")

    def org(self, org_id: str) -> str:
        if org_id not in self.cluster.org_by_id:
            raise NotFound(f"unknown organisation {org_id!r}", field="org")
        if not self.reaches(org_id):
            raise self._outside("organisation")
        return org_id

    def site(self, site_id: str) -> Site:
        site = self.cluster.site_by_id.get(site_id)
        if site is None:
            raise NotFound(f"unknown site {site_id!r}", field="site")
        if not self.reaches(site.org):
            raise self._outside("site")
        return site

    def meter(self, site_id: str, meter_id: str) -> Meter:
        self.site(site_id)
        meter = self.cluster.meter(site_id, meter_id)
        if meter is None:
            raise NotFound(f"site {site_id!r} has no meter {meter_id!r}", field="meter")
        return meter
