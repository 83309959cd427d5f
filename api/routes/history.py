"""History (range, `every`, `fn`, per series or summed per meter/site/org/territory; JSON or
CSV), consumption from register deltas, and a site's today-vs-same-weekday profile.

Bounds, so that a request can never tie up the store: a range of at most 400 days, at most
10,000 buckets per series, raw readings (no `every`) over at most 7 days, and summing across
series needs `every` (raw readings of different meters never share timestamps).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final, Literal

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ecocluster.api.context import AnyCaller, DataCaller, Deps
from ecocluster.api.deps import ApiDeps
from ecocluster.api.errors import BadParameter, Forbidden, error_responses
from ecocluster.api.grouping import GroupedSeries, group_sum, per_series
from ecocluster.api.models import (
    ConsumptionItemOut,
    ConsumptionOut,
    HistoryOut,
    HistorySeriesOut,
    ProfileDayOut,
    ProfileOut,
)
from ecocluster.api.security import Scope
from ecocluster.api.timeq import day_start_ms, parse_duration_ms, parse_time_ms
from ecocluster.api.tokens import Principal
from ecocluster.core.types import CUMULATIVE_QUANTITIES, ID_PATTERN, Quantity, SeriesKey
from ecocluster.ingest.stores.base import AggregateFn

HistoryField = Literal["value", "delta"]
HistoryGroup = Literal["series", "meter", "site", "org", "territory"]

router = APIRouter(tags=["history"], responses=error_responses(401, 403, 404, 422, 429, 503))
IdQuery = Annotated[str | None, Query(pattern=f"^{ID_PATTERN}$")]
MAX_RANGE_MS: Final = 400 * 86_400_000
MAX_BUCKETS: Final = 10_000
MAX_RAW_RANGE_MS: Final = 7 * 86_400_000
_UNITS: Final = {"energy_kwh": "kWh", "water_m3": "m³"}
_CSV_EXAMPLE = (
    "ts_ms,time,site,quantity,value\n"
    "1732406400000,2024-11-24T00:00:00.000Z,cerreto-hotel,power_w,5230.0\n"
)


def _range(deps: ApiDeps, start: str, end: str) -> tuple[int, int]:
    now = deps.clock()
    start_ms = parse_time_ms(start, "start", now_ms=now, tz=deps.tz)
    end_ms = parse_time_ms(end, "end", now_ms=now, tz=deps.tz)
    if end_ms <= start_ms:
        raise BadParameter("start must be before end", field="start")
    if end_ms - start_ms > MAX_RANGE_MS:
        raise BadParameter("the range is longer than 400 days", field="start")
    return start_ms, end_ms


def _where(scope: Scope, org: str | None, site: str | None, meter: str | None) -> dict[str, str]:
    """Store filters: the requested ones, checked, narrowed to the caller's organisation."""
    where: dict[str, str] = {}
    if meter is not None and site is None:
        raise BadParameter("meter needs site (meter ids are unique per site)", field="meter")
    if org is not None:
        where["org"] = scope.org(org)
    if site is not None:
        s = scope.site(site)
        where["site"] = site
        if org is not None and s.org != org:
            raise BadParameter(f"site {site!r} is not in organisation {org!r}", field="site")
    if meter is not None and site is not None:
        scope.meter(site, meter)
        where["meter"] = meter
    if "org" not in where and scope.orgs is not None:
        (where["org"],) = tuple(scope.orgs)
    return where


def _key_of(group: str) -> Callable[[SeriesKey], dict[str, str]]:
    fields = {
        "meter": ("org", "site", "meter", "quantity"),
        "site": ("org", "site", "quantity"),
        "org": ("org", "quantity"),
        "territory": ("quantity",),
    }[group]

    def key_of(key: SeriesKey) -> dict[str, str]:
        d = key._asdict()
        return {f: d[f] for f in fields}

    return key_of


def _check_viewer(caller: Principal, group: str, filters: tuple[str | None, ...]) -> None:
    if caller.role == "viewer" and (group != "territory" or any(f is not None for f in filters)):
        raise Forbidden("viewers see territory totals only: use group=territory, no filters")


