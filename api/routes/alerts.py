"""Alerts (list, detail with audit trail, ack, assign) and silences, through `AlertPort`.

An alert belongs to the organisation in its `org` label; a scoped caller sees and changes
only those. A silence belongs to the organisation its matchers name (`org`, or the site's
organisation); one without either covers the whole territory and is for unscoped callers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ecocluster.api.alert_port import (
    AckRefused,
    AlertFilter,
    AlertNotFound,
    AlertPort,
    AlertRecord,
    AlertState,
    SilenceDraft,
    SilenceRecord,
    SilenceRejected,
)
from ecocluster.api.context import (
    AckCaller,
    AlertCaller,
    AssignCaller,
    Deps,
    SilenceCaller,
    alerts_of,
)
from ecocluster.api.deps import ApiDeps
from ecocluster.api.errors import BadParameter, Forbidden, NotFound, error_responses
from ecocluster.api.models import (
    AckBody,
    AlertDetailOut,
    AlertEventOut,
    AlertOut,
    AssignBody,
    SilenceIn,
    SilenceOut,
)
from ecocluster.api.routes.live import alert_out
from ecocluster.api.security import Scope
from ecocluster.api.timeq import parse_duration_ms, parse_time_ms
from ecocluster.api.tokens import Principal
from ecocluster.core.types import ID_PATTERN, MATCH_LABELS, Severity, is_valid_id

router = APIRouter(tags=["alerts"], responses=error_responses(401, 403, 404, 422, 429, 503))
IdQuery = Annotated[str | None, Query(pattern=f"^{ID_PATTERN}$")]
_MAX_SILENCE_MS = 90 * 86_400_000


def _detail(a: AlertRecord) -> AlertDetailOut:
    base = alert_out(a).model_dump()
    events = [
        AlertEventOut(at_ms=e.at_ms, kind=e.kind, by=e.by, channel=e.channel, detail=e.detail)
        for e in a.events
    ]
    return AlertDetailOut(**base, events=events)


async def _visible_alert(port: AlertPort, scope: Scope, alert_id: str) -> AlertRecord:
    if len(alert_id) > 128:
        raise NotFound("unknown alert", field="alert_id")
    try:
        record = await port.get_alert(alert_id)
    except AlertNotFound:
        raise NotFound(f"unknown alert {alert_id!r}", field="alert_id") from None
    if not scope.reaches(record.org):
        raise Forbidden("this alert is outside your scope")
    return record


@router.get("/alerts", summary="Alerts in your scope, newest first, filtered")
async def list_alerts(
    deps: Deps,
    caller: AlertCaller,
    state: AlertState | None = None,
    severity: Severity | None = None,
    org: IdQuery = None,
    site: IdQuery = None,
    rule: IdQuery = None,
    acknowledged: bool | None = None,
    since: Annotated[str | None, Query(max_length=40, description="updated since")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[AlertOut]:
    port = alerts_of(deps)
    scope = Scope(caller, deps.cluster)
    orgs = scope.orgs
    if org is not None:
        orgs = frozenset({scope.org(org)})
    if site is not None:
        scope.site(site)
    since_ms = None
    if since is not None:
        since_ms = parse_time_ms(since, "since", now_ms=deps.clock(), tz=deps.tz)
    flt = AlertFilter(
        orgs=orgs,
        state=state,
        severity=str(severity) if severity else None,
        site=site,
        rule=rule,
        acknowledged=acknowledged,
        since_ms=since_ms,
        limit=limit,
        offset=offset,
    )
    records = await port.list_alerts(flt)
    return [alert_out(a) for a in records if scope.reaches(a.org)]


@router.get("/alerts/{alert_id}", summary="One alert with its audit trail")
async def get_alert(alert_id: str, deps: Deps, caller: AlertCaller) -> AlertDetailOut:
    port = alerts_of(deps)
    return _detail(await _visible_alert(port, Scope(caller, deps.cluster), alert_id))


@router.post(
    "/alerts/{alert_id}/ack",
    summary="Acknowledge, with an optional comment",
    responses=error_responses(400),
)
async def ack_alert(alert_id: str, body: AckBody, deps: Deps, caller: AckCaller) -> AlertDetailOut:
    """Idempotent: acknowledging again keeps the first acknowledgement (who and when).
    Stops escalation and repeats."""
    port = alerts_of(deps)
    await _visible_alert(port, Scope(caller, deps.cluster), alert_id)
    try:
        record = await port.ack(alert_id, by=caller.who, comment=body.comment, channel="api")
    except AckRefused as exc:
        raise Forbidden(f"acknowledgement refused: {exc}") from None
    except AlertNotFound:
        raise NotFound(f"unknown alert {alert_id!r}", field="alert_id") from None
    return _detail(record)


@router.post(
    "/alerts/{alert_id}/assign",
    summary="Assign to a contact (or unassign)",
    responses=error_responses(400),
)
async def assign_alert(
    alert_id: str, body: AssignBody, deps: Deps, caller: AssignCaller
) -> AlertDetailOut:
    port = alerts_of(deps)
    scope = Scope(caller, deps.cluster)
    record = await _visible_alert(port, scope, alert_id)
    if body.assignee is not None:
        contact = deps.cluster.contact_by_id.get(body.assignee)
        if contact is None:
            raise BadParameter(f"unknown contact {body.assignee!r}", field="assignee")
        if scope.orgs is not None and contact.org not in scope.orgs and contact.org != record.org:
            raise Forbidden("that contact is outside your scope")
    try:
        record = await port.assign(alert_id, assignee=body.assignee, by=caller.who)
    except AckRefused as exc:
        raise Forbidden(f"assignment refused: {exc}") from None
    except AlertNotFound:
        raise NotFound(f"unknown alert {alert_id!r}", field="alert_id") from None
    return _detail(record)


# -- silences ------------------------------------------------------------------------------
def _silence_org(deps: ApiDeps, matchers: dict[str, str]) -> str | None:
    if "org" in matchers:
        return matchers["org"]
    if "site" in matchers:
        return deps.cluster.org_of_site(matchers["site"])
    return None


def _silence_out(s: SilenceRecord, now_ms: int) -> SilenceOut:
    return SilenceOut(
        id=s.id,
        matchers=dict(s.matchers),
        starts_ms=s.starts_ms,
        ends_ms=s.ends_ms,
        reason=s.reason,
        author=s.author,
        end_on_recovery=s.end_on_recovery,
        active=s.active_at(now_ms),
        expired_ms=s.expired_ms,
        expired_by=s.expired_by,
    )


def _silence_visible(deps: ApiDeps, scope: Scope, s: SilenceRecord) -> bool:
    org = _silence_org(deps, dict(s.matchers))
    return scope.orgs is None or (org is not None and org in scope.orgs)


@router.get("/silences", summary="Silences and maintenance windows in your scope")
async def list_silences(
    deps: Deps, caller: AlertCaller, include_expired: bool = False
) -> list[SilenceOut]:
    port = alerts_of(deps)
    scope = Scope(caller, deps.cluster)
    now = deps.clock()
    records = await port.list_silences(include_expired=include_expired)
    return [_silence_out(s, now) for s in records if _silence_visible(deps, scope, s)]


def _check_matchers(deps: ApiDeps, scope: Scope, matchers: dict[str, str]) -> None:
    for label, value in matchers.items():
        if label not in MATCH_LABELS:
            known = ", ".join(sorted(MATCH_LABELS))
            raise BadParameter(f"unknown label {label!r} (known: {known})", field="matchers")
        if not is_valid_id(value):
            raise BadParameter(f"invalid value {value[:40]!r} for {label}", field="matchers")
    if "org" in matchers:
        scope.org(matchers["org"])
    if "site" in matchers:
        site = scope.site(matchers["site"])
        if "org" in matchers and site.org != matchers["org"]:
            raise BadParameter("the site is not in that organisation", field="matchers")
    if scope.orgs is not None and _silence_org(deps, matchers) is None:
        raise Forbidden(
            "a silence you create must name your organisation (org) or one of its sites"
        )


@router.post(
    "/silences",
    status_code=201,
    summary="Create a silence (maintenance window)",
    responses=error_responses(400),
)
async def create_silence(body: SilenceIn, deps: Deps, caller: SilenceCaller) -> SilenceOut:
    port = alerts_of(deps)
    scope = Scope(caller, deps.cluster)
    _check_matchers(deps, scope, body.matchers)
    now = deps.clock()
    starts = parse_time_ms(body.starts, "starts", now_ms=now, tz=deps.tz)
    if (body.ends is None) == (body.duration is None):
        raise BadParameter("give exactly one of ends and duration", field="ends")
    if body.ends is not None:
        ends = parse_time_ms(body.ends, "ends", now_ms=now, tz=deps.tz)
    else:
        ends = starts + parse_duration_ms(body.duration or "", "duration")
    if ends <= starts:
        raise BadParameter("ends must be after starts", field="ends")
    if ends <= now:
        raise BadParameter("the silence would already be over", field="ends")
    if ends - starts > _MAX_SILENCE_MS:
        raise BadParameter("a silence lasts at most 90 days", field="ends")
    draft = SilenceDraft(
        matchers=dict(body.matchers),
        starts_ms=starts,
        ends_ms=ends,
        reason=body.reason.strip(),
        author=caller.who,
        end_on_recovery=body.end_on_recovery,
    )
    try:
        created = await port.create_silence(draft)
    except SilenceRejected as exc:
        raise BadParameter(f"silence refused: {exc}", field="matchers") from None
    return _silence_out(created, now)


async def _visible_silence(
    deps: ApiDeps, caller: Principal, silence_id: str
) -> tuple[AlertPort, SilenceRecord]:
    port = alerts_of(deps)
    if len(silence_id) > 128:
        raise NotFound("unknown silence", field="silence_id")
    try:
        record = await port.get_silence(silence_id)
    except AlertNotFound:
        raise NotFound(f"unknown silence {silence_id!r}", field="silence_id") from None
    if not _silence_visible(deps, Scope(caller, deps.cluster), record):
        raise Forbidden("this silence is outside your scope")
    return port, record


@router.get("/silences/{silence_id}", summary="One silence")
async def get_silence(silence_id: str, deps: Deps, caller: AlertCaller) -> SilenceOut:
    _port, record = await _visible_silence(deps, caller, silence_id)
    return _silence_out(record, deps.clock())


@router.delete("/silences/{silence_id}", summary="Expire a silence now")
async def expire_silence(silence_id: str, deps: Deps, caller: SilenceCaller) -> SilenceOut:
    port, _record = await _visible_silence(deps, caller, silence_id)
    try:
        record = await port.expire_silence(silence_id, by=caller.who)
    except AlertNotFound:
        raise NotFound(f"unknown silence {silence_id!r}", field="silence_id") from None
    return _silence_out(record, deps.clock())
