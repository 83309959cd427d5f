"""`GET /reports/indicators` (JSON, CSV) and `GET /reports/statement` (the printable annual
environmental statement: HTML with inline SVG charts, A4 print CSS, no script).

Scope: coordinators and territory-wide emergency coordinators see every organisation;
facility managers (and scoped emergency coordinators) their own organisation next to the
territory total; viewers the territory totals only (no organisation, site or station).
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from ecocluster.api.context import AnyCaller, Deps
from ecocluster.api.errors import BadParameter, error_responses
from ecocluster.api.reports.compliance import compliance_json
from ecocluster.api.reports.svg import bars, columns
from ecocluster.api.security import Scope
from ecocluster.rules.compliance.report import INDICATIVE
from ecocluster.rules.indicators import IndicatorReport, territory_indicators

__all__ = ["router"]

router = APIRouter(tags=["reports"], responses=error_responses(401, 403, 422, 429, 503))
_CSV_EXAMPLE = "year,org,quantity,unit,value,previous,trend,share,co2e_kg,per_employees\n"
_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
Year = Annotated[int | None, Query(ge=1990, le=2200, description="default: this year")]


async def _indicators(deps: Any, caller: Any, year: int | None) -> IndicatorReport:
    scope = Scope(caller, deps.cluster)
    now = deps.clock()
    year = year or datetime.fromtimestamp(now / 1000, deps.tz).year
    orgs = frozenset() if caller.role == "viewer" else scope.orgs
    try:
        report = await territory_indicators(
            deps.cluster, deps.store, year=year, now_ms=now, orgs=orgs
        )
    except ValueError as exc:
        raise BadParameter(str(exc), field="year") from None
    return report


@router.get(
    "/reports/indicators",
    summary="Territory indicators (EMAS Annex IV style): energy, water, CO2e, ratios",
    responses={200: {"content": {"text/csv": {"example": _CSV_EXAMPLE}}}},
)
async def indicators(
    deps: Deps, caller: AnyCaller, year: Year = None, format: Literal["json", "csv"] = "json"
) -> dict[str, Any]:
    """Figure A per organisation (total energy kWh, water m³, CO2e with the configured
    factor, its year and source), Figure R against each organisation's registry attributes,
    each organisation's share of the territory total and the trend against the previous
    year (same span while the year runs); per site, month and day."""
    report = await _indicators(deps, caller, year)
    if format == "csv":
        return Response(report.to_csv(), media_type="text/csv; charset=utf-8")  # type: ignore[return-value]
    body: dict[str, Any] = report.to_dict()
    return body


_TEXT: Final = {
    "en": {
        "title": "Annual environmental statement",
        "energy": "Energy",
        "water": "Water",
        "total": "Territory total",
        "previous": "previous year",
        "trend": "trend",
        "org": "Organisation",
        "share": "share",
        "by_org": "By organisation",
        "by_month": "By month (territory)",
        "co2": "CO2 from electricity",
        "no_factor": "not computed: no emission factor configured (set the ISPRA"
        " electricity-consumption factor in the cluster file)",
        "ratios": "Ratios (Figure R = A / B)",
        "air": "Air quality (indicative)",
        "station": "Station",
        "pollutant": "Pollutant",
        "check": "Standard",
        "status": "Status",
        "count": "Exceedances",
        "generated": "Generated",
        "partial": "year in progress, up to",
        "factor": "factor",
    },
    "it": {
        "title": "Dichiarazione ambientale annuale",
        "energy": "Energia",
        "water": "Acqua",
        "total": "Totale del territorio",
        "previous": "anno precedente",
        "trend": "andamento",
        "org": "Organizzazione",
        "share": "quota",
        "by_org": "Per organizzazione",
        "by_month": "Per mese (territorio)",
        "co2": "CO2 da energia elettrica",
        "no_factor": "non calcolata: nessun fattore di emissione configurato (inserire il"
        " fattore ISPRA per i consumi elettrici nel file del cluster)",
        "ratios": "Indicatori (R = A / B)",
        "air": "Qualità dell'aria (indicativa)",
        "station": "Stazione",
        "pollutant": "Inquinante",
        "check": "Valore",
        "status": "Stato",
        "count": "Superamenti",
        "generated": "Generato",
        "partial": "anno in corso, fino al",
        "factor": "fattore",
    },
}
_STYLE: Final = """
body{font:11pt/1.4 system-ui,sans-serif;color:#111;max-width:190mm;margin:1em auto;padding:0 1em}
h1{font-size:18pt;margin:.2em 0}h2{font-size:13pt;border-bottom:1px solid #999;margin-top:1.4em}
table{border-collapse:collapse;width:100%;font-size:9.5pt}th,td{border-bottom:1px solid #ccc;
padding:2px 4px;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.chart text{font-size:11px;fill:#222}.chart rect{fill:#2e7d32}.chart text.v{font-size:9px}
.note{font-size:8.5pt;color:#444}.exceeded{color:#b00020;font-weight:600}
section{break-inside:avoid}@page{size:A4;margin:15mm}
@media print{body{margin:0;max-width:none}a{color:inherit;text-decoration:none}}
"""


def _n(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}".replace(",", " ")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.1f} %"


def _quantity_section(report: IndicatorReport, q: str, t: dict[str, str]) -> str:
    ind = report.quantities[q]
    rows = [r for r in report.org_rows() if r["quantity"] == q]
    title = t["energy"] if q == "energy_kwh" else t["water"]
    parts = [
        f"<section><h2>{escape(title)} ({escape(ind.unit)})</h2>",
        f"<p>{escape(t['total'])}: <b>{_n(ind.total)} {escape(ind.unit)}</b>"
        f" · {escape(t['previous'])}: {_n(ind.previous_total)}"
        f" · {escape(t['trend'])}: {_pct(ind.trend)}</p>",
    ]
    if q == "energy_kwh":
        if ind.factor is None:
            parts.append(f"<p>{escape(t['co2'])}: {escape(t['no_factor'])}</p>")
        else:
            kg = ind.co2e_kg(ind.total) or 0.0
            parts.append(
                f"<p>{escape(t['co2'])}: <b>{_n(kg / 1000, 2)} t</b> ({escape(t['factor'])}"
                f" {ind.factor.kg_per_unit:g} kg/{escape(ind.factor.unit)},"
                f" {ind.factor.year}, {escape(ind.factor.source)})</p>"
            )
    if rows:
        items = sorted(((r["name"], r["value"]) for r in rows), key=lambda x: -x[1])
        parts.append(f"<h3>{escape(t['by_org'])}</h3>{bars(items, ind.unit)}")
        parts.append(
            f"<table><tr><th>{escape(t['org'])}</th><th>{escape(ind.unit)}</th>"
            f"<th>{escape(t['share'])}</th><th>{escape(t['trend'])}</th>"
            f"<th>{escape(t['ratios'])}</th></tr>"
        )
        for r in rows:
            ratios = ", ".join(
                f"{_n(v, 3)} {escape(ind.unit)}/{escape(k)}" for k, v in r["ratios"].items()
            )
            share = None if r["share"] is None else r["share"]
            parts.append(
                f"<tr><td>{escape(r['name'])}</td><td class=n>{_n(r['value'])}</td>"
                f"<td class=n>{'–' if share is None else f'{share * 100:.1f} %'}</td>"
                f"<td class=n>{_pct(r['trend'])}</td><td>{ratios or '–'}</td></tr>"
            )
        parts.append("</table>")
    monthly: dict[str, float] = {}
    for per_org in ind.by_month.values():
        for month, v in per_org.items():
            monthly[month] = monthly.get(month, 0.0) + v
    if monthly and report.organisations:
        items = [(m[5:], v) for m, v in sorted(monthly.items())]
        parts.append(f"<h3>{escape(t['by_month'])}</h3>{columns(items, ind.unit)}")
    parts.append("</section>")
    return "".join(parts)


def _air_section(body: dict[str, Any], t: dict[str, str]) -> str:
    rows = []
    for st in body["stations"]:
        for c in st["checks"]:
            if c["pack"] != st["pack"] or c["kind"] in ("information", "alert"):
                continue
            cls = ' class="exceeded"' if c["status"] == "exceeded" else ""
            allowed = "" if c["allowed"] is None else f" / {c['allowed']}"
            count = "–" if c["count"] is None else f"{c['count']}{allowed}"
            rows.append(
                f"<tr><td>{escape(st['site'])}/{escape(st['meter'])}</td>"
                f"<td>{escape(st['quantity'])}</td><td>{escape(c['id'])}"
                f" ({c['standard']:g} {escape(st['unit'])})</td><td class=n>{count}</td>"
                f"<td{cls}>{escape(c['status'])}</td></tr>"
            )
    if not rows:
        return ""
    return (
        f"<section><h2>{escape(t['air'])}</h2><table><tr><th>{escape(t['station'])}</th>"
        f"<th>{escape(t['pollutant'])}</th><th>{escape(t['check'])}</th>"
        f"<th>{escape(t['count'])}</th><th>{escape(t['status'])}</th></tr>{''.join(rows)}"
        f"</table><p class=note>{escape(INDICATIVE)}</p></section>"
    )


@router.get(
    "/reports/statement",
    summary="The printable annual environmental statement (HTML, print to PDF)",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}}},
)
async def statement(
    deps: Deps, caller: AnyCaller, year: Year = None, lang: Literal["it", "en"] = "it"
) -> HTMLResponse:
    """Totals, trend, shares, ratios and monthly charts for energy and water, CO2 with its
    factor and source, and (for roles that see stations) the year's air-quality status
    against each station's configured pack. Self-contained: inline CSS and SVG, no script."""
    report = await _indicators(deps, caller, year)
    t = _TEXT[lang]
    cluster = deps.cluster
    sections = [_quantity_section(report, q, t) for q in report.quantities]
    if caller.role != "viewer":
        air = await compliance_json(
            deps, caller, year=report.year, site=None, meter=None, quantity=None
        )
        sections.append(_air_section(air["body"], t))
    until = datetime.fromtimestamp(report.end_ms / 1000, deps.tz).strftime("%Y-%m-%d %H:%M")
    partial = "" if report.complete else f" ({escape(t['partial'])} {until})"
    stamp = datetime.fromtimestamp(deps.clock() / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    html = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(t['title'])} {report.year} – {escape(cluster.territory.name)}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>{escape(t['title'])} {report.year}{partial}</h1>"
        f"<p>{escape(cluster.territory.name)}</p>{''.join(sections)}"
        f"<p class=note>EMAS Annex IV (Reg. (EU) 2018/2026) · {escape(t['generated'])}"
        f" {stamp}</p></body></html>"
    )
    return HTMLResponse(
        html, headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-store"}
    )