async def query_history(
    deps: ApiDeps,
    caller: Principal,
    *,
    quantity: str,
    start: str,
    end: str,
    every: str | None,
    fn: AggregateFn,
    field: HistoryField,
    group: HistoryGroup,
    org: str | None,
    site: str | None,
    meter: str | None,
) -> HistoryOut:
    _check_viewer(caller, group, (org, site, meter))
    scope = Scope(caller, deps.cluster)
    start_ms, end_ms = _range(deps, start, end)
    if field == "delta" and quantity not in CUMULATIVE_QUANTITIES:
        raise BadParameter(
            f"field=delta is for registers (energy_kwh, water_m3), not {quantity}", field="field"
        )
    where = _where(scope, org, site, meter)
    store = deps.store
    if every is None:
        if group != "series":
            raise BadParameter(f"group={group} needs every (e.g. every=5m)", field="every")
        if end_ms - start_ms > MAX_RAW_RANGE_MS:
            raise BadParameter("raw readings span at most 7 days: set every", field="every")
        batch = await store.query_range(quantity, start_ms, end_ms, where=where)
        every_ms = None
    else:
        every_ms = parse_duration_ms(every, "every")
        buckets = math.ceil((end_ms - start_ms) / every_ms)
        if buckets > MAX_BUCKETS:
            finest = _nice_duration(math.ceil((end_ms - start_ms) / MAX_BUCKETS))
            raise BadParameter(
                f"every={every} is too fine for this range: {buckets} buckets, at most"
                f" {MAX_BUCKETS} (use every={finest} or more)",
                field="every",
            )
        batch = await store.query_aggregate(
            quantity, start_ms, end_ms, every_ms=every_ms, fn=fn, where=where
        )
    column = batch.deltas if field == "delta" else batch.values
    grouped: GroupedSeries
    if group == "series":
        grouped = per_series(batch, column)
    else:
        grouped = group_sum(batch, column, _key_of(group))
    return HistoryOut(
        quantity=quantity,
        field=field,
        fn=fn if every_ms else None,
        every_ms=every_ms,
        start_ms=start_ms,
        end_ms=end_ms,
        group=group,
        series=[
            HistorySeriesOut(
                key=key,
                ts_ms=ts.tolist(),
                values=[v if math.isfinite(v) else None for v in values.tolist()],
            )
            for key, ts, values in grouped
        ],
    )


def _nice_duration(ms: int) -> str:
    for text, step in (
        ("1m", 60_000),
        ("5m", 300_000),
        ("15m", 900_000),
        ("1h", 3_600_000),
        ("6h", 21_600_000),
        ("1d", 86_400_000),
        ("1w", 604_800_000),
    ):
        if step >= ms:
            return text
    return f"{math.ceil(ms / 86_400_000)}d"


def _csv(out: HistoryOut) -> str:
    buf = io.StringIO()
    label_names = sorted({k for s in out.series for k in s.key if k != "quantity"})
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["ts_ms", "time", *label_names, "quantity", out.field])
    for s in out.series:
        labels = [s.key.get(k, "") for k in label_names]
        for ts, value in zip(s.ts_ms, s.values, strict=True):
            stamp = datetime.fromtimestamp(ts / 1000, UTC).isoformat(timespec="milliseconds")
            writer.writerow([ts, stamp.replace("+00:00", "Z"), *labels, out.quantity, _num(value)])
    return buf.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else repr(value)


@router.get(
    "/history",
    response_model=HistoryOut,
    summary="Readings over time, raw or aggregated, per series or summed",
    responses={200: {"content": {"text/csv": {"example": _CSV_EXAMPLE}}}},
)
async def history(
    deps: Deps,
    caller: AnyCaller,
    quantity: Quantity,
    start: Annotated[
        str, Query(max_length=40, description="epoch ms, ISO 8601, now, today, -24h")
    ] = "-24h",
    end: Annotated[str, Query(max_length=40)] = "now",
    every: Annotated[str | None, Query(max_length=20, examples=["1m", "15m", "1h"])] = None,
    fn: AggregateFn = "mean",
    field: HistoryField = "value",
    group: HistoryGroup = "series",
    org: IdQuery = None,
    site: IdQuery = None,
    meter: IdQuery = None,
    format: Literal["json", "csv"] = "json",
) -> HistoryOut | Response:
    """`fn` applies per series and bucket; groups then sum the series' buckets (so
    `fn=mean` of power per site is the site's mean power). For consumption per bucket use
    a register with `field=delta&fn=sum`. Viewers may ask `group=territory` only."""
    out = await query_history(
        deps,
        caller,
        quantity=quantity,
        start=start,
        end=end,
        every=every,
        fn=fn,
        field=field,
        group=group,
        org=org,
        site=site,
        meter=meter,
    )
    if format == "csv":
        return Response(_csv(out), media_type="text/csv; charset=utf-8")
    return out


