"""`GET /reports/compliance`: the indicative air-quality compliance report of a year, per
station and pollutant, against every pack (JSON or CSV).

Per-station data: coordinators and emergency coordinators of the territory see every
station, a facility manager or scoped emergency coordinator the stations of their own
organisation, a viewer nothing (403: stations are site detail).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from ecocluster.api.context import DataCaller, Deps
from ecocluster.api.errors import BadParameter, error_responses
from ecocluster.api.security import Scope
from ecocluster.core.types import ID_PATTERN
from ecocluster.rules.compliance.report import build_report
from ecocluster.rules.compliance.timebase import standard_offset_ms

__all__ = ["router"]

router = APIRouter(tags=["reports"], responses=error_responses(401, 403, 404, 422, 429, 503))
IdQuery = Annotated[str | None, Query(pattern=f"^{ID_PATTERN}$")]
AirQuantity = Literal["pm10_ugm3", "pm25_ugm3", "no2_ugm3", "o3_ugm3", "so2_ugm3", "co_mgm3"]
_CSV_EXAMPLE = (
    "year,org,site,meter,quantity,unit,configured_pack,pack,check,kind,averaging,standard,"
    "allowed,count,statistic,data_capture,status,verified,source,exceedances\n"
)


def current_year(deps: Any) -> int:
    from datetime import UTC, datetime, timedelta

    offset = standard_offset_ms(deps.tz)
    return (datetime.fromtimestamp(deps.clock() / 1000, UTC) + timedelta(milliseconds=offset)).year


async def compliance_json(
    deps: Any,
    caller: Any,
    *,
    year: int | None,
    site: str | None,
    meter: str | None,
    quantity: str | None,
) -> dict[str, Any]:
    """The report as a dict, narrowed to the caller's organisations."""
    scope = Scope(caller, deps.cluster)
    if meter is not None and site is None:
        raise BadParameter("meter needs site (meter ids are unique per site)", field="meter")
    if site is not None:
        scope.site(site)
        if meter is not None:
            scope.meter(site, meter)
    year = year or current_year(deps)
    try:
        report = await build_report(
            deps.cluster,
            deps.store,
            year=year,
            now_ms=deps.clock(),
            site=site,
            meter=meter,
            quantity=quantity,
        )
    except ValueError as exc:
        raise BadParameter(str(exc), field="year") from None
    report.stations = [s for s in report.stations if scope.reaches(s.key.org)]
    return {"report": report, "body": report.to_dict()}


@router.get(
    "/reports/compliance",
    summary="Air-quality compliance per station, pollutant and year (indicative)",
    responses={200: {"content": {"text/csv": {"example": _CSV_EXAMPLE}}}},
)
async def compliance(
    deps: Deps,
    caller: DataCaller,
    year: Annotated[int | None, Query(ge=1990, le=2200, description="default: this year")] = None,
    site: IdQuery = None,
    meter: IdQuery = None,
    quantity: AirQuantity | None = None,
    format: Literal["json", "csv"] = "json",
) -> dict[str, Any]:
    """Hourly, daily, maximum daily 8-hour and annual values computed with the directive's
    data-capture rules in local standard time; every exceedance with its period; the
    status of each check of each pack (eu2008, eu2030, who2021); the station's configured
    pack. Statements are indicative: reference methods and the regional agency decide."""
    out = await compliance_json(deps, caller, year=year, site=site, meter=meter, quantity=quantity)
    if format == "csv":
        return Response(  # type: ignore[return-value]
            out["report"].to_csv(), media_type="text/csv; charset=utf-8"
        )
    body: dict[str, Any] = out["body"]
    return body
