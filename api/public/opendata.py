"""Open data: the public figures as datasets with stable URLs, in CSV and JSON, licensed.

    GET /api/v1/public/opendata                          the catalogue
    GET /api/v1/public/opendata/{dataset}.json|.csv      one dataset

Datasets: `stations-hourly` (hourly means per public air station and pollutant with the
data capture and the validity flag of the directive's rule), `eaqi-now`,
`consumption-monthly` (the territory, each public organisation, the private
organisations together, and meters the cluster file marks public) and `alerts` (public
ones only). Every JSON answer has a `licence` object; every CSV answer a
`Link: <licence>; rel="license"` header (RFC 8288 / RFC 4946) and a `licence` column,
because a comment line in a CSV file breaks most readers. Ranges are bounded: a request
for more than `MAX_HOURLY_DAYS` days of hourly values or `MAX_MONTHS` months is refused
with a 422 naming the parameter.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ecocluster.api.errors import BadParameter, NotFound
from ecocluster.api.public.air import hourly_rows, iso_ms, load_air
from ecocluster.api.public.alerts import public_alerts, strip_private
from ecocluster.api.public.consumption import Month, monthly_rows, months_between
from ecocluster.api.public.policy import PublicPolicy
from ecocluster.api.public.summary import licence_of
from ecocluster.api.timeq import parse_time_ms
from ecocluster.core.settings import Settings
from ecocluster.rules.compliance.eaqi import EAQI_SOURCE, level_of
from ecocluster.rules.compliance.timebase import HOUR_MS

__all__ = [
    "DATASETS",
    "DATASET_BY_ID",
    "MAX_HOURLY_DAYS",
    "MAX_MONTHS",
    "Dataset",
    "catalogue",
    "describe_params",
    "encode",
    "hourly_span",
    "month_span_params",
    "rows_of",
]

MAX_HOURLY_DAYS: Final = 31
MAX_MONTHS: Final = 36


@dataclass(frozen=True, slots=True)
class Dataset:
    id: str
    title_it: str
    title_en: str
    description: str
    fields: tuple[str, ...]
    parameters: tuple[str, ...] = ()


DATASETS: Final = (
    Dataset(
        "stations-hourly",
        "Medie orarie delle stazioni di qualità dell'aria",
        "Hourly means of the air-quality stations",
        "Hourly means (µg/m³, mg/m³ for CO) per public station and pollutant, local standard"
        " time hours given in UTC; valid = the hour meets the 75 % data-capture rule"
        " (2008/50/EC Annex XI A), value null otherwise.",
        ("station", "pollutant", "hour_start", "value", "unit", "data_capture", "valid"),
        ("start", "end", "station", "pollutant"),
    ),
    Dataset(
        "eaqi-now",
        "Indice europeo di qualità dell'aria, ora",
        "European Air Quality Index, now",
        f"The last complete hour's EAQI per public station and pollutant. {EAQI_SOURCE}.",
        ("station", "name", "at", "band", "level", "pollutant", "value", "unit", "captured"),
    ),
    Dataset(
        "consumption-monthly",
        "Consumi mensili di energia e acqua",
        "Monthly energy and water use",
        "Sums of register deltas per civil month: the territory, each public organisation,"
        " the private organisations together (never one by one), and meters the cluster"
        " file marks public. to_date = the month is not over.",
        ("month", "to_date", "quantity", "unit", "scope", "org", "name", "site", "meter", "value"),
        ("from", "to"),
    ),
    Dataset(
        "alerts",
        "Allerte di interesse pubblico",
        "Alerts of public interest",
        "Open public alerts and those resolved in the last days, one line in Italian and"
        " English; no internal detail.",
        ("id", "state", "severity", "text_it", "text_en", "place", "since", "resolved_at"),
        ("days",),
    ),
)
DATASET_BY_ID: Final = {d.id: d for d in DATASETS}


def catalogue(settings: Settings, prefix: str, now_ms: int) -> dict[str, Any]:
    return {
        "generated_at": iso_ms(now_ms),
        "licence": licence_of(settings),
        "datasets": [
            {
                "id": d.id,
                "title_it": d.title_it,
                "title_en": d.title_en,
                "description": d.description,
                "fields": list(d.fields),
                "parameters": list(d.parameters),
                "formats": {
                    "json": f"{prefix}/public/opendata/{d.id}.json",
                    "csv": f"{prefix}/public/opendata/{d.id}.csv",
                },
            }
            for d in DATASETS
        ],
    }


# -- parameters ----------------------------------------------------------------------------
def hourly_span(start: str | None, end: str | None, *, now_ms: int, tz: Any) -> tuple[int, int]:
    """Whole hours `[start, end)` in epoch ms; default the last 48 hours; ≤ 31 days."""
    end_ms = now_ms if end is None else parse_time_ms(end, "end", now_ms=now_ms, tz=tz)
    start_ms = (
        end_ms - 48 * HOUR_MS
        if start is None
        else parse_time_ms(start, "start", now_ms=now_ms, tz=tz)
    )
    if start_ms >= end_ms:
        raise BadParameter("start must be before end", field="start")
    if end_ms - start_ms > MAX_HOURLY_DAYS * 86_400_000:
        raise BadParameter(
            f"start…end spans more than {MAX_HOURLY_DAYS} days: ask for one month at a time",
            field="start",
        )
    if end_ms - start_ms < HOUR_MS:
        raise BadParameter("start…end must span at least one hour", field="end")
    return start_ms, end_ms


def month_span_params(first: str | None, last: str | None, *, now_ms: int, tz: Any) -> list[Month]:
    current = Month.of_ms(now_ms, tz)
    try:
        to = current if last is None else Month.parse(last)
    except ValueError as exc:
        raise BadParameter(str(exc), field="to") from None
    try:
        start = _months_before(to, 11) if first is None else Month.parse(first)
    except ValueError as exc:
        raise BadParameter(str(exc), field="from") from None
    if (to.year, to.month) > (current.year, current.month):
        raise BadParameter(f"to={to} is in the future (this month is {current})", field="to")
    if (start.year, start.month) > (to.year, to.month):
        raise BadParameter("from must not be after to", field="from")
    months = months_between(start, to)
    if len(months) > MAX_MONTHS:
        raise BadParameter(
            f"from…to spans {len(months)} months: at most {MAX_MONTHS}", field="from"
        )
    return months


def _months_before(month: Month, n: int) -> Month:
    index = month.year * 12 + month.month - 1 - n
    return Month(index // 12, index % 12 + 1)


# -- rows ----------------------------------------------------------------------------------
async def rows_of(
    dataset: str, deps: Any, policy: PublicPolicy, params: dict[str, Any], now_ms: int
) -> list[dict[str, Any]]:
    cluster, store = deps.cluster, deps.store
    if dataset == "stations-hourly":
        stations = policy.air_stations
        if params.get("station") is not None:
            stations = tuple(s for s in stations if s.id == params["station"])
            if not stations:
                raise NotFound("no public air station has that id", field="station")
        air = await load_air(cluster, store, stations, now_ms=now_ms, span=params["span"])
        rows = hourly_rows(air, air.h0, air.end_hour)
        if params.get("pollutant") is not None:
            rows = [r for r in rows if r["pollutant"] == params["pollutant"]]
        return rows
    if dataset == "eaqi-now":
        air = await load_air(cluster, store, policy.air_stations, now_ms=now_ms)
        out = []
        for site in policy.air_stations:
            index = air.eaqi(site)
            for p in index["pollutants"]:
                out.append(
                    {
                        "station": site.id,
                        "name": site.name,
                        "at": index["at"],
                        "band": p["band"],
                        "level": level_of(p["band"]),
                        "pollutant": p["pollutant"],
                        "value": p["value"],
                        "unit": p["unit"],
                        "captured": p["captured"],
                    }
                )
            out.append(
                {
                    "station": site.id,
                    "name": site.name,
                    "at": index["at"],
                    "band": index["band"],
                    "level": index["level"],
                    "pollutant": "index",
                    "value": None,
                    "unit": None,
                    "captured": index["band"] is not None,
                }
            )
        return out
    if dataset == "consumption-monthly":
        return await monthly_rows(cluster, store, policy, params["months"], now_ms=now_ms)
    if dataset == "alerts":
        lines = await public_alerts(deps.alerts, policy, now_ms=now_ms, days=params["days"])
        return strip_private(lines)
    raise NotFound(f"no dataset {dataset!r}", field="dataset")


# -- encoding ------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def encode(
    dataset: Dataset,
    rows: list[dict[str, Any]],
    fmt: str,
    *,
    settings: Settings,
    params: dict[str, Any],
    now_ms: int,
) -> tuple[bytes, str, dict[str, str]]:
    """(body, media type, extra headers) of a dataset answer."""
    licence = licence_of(settings)
    headers: dict[str, str] = {}
    if licence["url"]:
        headers["Link"] = f'<{licence["url"]}>; rel="license"'
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")  # RFC 4180
        writer.writerow([*dataset.fields, "licence"])
        for row in rows:
            writer.writerow([*(_cell(row.get(f)) for f in dataset.fields), licence["id"]])
        headers["Content-Disposition"] = f'inline; filename="{dataset.id}.csv"'
        return buf.getvalue().encode(), "text/csv; charset=utf-8", headers
    body = {
        "dataset": dataset.id,
        "title_it": dataset.title_it,
        "title_en": dataset.title_en,
        "description": dataset.description,
        "generated_at": iso_ms(now_ms),
        "licence": licence,
        "parameters": describe_params(params),
        "fields": list(dataset.fields),
        "rows": [{f: row.get(f) for f in dataset.fields} for row in rows],
    }
    return orjson.dumps(body), "application/json", headers


def describe_params(params: dict[str, Any]) -> dict[str, Any]:
    """The normalised parameters as shown in the JSON answer."""
    out = {k: v for k, v in params.items() if k not in ("span", "months")}
    if "span" in params:
        out["start"], out["end"] = iso_ms(params["span"][0]), iso_ms(params["span"][1])
    if "months" in params:
        out["from"], out["to"] = str(params["months"][0]), str(params["months"][-1])
    return out
