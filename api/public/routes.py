"""The public routes (no token): the page, the summary, the open-data catalogue and datasets.

    mount_public(app, "/api/v1")      # only when settings.public_enabled

Not mounted at all when `ECOCLUSTER_PUBLIC_ENABLED=false`: every public URL is then a
404 and the routes are absent from the OpenAPI schema (nothing to discover). Every answer
is cached server-side for `public_cache_max_age_s` (one computation per period, single
flight) and carries a strong ETag and `Cache-Control: public, max-age=…`; a matching
`If-None-Match` gets a 304. No cookie, no per-user variation: the body holds both
languages, so there is no `Vary`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from ecocluster.api.deps import ApiDeps
from ecocluster.api.errors import Unavailable, error_responses
from ecocluster.api.public import opendata
from ecocluster.api.public.cache import PublicCache
from ecocluster.api.public.models import Catalogue, DatasetAnswer, PublicSummary
from ecocluster.api.public.policy import PublicPolicy
from ecocluster.api.public.summary import build_summary
from ecocluster.core.types import ID_PATTERN

__all__ = ["PUBLIC_PAGE_HEADERS", "mount_public"]

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PUBLIC_PAGE_HEADERS = {
    "Cache-Control": "public, max-age=300",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self';"
    " script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
Pollutant = Literal["pm2_5", "pm10", "no2", "o3", "so2", "co"]
IfNoneMatch = Annotated[
    str | None,
    Header(
        max_length=1000,
        description="An ETag from an earlier answer: 304 Not Modified when unchanged.",
    ),
]
_NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: the ETag given in If-None-Match is current."}
}


def _state(request: Request) -> tuple[ApiDeps, PublicPolicy, PublicCache]:
    state = request.app.state
    return state.deps, state.public_policy, state.public_cache


async def _answer(
    request: Request, key: tuple[Any, ...], build: Callable[[], Awaitable[Any]]
) -> Response:
    deps, _policy, cache = _state(request)
    entry = await cache.get(key, build)
    return entry.response(request, max_age_s=deps.settings.public_cache_max_age_s)


router = APIRouter(tags=["public"], responses=error_responses(404, 422, 503))


@router.get(
    "/public/summary",
    summary="The public summary: air quality (EAQI), consumption, public alerts",
    response_class=Response,
    responses={200: {"model": PublicSummary}, **_NOT_MODIFIED},
)
async def summary(request: Request, if_none_match: IfNoneMatch = None) -> Response:
    """No token. For each public outdoor air-quality station the European Air Quality Index
    of the last complete hour, a 48-hour hourly chart and the limits/thresholds exceeded
    now; the territory's energy and water use this month against the same days last year;
    public alerts open or resolved in the last days. Cached; ETag and 304."""
    deps, policy, _cache = _state(request)

    async def build() -> tuple[bytes, str, dict[str, str]]:
        body = await build_summary(deps, policy, now_ms=deps.clock())
        return orjson.dumps(body), "application/json", {}

    return await _answer(request, ("summary",), build)


@router.get(
    "/public/opendata",
    summary="The open-data catalogue: datasets, stable URLs, licence",
    response_class=Response,
    responses={200: {"model": Catalogue}, **_NOT_MODIFIED},
)
async def catalogue(request: Request, if_none_match: IfNoneMatch = None) -> Response:
    deps, _policy, _cache = _state(request)
    prefix = request.app.state.public_prefix

    async def build() -> tuple[bytes, str, dict[str, str]]:
        body = opendata.catalogue(deps.settings, prefix, deps.clock())
        return orjson.dumps(body), "application/json", {}

    return await _answer(request, ("catalogue",), build)


async def _dataset(request: Request, name: str, fmt: str, params: dict[str, Any]) -> Response:
    deps, policy, _cache = _state(request)
    dataset = opendata.DATASET_BY_ID[name]
    now = deps.clock()

    async def build() -> tuple[bytes, str, dict[str, str]]:
        rows = await opendata.rows_of(name, deps, policy, params, now)
        return opendata.encode(
            dataset, rows, fmt, settings=deps.settings, params=params, now_ms=now
        )

    frozen = tuple(sorted((k, repr(v)) for k, v in params.items()))
    return await _answer(request, (f"opendata/{name}", fmt, frozen), build)


def _responses(fmt: str) -> dict[int | str, dict[str, Any]]:
    if fmt == "json":
        return {200: {"model": DatasetAnswer}, **_NOT_MODIFIED}
    return {
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "RFC 4180 CSV; licence in the `Link` header and column.",
        },
        **_NOT_MODIFIED,
    }


def _stations_hourly(fmt: str) -> Callable[..., Awaitable[Response]]:
    async def handler(
        request: Request,
        start: Annotated[
            str | None, Query(max_length=40, description="ISO 8601, epoch ms or -48h")
        ] = None,
        end: Annotated[str | None, Query(max_length=40, description="default: now")] = None,
        station: Annotated[str | None, Query(pattern=f"^{ID_PATTERN}$")] = None,
        pollutant: Pollutant | None = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response:
        deps, _policy, _cache = _state(request)
        now = deps.clock()
        span = opendata.hourly_span(start, end, now_ms=now, tz=deps.tz)
        hour = 3_600_000
        span = (span[0] // hour * hour, -(-span[1] // hour) * hour)
        params = {"span": span, "station": station, "pollutant": pollutant}
        return await _dataset(request, "stations-hourly", fmt, params)

    return handler


def _eaqi_now(fmt: str) -> Callable[..., Awaitable[Response]]:
    async def handler(request: Request, if_none_match: IfNoneMatch = None) -> Response:
        return await _dataset(request, "eaqi-now", fmt, {})

    return handler


def _consumption_monthly(fmt: str) -> Callable[..., Awaitable[Response]]:
    async def handler(
        request: Request,
        from_: Annotated[
            str | None, Query(alias="from", max_length=7, description="YYYY-MM")
        ] = None,
        to: Annotated[
            str | None, Query(max_length=7, description="YYYY-MM; default this month")
        ] = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response:
        deps, _policy, _cache = _state(request)
        months = opendata.month_span_params(from_, to, now_ms=deps.clock(), tz=deps.tz)
        return await _dataset(request, "consumption-monthly", fmt, {"months": months})

    return handler


def _alerts(fmt: str) -> Callable[..., Awaitable[Response]]:
    async def handler(
        request: Request,
        days: Annotated[
            int | None, Query(ge=1, le=90, description="resolved in the last N days")
        ] = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response:
        deps, _policy, _cache = _state(request)
        return await _dataset(
            request, "alerts", fmt, {"days": days or deps.settings.public_alert_days}
        )

    return handler


_HANDLERS = {
    "stations-hourly": _stations_hourly,
    "eaqi-now": _eaqi_now,
    "consumption-monthly": _consumption_monthly,
    "alerts": _alerts,
}
for _dataset_spec in opendata.DATASETS:
    for _fmt in ("json", "csv"):
        router.add_api_route(
            f"/public/opendata/{_dataset_spec.id}.{_fmt}",
            _HANDLERS[_dataset_spec.id](_fmt),
            methods=["GET"],
            summary=f"Open data: {_dataset_spec.title_en} ({_fmt.upper()})",
            description=_dataset_spec.description,
            response_class=Response,
            responses=_responses(_fmt),
            name=f"opendata_{_dataset_spec.id}_{_fmt}",
        )


def mount_public(app: FastAPI, prefix: str) -> None:
    """The public page, its assets and the public API, sharing one cache and one policy."""
    deps: ApiDeps = app.state.deps
    app.state.public_policy = PublicPolicy(deps.cluster)
    app.state.public_cache = PublicCache(deps.settings.public_cache_max_age_s)
    app.state.public_prefix = prefix
    app.include_router(router, prefix=prefix)
    app.mount("/public/static", StaticFiles(directory=STATIC_DIR), name="public-static")

    @app.get("/public", include_in_schema=False)
    async def page() -> FileResponse:
        path = STATIC_DIR / "public.html"
        if not path.is_file():
            raise Unavailable("the public page is not installed (api/static/public.html)")
        return FileResponse(path, headers=PUBLIC_PAGE_HEADERS)
