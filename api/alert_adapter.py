"""`ecocluster.alerts.AlertService` behind the API's `AlertPort`.

    port = ServiceAlerts(alert_service, settings)       # the node wires this into ApiDeps

Ids cross as text (the service's are integers); audit entries become `AlertEvent`s with
their detail flattened to one line; silences' Alertmanager matcher strings (`site="x"`)
become a label → value mapping (`=~`, `!=`, `!~` keep their operator in the value, so such
a silence names no organisation and only unscoped callers see it). The service has no
change feed, so `subscribe` polls the newest alerts once a second (and acts at once on the
changes made through this adapter).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from ecocluster.alerts import replies
from ecocluster.alerts.links import InvalidAckLink
from ecocluster.alerts.records import AlertDetail
from ecocluster.alerts.records import AlertRecord as ServiceRecord
from ecocluster.alerts.service import AckRefused as ServiceAckRefused
from ecocluster.alerts.service import AlertNotFound as ServiceNotFound
from ecocluster.alerts.service import AlertService, SilenceError
from ecocluster.api.alert_port import (
    AckLink,
    AckRefused,
    AlertEvent,
    AlertFilter,
    AlertNotFound,
    AlertRecord,
    InboundRejected,
    InboundResult,
    SilenceDraft,
    SilenceRecord,
    SilenceRejected,
)
from ecocluster.core.settings import Settings

__all__ = ["ServiceAlerts"]

_log = logging.getLogger(__name__)
_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')
_POLL_S = 1.0


def _ref(alert_id: str) -> int:
    if not alert_id.isdigit() or len(alert_id) > 18:
        raise AlertNotFound(alert_id)
    return int(alert_id)


def _detail_text(detail: Mapping[str, Any]) -> str | None:
    if not detail:
        return None
    if set(detail) == {"comment"}:
        return None if detail["comment"] is None else str(detail["comment"])
    return ", ".join(f"{k}={v}" for k, v in detail.items() if v is not None) or None


def _record(a: ServiceRecord, detail: AlertDetail | None = None) -> AlertRecord:
    events: tuple[AlertEvent, ...] = ()
    if detail is not None:
        events = tuple(
            AlertEvent(e.at_ms, e.event, e.actor, e.channel, _detail_text(e.detail))
            for e in detail.audit
        )
    return AlertRecord(
        id=str(a.id),
        code=a.code,
        rule=a.rule,
        severity=a.severity,
        state="resolved" if a.state == "resolved" else "firing",
        labels=dict(a.labels),
        value=a.value,
        threshold=a.threshold,
        started_ms=a.starts_ms,
        updated_ms=a.updated_ms,
        resolved_ms=a.ends_ms if a.state == "resolved" else None,
        acked_by=a.acked_by,
        acked_ms=a.acked_ms,
        ack_comment=a.ack_comment,
        ack_channel=a.ack_channel,
        assignee=a.assignee,
        silenced=a.silenced_by is not None,
        description=a.description,
        events=events,
    )


def _matchers(texts: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for text in texts:
        m = _MATCHER.match(text)
        if m is None:
            out[text] = ""
            continue
        label, op, value = m.groups()
        out[label] = value if op == "=" else f"{op}{value}"
    return out


def _silence(s: Any) -> SilenceRecord:
    return SilenceRecord(
        id=s.id,
        matchers=_matchers(s.matchers),
        starts_ms=s.starts_ms,
        ends_ms=s.ends_ms,
        reason=s.reason,
        author=s.author,
        end_on_recovery=s.end_on_resolve,
        expired_ms=s.expired_ms,
        expired_by=s.expired_by,
    )


class ServiceAlerts:
    def __init__(self, service: AlertService, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self._listeners: list[Callable[[AlertRecord], None]] = []
        self._poller: asyncio.Task[None] | None = None
        self._seen_ms = -1

    # -- reading ---------------------------------------------------------------------------
    async def list_alerts(self, flt: AlertFilter) -> list[AlertRecord]:
        org = next(iter(flt.orgs)) if flt.orgs is not None and len(flt.orgs) == 1 else None
        if flt.orgs is not None and not flt.orgs:
            return []
        found = await self.service.list_alerts(
            state=flt.state,
            severity=flt.severity,
            org=org,
            site=flt.site,
            rule=flt.rule,
            acknowledged=flt.acknowledged,
            limit=flt.limit + flt.offset if flt.since_ms else flt.limit,
            offset=0 if flt.since_ms else flt.offset,
        )
        records = [_record(a) for a in found]
        if flt.orgs is not None:
            records = [r for r in records if r.org in flt.orgs]
        if flt.since_ms is not None:
            records = [r for r in records if r.updated_ms >= flt.since_ms]
            records = records[flt.offset : flt.offset + flt.limit]
        return records

    async def get_alert(self, alert_id: str) -> AlertRecord:
        try:
            detail = await self.service.get_alert(_ref(alert_id))
        except ServiceNotFound:
            raise AlertNotFound(alert_id) from None
        return _record(detail.alert, detail)

    # -- acting ----------------------------------------------------------------------------
    async def ack(
        self, alert_id: str, *, by: str, comment: str | None, channel: str = "api"
    ) -> AlertRecord:
        try:
            await self.service.ack(_ref(alert_id), by=by, comment=comment, channel=channel)
        except ServiceNotFound:
            raise AlertNotFound(alert_id) from None
        except ServiceAckRefused as exc:
            raise AckRefused(str(exc)) from None
        return self._changed(await self.get_alert(alert_id))

    async def assign(self, alert_id: str, *, assignee: str | None, by: str) -> AlertRecord:
        try:
            await self.service.assign(_ref(alert_id), assignee=assignee, by=by)
        except ServiceNotFound:
            raise AlertNotFound(alert_id) from None
        return self._changed(await self.get_alert(alert_id))

    async def list_silences(self, *, include_expired: bool = False) -> list[SilenceRecord]:
        found = await self.service.list_silences(active_only=False)
        now = self.service.clock.now_ms()
        out = [_silence(s) for s in found]
        if not include_expired:
            out = [s for s in out if s.expired_ms is None and s.ends_ms > now]
        return out

    async def create_silence(self, draft: SilenceDraft) -> SilenceRecord:
        texts = [f'{k}="{v}"' for k, v in draft.matchers.items()]
        try:
            created = await self.service.add_silence(
                texts,
                author=draft.author,
                reason=draft.reason,
                starts_ms=draft.starts_ms,
                ends_ms=draft.ends_ms,
                end_on_resolve=draft.end_on_recovery,
            )
        except SilenceError as exc:
            raise SilenceRejected(str(exc)) from None
        return _silence(created)

    async def get_silence(self, silence_id: str) -> SilenceRecord:
        for s in await self.service.list_silences(active_only=False):
            if s.id == silence_id:
                return _silence(s)
        raise AlertNotFound(silence_id)

    async def expire_silence(self, silence_id: str, *, by: str) -> SilenceRecord:
        try:
            return _silence(await self.service.expire_silence(silence_id, by=by))
        except SilenceError:
            raise AlertNotFound(silence_id) from None

    # -- acks from outside -----------------------------------------------------------------
    def verify_ack_link(self, token: str) -> AckLink:
        try:
            claim = self.service.verify_ack_link(token)
        except InvalidAckLink as exc:
            raise AckRefused(str(exc)) from None
        return AckLink(str(claim.alert_id), claim.contact_id, claim.expires_ms)

    async def ack_by_link(self, token: str, *, comment: str | None = None) -> AlertRecord:
        try:
            result = await self.service.ack_by_link(token, comment=comment)
        except (InvalidAckLink, ServiceAckRefused) as exc:
            raise AckRefused(str(exc)) from None
        except ServiceNotFound:
            raise AlertNotFound("the alert of this link") from None
        return self._changed(await self.get_alert(str(result.alert.id)))

    async def handle_inbound(
        self, gateway: str, body: bytes, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> InboundResult:
        message = self._parse(gateway, body, headers, query)
        if message is None:
            return InboundResult(True, "ignored: not an incoming message")
        outcome = await self.service.handle_reply(message)
        alert_id = str(outcome.alert.id) if outcome.alert is not None else None
        if outcome.ok and alert_id is not None:
            with contextlib.suppress(AlertNotFound):
                self._changed(await self.get_alert(alert_id))
        return InboundResult(outcome.ok, outcome.message, alert_id)

    def _parse(
        self, gateway: str, body: bytes, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> replies.InboundMessage | None:
        s = self.settings

        def secret(value: Any) -> str | None:
            return value.get_secret_value() if value is not None else None

        try:
            if gateway == "smseagle":
                params = dict(query)
                if body:
                    from urllib.parse import parse_qsl

                    params.update(parse_qsl(body.decode("utf-8", "replace")))
                return replies.parse_smseagle(params, apikey=secret(s.alert_smseagle_apikey))
            if gateway in ("smsgate", "android"):
                return replies.parse_smsgate(
                    body, headers, signing_key=secret(s.alert_smsgate_signing_key)
                )
            if gateway == "httpsms":
                return replies.parse_httpsms(
                    body, headers, signing_key=secret(s.alert_httpsms_signing_key)
                )
        except replies.ReplyRejected as exc:
            raise InboundRejected(str(exc)) from None
        raise InboundRejected(f"unknown gateway {gateway!r} (smseagle, smsgate, httpsms)")

    async def ping(self) -> None:
        await self.service.list_alerts(limit=1)

    # -- change feed -----------------------------------------------------------------------
    def subscribe(self, listener: Callable[[AlertRecord], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        if self._poller is None or self._poller.done():
            with contextlib.suppress(RuntimeError):  # no running loop: acks still notify
                self._poller = asyncio.get_running_loop().create_task(
                    self._poll(), name="api.alerts.poll"
                )

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)
            if not self._listeners and self._poller is not None:
                self._poller.cancel()

        return unsubscribe

    def _changed(self, record: AlertRecord) -> AlertRecord:
        self._seen_ms = max(self._seen_ms, record.updated_ms)
        for listener in list(self._listeners):
            listener(record)
        return record

    async def _poll(self) -> None:
        if self._seen_ms < 0:
            with contextlib.suppress(Exception):
                newest = await self.service.list_alerts(limit=1)
                self._seen_ms = newest[0].updated_ms if newest else 0
        while True:
            await asyncio.sleep(_POLL_S)
            try:
                found = await self.service.list_alerts(limit=200)
            except Exception as exc:  # the database is away: readiness says so
                _log.debug("alert poll failed: %s", exc)
                continue
            fresh = [a for a in found if a.updated_ms > self._seen_ms]
            for a in sorted(fresh, key=lambda a: a.updated_ms):
                self._changed(_record(a))
