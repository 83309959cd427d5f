"""The live stream: Server-Sent Events of readings, device status and alert changes.

    GET /api/v1/stream?site=cerreto-hotel        Authorization: Bearer …
    id: 3f9a1c-1042
    event: readings
    data: {"readings": [{"org": "parco", "site": "cerreto-hotel", "meter": "em-01", …}]}

Each event carries only rows of the caller's scope (and of the requested organisation or
site). A client that reconnects with `Last-Event-ID` receives what it missed; when the
server no longer holds that far back (or restarted), it gets `event: reset` first and
should reload `/live`. Browsers' `EventSource` cannot send a bearer header: the dashboard
reads the stream with `fetch` and sends `Last-Event-ID` itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from ecocluster.api.context import DataCaller, Deps
from ecocluster.api.errors import BadParameter, error_responses
from ecocluster.api.events import Event, EventHub, Subscription
from ecocluster.api.security import Scope
from ecocluster.core.types import ID_PATTERN

router = APIRouter(tags=["live"], responses=error_responses(401, 403, 404, 422, 429))
_KINDS = frozenset({"readings", "alert", "status"})
_PAYLOAD_KEY = {"readings": "readings", "alert": "alerts", "status": "statuses"}


def _sse(hub: EventHub, event: Event, rows: Sequence[object]) -> ServerSentEvent:
    data = orjson.dumps({_PAYLOAD_KEY[event.kind]: list(rows)}).decode()
    return ServerSentEvent(data=data, event=event.kind, id=hub.event_id(event))


async def _events(
    request: Request, hub: EventHub, sub: Subscription, last_event_id: str | None
) -> AsyncIterator[ServerSentEvent]:
    try:
        reset, missed = hub.missed(last_event_id)
        if reset:
            yield ServerSentEvent(data="{}", event="reset", retry=2000)
        replayed = 0
        for event in missed:
            replayed = event.seq
            rows = sub.select(event)
            if rows:
                yield _sse(hub, event, rows)
        yield ServerSentEvent(data="{}", event="ready", retry=2000)
        while True:
            queued = await sub.queue.get()
            if queued is None:
                return
            event = queued
            if sub.overflowed:
                while not sub.queue.empty():
                    sub.queue.get_nowait()
                sub.overflowed = False
                yield ServerSentEvent(data="{}", event="reset")
                continue
            if event.seq <= replayed:
                continue
            rows = sub.select(event)
            if rows:
                yield _sse(hub, event, rows)
    finally:
        hub.unsubscribe(sub)
        request.app.state.api_metrics.streams.dec()


@router.get(
    "/stream",
    summary="Live readings, device status and alert changes (Server-Sent Events)",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An event stream."}},
)
async def stream(
    request: Request,
    deps: Deps,
    caller: DataCaller,
    org: Annotated[str | None, Query(pattern=f"^{ID_PATTERN}$")] = None,
    site: Annotated[str | None, Query(pattern=f"^{ID_PATTERN}$")] = None,
    kinds: Annotated[str, Query(max_length=40, description="comma-separated")] = (
        "readings,alert,status"
    ),
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> EventSourceResponse:
    scope = Scope(caller, deps.cluster)
    orgs = scope.orgs
    if org is not None:
        orgs = frozenset({scope.org(org)})
    if site is not None:
        scope.site(site)
    wanted = frozenset(k.strip() for k in kinds.split(",") if k.strip())
    if not wanted or not wanted <= _KINDS:
        raise BadParameter(f"kinds must be among {', '.join(sorted(_KINDS))}", field="kinds")
    sub = deps.hub.subscribe(orgs=orgs, sites=frozenset({site}) if site else None, kinds=wanted)
    request.app.state.api_metrics.streams.inc()
    return EventSourceResponse(
        _events(request, deps.hub, sub, last_event_id),
        ping=15,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        shutdown_event=request.app.state.shutdown_event,
    )
