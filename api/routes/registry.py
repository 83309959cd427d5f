"""Organisations, sites and meters of the territory, filtered to the caller's scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ecocluster.api.context import AnyCaller, DataCaller, Deps
from ecocluster.api.errors import error_responses
from ecocluster.api.models import MeOut, MeterOut, OrganisationOut, SiteOut
from ecocluster.api.security import Scope
from ecocluster.core.cluster import Meter, Site
from ecocluster.core.registry import Cluster
from ecocluster.core.types import ID_PATTERN, Quantity, SiteCategory

router = APIRouter(tags=["registry"], responses=error_responses(401, 403, 404, 422, 429))
IdQuery = Annotated[str | None, Query(pattern=f"^{ID_PATTERN}$")]


def _site_out(cluster: Cluster, site: Site) -> SiteOut:
    return SiteOut(
        id=site.id,
        org=site.org,
        name=site.name,
        category=site.category,
        lat=site.lat,
        lon=site.lon,
        altitude_m=site.altitude_m,
        meters=len(cluster.meters_of(site.id)),
    )


def _meter_out(cluster: Cluster, meter: Meter) -> MeterOut:
    return MeterOut(
        id=meter.id,
        site=meter.site,
        org=cluster.site_by_id[meter.site].org,
        name=meter.name,
        quantities=list(meter.quantities),
        interval_s=meter.interval.total_seconds() if meter.interval else None,
    )


@router.get("/me", summary="Who this token is: role, organisation, territory")
async def me(deps: Deps, caller: AnyCaller) -> MeOut:
    t = deps.cluster.territory
    return MeOut(
        name=caller.name,
        role=caller.role,
        org=caller.org,
        contact=caller.contact,
        territory=t.id,
        territory_name=t.name,
        timezone=t.timezone,
    )


@router.get("/organisations", summary="Organisations in your scope")
async def organisations(deps: Deps, caller: DataCaller) -> list[OrganisationOut]:
    scope = Scope(caller, deps.cluster)
    return [
        OrganisationOut(id=o.id, name=o.name, kind=o.kind, sites=len(deps.cluster.sites_of(o.id)))
        for o in deps.cluster.organisations
        if scope.reaches(o.id)
    ]


@router.get("/organisations/{org}", summary="One organisation")
async def organisation(org: str, deps: Deps, caller: DataCaller) -> OrganisationOut:
    Scope(caller, deps.cluster).org(org)
    o = deps.cluster.org_by_id[org]
    return OrganisationOut(id=o.id, name=o.name, kind=o.kind, sites=len(deps.cluster.sites_of(org)))


@router.get("/sites", summary="Sites in your scope, filtered")
async def sites(
    deps: Deps,
    caller: DataCaller,
    org: IdQuery = None,
    category: SiteCategory | None = None,
) -> list[SiteOut]:
    scope = Scope(caller, deps.cluster)
    if org is not None:
        scope.org(org)
    return [
        _site_out(deps.cluster, s)
        for s in deps.cluster.sites
        if scope.reaches(s.org)
        and (org is None or s.org == org)
        and (category is None or s.category == category)
    ]


@router.get("/sites/{site}", summary="One site")
async def site(site: str, deps: Deps, caller: DataCaller) -> SiteOut:
    return _site_out(deps.cluster, Scope(caller, deps.cluster).site(site))


@router.get("/meters", summary="Meters in your scope, filtered")
async def meters(
    deps: Deps,
    caller: DataCaller,
    org: IdQuery = None,
    site: IdQuery = None,
    quantity: Quantity | None = None,
) -> list[MeterOut]:
    scope = Scope(caller, deps.cluster)
    if org is not None:
        scope.org(org)
    if site is not None:
        scope.site(site)
    cluster = deps.cluster
    out = []
    for m in cluster.meters:
        m_org = cluster.site_by_id[m.site].org
        if not scope.reaches(m_org) or (org is not None and m_org != org):
            continue
        if (site is not None and m.site != site) or (
            quantity is not None and quantity not in m.quantities
        ):
            continue
        out.append(_meter_out(cluster, m))
    return out


@router.get("/sites/{site}/meters/{meter}", summary="One meter")
async def meter(site: str, meter: str, deps: Deps, caller: DataCaller) -> MeterOut:
    return _meter_out(deps.cluster, Scope(caller, deps.cluster).meter(site, meter))
