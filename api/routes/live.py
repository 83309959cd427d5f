"""Live: the newest readings, current power and flow per site, today's kWh and m³, open
alerts — from memory (the hot window, or the `--only api` latest table), never a store scan
except the shared, cached "today" totals."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import numpy as np
import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ecocluster.api.alert_port import AlertFilter, AlertRecord
from ecocluster.api.context import AnyCaller, DataCaller, Deps
from ecocluster.api.deps import ApiDeps
from ecocluster.api.errors import error_responses
from ecocluster.api.live import LiveColumns, SeriesIndex
from ecocluster.api.models import (
    AlertOut,
    LiveOut,
    TerritoryOut,
)
from ecocluster.api.security import Scope
from ecocluster.api.today import TodayTotals
from ecocluster.core.cluster import Site
from ecocluster.core.types import ID_PATTERN, IntArray, Quantity

router = APIRouter(tags=["live"], responses=error_responses(401, 403, 404, 422, 429, 503))
IdQuery = Annotated[str | None, Query(pattern=f"^{ID_PATTERN}$")]
_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def alert_out(a: AlertRecord) -> AlertOut:
    return AlertOut(
        id=a.id,
        code=a.code,
        rule=a.rule,
        severity=a.severity,
        state=a.state,
        labels=dict(a.labels),
        value=_finite(a.value),
        threshold=_finite(a.threshold),
        started_ms=a.started_ms,
        updated_ms=a.updated_ms,
        resolved_ms=a.resolved_ms,
        acked_by=a.acked_by,
        acked_ms=a.acked_ms,
        ack_comment=a.ack_comment,
        ack_channel=a.ack_channel,
        assignee=a.assignee,
        silenced=a.silenced,
        description=a.description,
    )


def _finite(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _index(request: Request, cols: LiveColumns) -> SeriesIndex:
    index: SeriesIndex = request.app.state.series_index
    index.refresh(cols.keys)
    return index


class _SiteSums:
    """Per site: the sums of the fresh, online newest values of power and flow, and the
    count of offline meters — vectorised over rows, then one dict per figure."""

    def __init__(self, index: SeriesIndex, cols: LiveColumns, rows: IntArray, fresh_from: int):
        n_sites = len(index.sites)
        self.sums: dict[str, dict[str, float]] = {}
        for quantity in ("power_w", "flow_lpm"):
            q_rows = index.within(rows, index.by_quantity.get(quantity, np.empty(0, np.int64)))
            keep = (cols.ts_ms[q_rows] >= fresh_from) & ~cols.offline[q_rows]
            q_rows = q_rows[keep & np.isfinite(cols.values[q_rows])]
            codes = index.site_code[q_rows]
            total = np.bincount(codes, weights=cols.values[q_rows], minlength=n_sites)
            present = np.flatnonzero(np.bincount(codes, minlength=n_sites))
            self.sums[quantity] = dict(
                zip(
                    [index.sites[i] for i in present.tolist()], total[present].tolist(), strict=True
                )
            )
        off_codes = index.site_code[rows[cols.offline[rows]]]
        off = np.bincount(off_codes, minlength=n_sites)
        present = np.flatnonzero(off)
        self.offline = dict(
            zip([index.sites[i] for i in present.tolist()], off[present].tolist(), strict=True)
        )

    def get(self, quantity: str, site: str) -> float | None:
        return self.sums[quantity].get(site)

    def offline_count(self, site: str) -> int:
        return self.offline.get(site, 0)


def _site_row(
    site: Site, sums: _SiteSums, today: TodayTotals, open_alerts: int | None
) -> dict[str, object]:
    """One `SiteLiveOut` as a plain dict (answers are serialised with orjson directly: a
    thousand validated models per request would cost more than computing them)."""
    return {
        "site": site.id,
        "org": site.org,
        "name": site.name,
        "power_w": sums.get("power_w", site.id),
        "flow_lpm": sums.get("flow_lpm", site.id),
        "today_energy_kwh": today.site_total("energy_kwh", site.id),
        "today_water_m3": today.site_total("water_m3", site.id),
        "open_alerts": open_alerts,
        "meters_offline": sums.offline_count(site.id),
    }


def _sites_in(deps: ApiDeps, scope: Scope, org: str | None, site: str | None) -> list[Site]:
    """The sites asked for, already checked against the scope (registry order)."""
    cluster = deps.cluster
    if site is not None:
        return [cluster.site_by_id[site]]
    if org is not None:
        return list(cluster.sites_of(org))
    orgs = scope.orgs
    if orgs is None:
        return list(cluster.sites)
    return [s for o in orgs for s in cluster.sites_of(o)]


def _json(body: object) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


async def _open_alerts(deps: ApiDeps, scope: Scope, site: str | None) -> list[AlertRecord] | None:
    if deps.alerts is None:
        return None
    flt = AlertFilter(orgs=scope.orgs, state="firing", site=site, limit=10_000)
    return await deps.alerts.list_alerts(flt)


@router.get(
    "/live",
    summary="Newest readings, site power/flow, today's totals, open alerts",
    response_model=LiveOut,
)
async def live(
    request: Request,
    deps: Deps,
    caller: DataCaller,
    org: IdQuery = None,
    site: IdQuery = None,
    quantity: Quantity | None = None,
) -> Response:
    """What a facility manager's page shows, for the caller's scope, one organisation or one
    site. `stale` readings are older than `ECOCLUSTER_API_LIVE_STALE_S`; sites sum only
    fresh, online readings."""
    scope = Scope(caller, deps.cluster)
    if org is not None:
        scope.org(org)
    if site is not None:
        scope.site(site)
    now = deps.clock()
    fresh_from = now - int(deps.settings.api_live_stale_s * 1000)
    cols = deps.live.columns()
    index = _index(request, cols)
    rows = index.rows(orgs=scope.orgs, org=org, site=site)
    seen = rows[cols.ts_ms[rows] >= 0]
    if quantity is not None:
        seen = index.within(seen, index.by_quantity.get(quantity, seen[:0]))
    readings = [
        {
            "org": k.org,
            "site": k.site,
            "meter": k.meter,
            "quantity": k.quantity,
            "value": v,
            "ts_ms": t,
            "stale": t < fresh_from,
            "offline": off,
        }
        for k, v, t, off in zip(
            [cols.keys[r] for r in seen.tolist()],
            cols.values[seen].tolist(),
            cols.ts_ms[seen].tolist(),
            cols.offline[seen].tolist(),
            strict=True,
        )
    ]
    today = await request.app.state.today.get()
    alerts = await _open_alerts(deps, scope, site)
    sums = _SiteSums(index, cols, rows, fresh_from)
    per_site = Counter(a.site for a in alerts or ())
    sites_out = [
        _site_row(s, sums, today, None if alerts is None else per_site.get(s.id, 0))
        for s in _sites_in(deps, scope, org, site)
    ]
    return _json(
        {
            "at_ms": now,
            "timezone": deps.cluster.territory.timezone,
            "today_since_ms": today.since_ms,
            "stale_after_ms": int(deps.settings.api_live_stale_s * 1000),
            "sites": sites_out,
            "readings": readings,
            "alerts": None if alerts is None else [alert_out(a).model_dump() for a in alerts],
        }
    )


def _totals(sites: list[dict[str, object]]) -> dict[str, object]:
    def total(name: str) -> float | None:
        values = [v for s in sites if (v := s[name]) is not None]
        return float(sum(values)) if values else None  # type: ignore[arg-type]

    return {
        "power_w": total("power_w"),
        "flow_lpm": total("flow_lpm"),
        "today_energy_kwh": total("today_energy_kwh"),
        "today_water_m3": total("today_water_m3"),
        "sites_reporting": sum(
            1 for s in sites if s["power_w"] is not None or s["flow_lpm"] is not None
        ),
    }


@router.get(
    "/live/territory",
    summary="Territory totals by organisation, map, open alerts",
    response_model=TerritoryOut,
)
async def territory(request: Request, deps: Deps, caller: AnyCaller) -> Response:
    """The coordinator's page. Viewers get the totals only (no organisation, site or alert
    detail); scoped roles get their organisation's totals."""
    scope = Scope(caller, deps.cluster)
    is_viewer = caller.role == "viewer"
    now = deps.clock()
    cols = deps.live.columns()
    index = _index(request, cols)
    rows = index.rows(orgs=scope.orgs)
    sums = _SiteSums(index, cols, rows, now - int(deps.settings.api_live_stale_s * 1000))
    today: TodayTotals = await request.app.state.today.get()
    alerts = None if is_viewer else await _open_alerts(deps, scope, None)
    per_site: dict[str, list[AlertRecord]] = {}
    for a in alerts or ():
        per_site.setdefault(a.site or "", []).append(a)
    by_org_rows: dict[str, list[dict[str, object]]] = {}
    map_sites: list[dict[str, object]] = []
    for s in _sites_in(deps, scope, None, None):
        open_here = per_site.get(s.id, [])
        by_org_rows.setdefault(s.org, []).append(_site_row(s, sums, today, len(open_here)))
        if not is_viewer:
            worst = max(
                (a.severity for a in open_here),
                key=lambda s: _SEVERITY_RANK.get(s, -1),
                default=None,
            )
            map_sites.append(
                {
                    "site": s.id,
                    "org": s.org,
                    "name": s.name,
                    "lat": s.lat,
                    "lon": s.lon,
                    "open_alerts": len(open_here),
                    "worst_severity": worst,
                }
            )
    by_org: list[dict[str, object]] = []
    if not is_viewer:
        for o in deps.cluster.organisations:
            mine = by_org_rows.get(o.id)
            if mine:
                by_org.append({"org": o.id, "name": o.name, **_totals(mine)})
    site_rows = [r for rows_ in by_org_rows.values() for r in rows_]
    severities = None
    if alerts is not None:
        severities = dict(Counter(a.severity for a in alerts))
    elif is_viewer and deps.alerts is not None:
        counted = await deps.alerts.list_alerts(AlertFilter(state="firing", limit=100_000))
        severities = dict(Counter(a.severity for a in counted))
    t = deps.cluster.territory
    return _json(
        {
            "at_ms": now,
            "territory": t.id,
            "name": t.name,
            "timezone": t.timezone,
            "totals": _totals(site_rows),
            "by_org": by_org,
            "sites": map_sites,
            "open_alerts_by_severity": severities,
        }
    )
