"""The API's error tree and the one JSON shape every error answer has.

```
ApiError                 → {"error": {"status", "code", "message", "field"?}}
  x BadParameter   422   a parameter is malformed or out of bounds (inverted range, `every`
                         too fine for the range): `field` names it
  x NotFound       404   an unknown organisation, site, meter, alert or silence
  x Unauthorized   401   no token, an unknown or a revoked one (with WWW-Authenticate)
  x Forbidden      403   a valid token whose role or organisation does not reach the resource
  x RateLimited    429   this token sent too many requests (with Retry-After)
  x Unavailable    503   a part the route needs is down or not running (store, alert service)
```
FastAPI's own validation errors and Starlette's 404/405 are answered in the same shape, and a
store that cannot be reached is a 503, never a 500: a client can always tell what to fix.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ecocluster.core.errors import EcoclusterError, describe
from ecocluster.ingest.errors import StoreUnavailable

__all__ = [
    "ApiError",
    "BadParameter",
    "ErrorBody",
    "ErrorResponse",
    "Forbidden",
    "NotFound",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "error_responses",
    "install_error_handlers",
]

_log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    status: int = Field(description="The HTTP status, repeated for clients that lose it.")
    code: str = Field(description="A stable machine-readable code.", examples=["bad_parameter"])
    message: str = Field(
        description="One sentence saying what is wrong and where.",
        examples=["every=1s is too fine for a 30-day range: at most 10000 buckets (use ≥ 5m)"],
    )
    field: str | None = Field(default=None, description="The parameter at fault, if one is.")


class ErrorResponse(BaseModel):
    """Every error answer of the API."""

    error: ErrorBody


class ApiError(EcoclusterError):
    status = 500
    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def headers(self) -> dict[str, str]:
        return {}


class BadParameter(ApiError):
    status, code = 422, "bad_parameter"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="ecocluster"'}


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class RateLimited(ApiError):
    status, code = 429, "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, round(self.retry_after_s + 0.5)))}


class Unavailable(ApiError):
    status, code = 503, "unavailable"


def _example(status: int, code: str, message: str) -> dict[str, Any]:
    return {
        "model": ErrorResponse,
        "content": {
            "application/json": {
                "example": {"error": {"status": status, "code": code, "message": message}}
            }
        },
    }


#: The error answers every authenticated route documents (merged into `responses=`).
_STANDARD: dict[int, tuple[str, str]] = {
    400: ("bad_request", "the request body is not valid JSON"),
    401: ("unauthorized", "missing bearer token"),
    403: ("forbidden", "site 'latteria' is outside your scope (organisation 'parco')"),
    404: ("not_found", "unknown site 'nowhere'"),
    422: ("bad_parameter", "start must be before end"),
    429: ("rate_limited", "too many requests for this token: retry in 1 s"),
    503: ("unavailable", "the store cannot be reached: influxdb ping answered 503"),
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for these statuses (all standard ones when none given)."""
    wanted = statuses or tuple(_STANDARD)
    return {s: _example(s, *_STANDARD[s]) for s in wanted}


def _body(status: int, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"status": status, "code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


def _json(
    status: int, code: str, message: str, field: str | None = None, headers: Any = None
) -> JSONResponse:
    return JSONResponse(_body(status, code, message, field), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body", "header")]
    field = ".".join(loc) or None
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    where = f"{field}: " if field else ""
    return f"{where}{msg}{more}", field


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error in the `ErrorResponse` shape; log unexpected ones, never leak them."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _json(exc.status, exc.code, exc.message, exc.field, exc.headers())

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        message, field = _validation_message(exc)
        return _json(422, "bad_parameter", message, field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 400 and "parsing the body" in str(exc.detail):
            message = "the request body is not valid JSON"
        else:
            message = str(exc.detail)
        return _json(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(StoreUnavailable)
    async def _store_down(_request: Request, exc: StoreUnavailable) -> JSONResponse:
        return _json(503, "store_unavailable", f"the store cannot be reached: {describe(exc)}")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.error(
            "unexpected error on %s %s: %s",
            request.method,
            request.url.path,
            describe(exc),
            exc_info=exc,
        )
        return _json(500, "internal", "internal error; it has been logged")
