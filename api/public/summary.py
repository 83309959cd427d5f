"""The public summary (`GET /api/v1/public/summary`): the JSON the public page renders.

    body = await build_summary(deps, policy, now_ms=now)

Shape: `/work/notes/public-contract.md` (territory, generated_at, licence, stations with
EAQI, exceedances and a 48-hour chart, consumption month to date, public alerts). Both
languages are in the body (`text_it`, `text_en`), so the answer does not vary with
Accept-Language and one cached copy serves everyone. With the alert service down the
summary still answers (air and consumption) with no alerts, and says so in the log.
"""

from __future__ import annotations

import logging
from typing import Any

from ecocluster.api.deps import ApiDeps
from ecocluster.api.errors import Unavailable
from ecocluster.api.public.air import iso_ms, load_air, pollutant_key
from ecocluster.api.public.alerts import public_alerts, strip_private
from ecocluster.api.public.consumption import month_to_date
from ecocluster.api.public.policy import PublicPolicy
from ecocluster.core.settings import Settings

__all__ = ["build_summary", "licence_of"]

_log = logging.getLogger(__name__)


def licence_of(settings: Settings) -> dict[str, Any]:
    return {
        "id": settings.public_licence_id,
        "name": settings.public_licence_name,
        "url": settings.public_licence_url,
        "attribution": settings.public_licence_attribution,
    }


def _alert_exceedances(line: dict[str, Any]) -> dict[str, Any] | None:
    if line["state"] != "open" or line["_value"] is None or line["_threshold"] is None:
        return None
    quantity = line["_quantity"] or ""
    return {
        "pollutant": pollutant_key(quantity),
        "kind": "alert_rule",
        "value": round(float(line["_value"]), 3),
        "limit": float(line["_threshold"]),
        "averaging": str(line["_window"] or "rule"),
        "since": line["since"],
    }


async def build_summary(deps: ApiDeps, policy: PublicPolicy, *, now_ms: int) -> dict[str, Any]:
    cluster, settings = deps.cluster, deps.settings
    stations = policy.air_stations
    air = await load_air(cluster, deps.store, stations, now_ms=now_ms)
    try:
        days = settings.public_alert_days
        lines = await public_alerts(deps.alerts, policy, now_ms=now_ms, days=days)
    except Unavailable as exc:  # the alert database is down: air and consumption still show
        _log.warning("public summary without alerts: %s", exc.message)
        lines = []
    station_rows = []
    for site in stations:
        exceedances = air.exceedances(site)
        for line in lines:
            if line["_site"] == site.id:
                extra = _alert_exceedances(line)
                if extra is not None:
                    exceedances.append(extra)
        station_rows.append(
            {
                "id": site.id,
                "name": site.name,
                "lat": site.lat,
                "lon": site.lon,
                "altitude_m": site.altitude_m,
                "eaqi": air.eaqi(site),
                "exceedances": exceedances,
                "chart": air.chart(site),
            }
        )
    t = cluster.territory
    return {
        "territory": {"id": t.id, "name": t.name, "timezone": t.timezone},
        "generated_at": iso_ms(now_ms),
        "licence": licence_of(settings),
        "stations": station_rows,
        "consumption": await month_to_date(cluster, deps.store, now_ms=now_ms),
        "alerts": strip_private(lines),
    }
