"""The app factory: `create_app(deps)` → the FastAPI app of one node.

    app = create_app(ApiDeps(cluster=…, settings=…, store=…, live=HotWindowLive(engine)))

Routes live under `/api/v1` (OpenAPI at `/api/v1/openapi.json`, docs at `/api/v1/docs`),
the dashboard under `/dashboard`, the one-click ack pages under `/a/{token}` (the links
the alert service signs), the public page under `/public` and its API under
`/api/v1/public` (no token; absent when `ECOCLUSTER_PUBLIC_ENABLED=false`). CORS is
off unless `ECOCLUSTER_API_CORS_ORIGINS` lists origins. The app holds no module globals:
everything it reads is in `app.state.deps`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from ecocluster import __version__
from ecocluster.api.alert_port import AlertRecord
from ecocluster.api.deps import ApiDeps
from ecocluster.api.errors import install_error_handlers
from ecocluster.api.live import SeriesIndex
from ecocluster.api.metrics import ApiMetrics, MetricsMiddleware
from ecocluster.api.public import mount_public
from ecocluster.api.reports import compliance, indicators
from ecocluster.api.routes import acklink, alerts, health, history, live, registry, stream
from ecocluster.api.routes.live import alert_out
from ecocluster.api.security import RateLimiter, SecurityConfig
from ecocluster.api.today import TodayCache

__all__ = ["API_PREFIX", "create_app"]

API_PREFIX = "/api/v1"
STATIC_DIR = Path(__file__).parent / "static"
_DESCRIPTION = """\
The live and historical data of an Eco-Cluster's meters, its alerts and their
acknowledgement. Authenticate with `Authorization: Bearer <token>` (tokens come from
`ecocluster token create --role … [--org …]`). Every error is JSON:
`{"error": {"status", "code", "message", "field"?}}`. Times are epoch milliseconds.
"""


def _publish_alert(deps: ApiDeps, record: AlertRecord) -> None:
    row = alert_out(record).model_dump()
    row["org"], row["site"] = record.org, record.site
    deps.hub.publish("alert", [row])


def create_app(deps: ApiDeps) -> FastAPI:
    settings = deps.settings

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.shutdown_event = anyio.Event()
        unsubscribe = None
        if deps.alerts is not None:
            unsubscribe = deps.alerts.subscribe(lambda record: _publish_alert(deps, record))
        try:
            yield
        finally:
            app.state.shutdown_event.set()
            if unsubscribe is not None:
                unsubscribe()

    app = FastAPI(
        title="ecocluster API",
        version=__version__,
        description=_DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.deps = deps
    app.state.security = SecurityConfig(
        deps.token_store, RateLimiter(settings.api_rate_per_s, settings.api_rate_burst)
    )
    app.state.series_index = SeriesIndex()
    app.state.today = TodayCache(deps.store, deps.tz, deps.clock)
    app.state.api_metrics = ApiMetrics()
    app.state.shutdown_event = anyio.Event()
    install_error_handlers(app)
    for module in (registry, live, stream, history, alerts, health, compliance, indicators):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(acklink.inbound, prefix=API_PREFIX)
    app.include_router(acklink.pages)
    if settings.public_enabled:
        mount_public(app, API_PREFIX)
    _mount_dashboard(app)
    app.add_middleware(MetricsMiddleware, metrics=app.state.api_metrics)
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.api_cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )
    return app


def _mount_dashboard(app: FastAPI) -> None:
    app.mount("/dashboard/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/dashboard")

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "index.html",
            headers={
                "Cache-Control": "no-cache",
                "Content-Security-Policy": "default-src 'self'; img-src 'self' data:;"
                " style-src 'self'; script-src 'self'; connect-src 'self'",
                "Referrer-Policy": "no-referrer",
            },
        )
