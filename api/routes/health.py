"""Liveness, readiness and Prometheus metrics.

`/health/live` answers 200 while the process serves requests. `/health/ready` probes each
part the node needs — the broker (a TCP connect), the store, the alert database — and
answers 503 naming what is down. `/metrics` exposes every stage's registry (coordinator
token, or public with `ECOCLUSTER_API_METRICS_PUBLIC=true` for a scraper on a private
network).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ecocluster.api.context import Deps
from ecocluster.api.deps import ApiDeps
from ecocluster.api.errors import error_responses
from ecocluster.api.models import CheckOut, HealthOut
from ecocluster.api.security import METRICS, bearer, require
from ecocluster.core.errors import describe

router = APIRouter(tags=["health"])
_PROBE_TIMEOUT_S = 2.0


@router.get("/health/live", summary="The process is up")
async def liveness() -> HealthOut:
    return HealthOut(status="ok")


def probes(deps: ApiDeps) -> dict[str, Callable[[], Awaitable[None]]]:
    checks: dict[str, Callable[[], Awaitable[None]]] = {}

    async def broker() -> None:
        target = deps.settings.mqtt
        _reader, writer = await asyncio.open_connection(target.host, target.port)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def store() -> None:
        # a real query that matches nothing: proves the store answers, costs nothing
        await deps.store.latest("power_w", where={"site": "readiness-probe"})

    checks["broker"] = broker
    checks["store"] = store
    if deps.alerts is not None:
        checks["alerts"] = deps.alerts.ping
    checks.update(deps.checks)
    return checks


async def _run(check: Callable[[], Awaitable[None]]) -> CheckOut:
    try:
        await asyncio.wait_for(check(), _PROBE_TIMEOUT_S)
    except TimeoutError:
        return CheckOut(ok=False, detail=f"no answer within {_PROBE_TIMEOUT_S:g} s")
    except Exception as exc:
        return CheckOut(ok=False, detail=describe(exc)[:300])
    return CheckOut(ok=True)


@router.get(
    "/health/ready",
    response_model=HealthOut,
    summary="Broker, store and alert database reachable",
    responses={503: {"model": HealthOut, "description": "Some part is down (named)."}},
)
async def readiness(deps: Deps) -> HealthOut | JSONResponse:
    checks = probes(deps)
    results = await asyncio.gather(*(_run(c) for c in checks.values()))
    named = dict(zip(checks, results, strict=True))
    if deps.alerts is None:
        named["alerts"] = CheckOut(ok=True, detail="no alert service in this node")
    body = HealthOut(status="ok" if all(r.ok for r in results) else "unavailable", checks=named)
    if body.status != "ok":
        return JSONResponse(body.model_dump(), status_code=503)
    return body


_metrics_auth = require(METRICS)


async def _metrics_access(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
) -> None:
    if not request.app.state.deps.settings.api_metrics_public:
        await _metrics_auth(request, credentials)


@router.get(
    "/metrics",
    summary="Prometheus metrics of every stage",
    response_class=Response,
    dependencies=[Depends(_metrics_access)],
    responses={
        200: {"content": {"text/plain": {"example": "ecocluster_ingest_messages_total 42.0\n"}}},
        **error_responses(401, 403, 429),
    },
)
async def metrics(request: Request, deps: Deps) -> Response:
    registries: list[CollectorRegistry] = [request.app.state.api_metrics.registry]
    registries.extend(deps.registries)
    body = b"".join(generate_latest(r) for r in registries)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