@router.get("/consumption", summary="Consumption from register deltas over a period")
async def consumption(
    deps: Deps,
    caller: AnyCaller,
    quantity: Literal["energy_kwh", "water_m3"] = "energy_kwh",
    start: Annotated[str, Query(max_length=40)] = "today",
    end: Annotated[str, Query(max_length=40)] = "now",
    by: Literal["meter", "site", "org", "territory"] = "site",
    org: IdQuery = None,
    site: IdQuery = None,
) -> ConsumptionOut:
    """Sum of the deltas the ingest stage computed between successive register readings
    (resets and implausible jumps excluded). Viewers may ask `by=territory` only."""
    _check_viewer(caller, "territory" if by == "territory" else by, (org, site))
    scope = Scope(caller, deps.cluster)
    start_ms, end_ms = _range(deps, start, end)
    where = _where(scope, org, site, None)
    store_by = "org" if by == "territory" else by
    totals = await deps.store.consumption(quantity, start_ms, end_ms, by=store_by, where=where)
    if by == "territory":
        totals = {"territory": float(sum(totals.values()))} if totals else {}
    items = [ConsumptionItemOut(key=k, value=v) for k, v in totals.items()]
    return ConsumptionOut(
        quantity=quantity,
        unit=_UNITS[quantity],
        by=by,
        start_ms=start_ms,
        end_ms=end_ms,
        items=items,
        total=float(sum(totals.values())),
    )


@router.get("/sites/{site}/profile", summary="Today by hour vs the same weekday of 4 weeks")
async def profile(
    request: Request,
    site: str,
    deps: Deps,
    caller: DataCaller,
    quantity: Literal["energy_kwh", "water_m3", "power_w", "flow_lpm"] = "energy_kwh",
) -> ProfileOut:
    """Hourly values in local time: consumption (registers' deltas summed) or mean power or
    flow, for today and the same weekday 1–4 weeks ago, plus their mean."""
    del request
    scope = Scope(caller, deps.cluster)
    s = scope.site(site)
    tz = deps.tz
    now = deps.clock()
    today = datetime.fromtimestamp(now / 1000, tz).date()
    days = [today - timedelta(weeks=w) for w in range(5)]
    start_ms = day_start_ms(days[-1], tz)
    end_ms = day_start_ms(today + timedelta(days=1), tz)
    is_register = quantity in CUMULATIVE_QUANTITIES
    batch = await deps.store.query_aggregate(
        quantity,
        start_ms,
        end_ms,
        every_ms=3_600_000,
        fn="sum" if is_register else "mean",
        where={"org": s.org, "site": site},
    )
    grouped = group_sum(batch, batch.deltas if is_register else batch.values, lambda k: {})
    by_ts: dict[int, float] = {}
    if grouped:
        _key, ts, values = grouped[0]
        by_ts = dict(zip(ts.tolist(), values.tolist(), strict=True))
    out_days = []
    for day in days:
        lo, hi = day_start_ms(day, tz), day_start_ms(day + timedelta(days=1), tz)
        hours = range(lo, hi, 3_600_000)
        out_days.append(
            ProfileDayOut(
                date=day.isoformat(),
                start_ms=lo,
                values=[by_ts.get(h) if h < now else None for h in hours],
            )
        )
    previous = out_days[1:]
    width = max(len(d.values) for d in previous)
    mean: list[float | None] = []
    for i in range(width):
        vals = [v for d in previous if i < len(d.values) and (v := d.values[i]) is not None]
        mean.append(float(np.mean(vals)) if vals else None)
    return ProfileOut(
        site=site, quantity=quantity, today=out_days[0], previous=previous, previous_mean=mean
    )
