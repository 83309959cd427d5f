"""An in-memory `AlertPort`: a real, small implementation for the API's tests (httpx's
`MockTransport` idea), with ack links signed by HMAC and "ACK <code>" SMS replies."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
import re
from collections.abc import Callable, Mapping

import orjson

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
)

_REPLY = re.compile(r"^\s*(ACK|OK|RISOLTO)\s+(\d{4})\s*$", re.I)


class MemoryAlerts:
    def __init__(self, clock: Callable[[], int], secret: bytes = b"test-secret") -> None:
        self.clock = clock
        self.secret = secret
        self.alerts: dict[str, AlertRecord] = {}
        self.silences: dict[str, SilenceRecord] = {}
        self.phones: dict[str, str] = {}  # phone → contact id
        self._listeners: list[Callable[[AlertRecord], None]] = []
        self._ids = itertools.count(1)
        self.down = False

    # -- test helpers ----------------------------------------------------------------------
    def fire(
        self,
        rule: str,
        labels: Mapping[str, str],
        *,
        severity: str = "warning",
        value: float = 1.0,
        threshold: float = 0.0,
        at_ms: int | None = None,
    ) -> AlertRecord:
        n = next(self._ids)
        at = self.clock() if at_ms is None else at_ms
        record = AlertRecord(
            id=f"al{n:04d}{labels.get('site', '')[:4]}",
            code=f"{4800 + n}",
            rule=rule,
            severity=severity,
            state="firing",
            labels=dict(labels) | {"severity": severity},
            value=value,
            threshold=threshold,
            started_ms=at,
            updated_ms=at,
            events=(AlertEvent(at, "fired"),),
        )
        self._put(record)
        return record

    def resolve(self, alert_id: str) -> AlertRecord:
        now = self.clock()
        a = self.alerts[alert_id]
        return self._put(
            dataclasses.replace(
                a,
                state="resolved",
                resolved_ms=now,
                updated_ms=now,
                events=(*a.events, AlertEvent(now, "resolved")),
            )
        )

    def link_for(self, alert_id: str, contact: str | None = None, ttl_ms: int = 3_600_000) -> str:
        expires = self.clock() + ttl_ms
        body = f"{alert_id}.{contact or ''}.{expires}"
        sig = hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{body}.{sig}"

    def _put(self, record: AlertRecord) -> AlertRecord:
        self.alerts[record.id] = record
        for listener in list(self._listeners):
            listener(record)
        return record

    # -- the port --------------------------------------------------------------------------
    async def list_alerts(self, flt: AlertFilter) -> list[AlertRecord]:
        self._check()
        out = [
            a
            for a in self.alerts.values()
            if (flt.orgs is None or a.org in flt.orgs)
            and (flt.state is None or a.state == flt.state)
            and (flt.severity is None or a.severity == flt.severity)
            and (flt.site is None or a.site == flt.site)
            and (flt.rule is None or a.rule == flt.rule)
            and (flt.acknowledged is None or (a.acked_by is not None) == flt.acknowledged)
            and (flt.since_ms is None or a.updated_ms >= flt.since_ms)
        ]
        out.sort(key=lambda a: a.updated_ms, reverse=True)
        return out[flt.offset : flt.offset + flt.limit]

    async def get_alert(self, alert_id: str) -> AlertRecord:
        self._check()
        try:
            return self.alerts[alert_id]
        except KeyError:
            raise AlertNotFound(alert_id) from None

    async def ack(
        self, alert_id: str, *, by: str, comment: str | None, channel: str = "api"
    ) -> AlertRecord:
        a = await self.get_alert(alert_id)
        if a.acked_by is not None:
            return a
        now = self.clock()
        return self._put(
            dataclasses.replace(
                a,
                acked_by=by,
                acked_ms=now,
                ack_comment=comment,
                ack_channel=channel,
                updated_ms=now,
                events=(*a.events, AlertEvent(now, "acked", by, channel, comment)),
            )
        )

    async def assign(self, alert_id: str, *, assignee: str | None, by: str) -> AlertRecord:
        a = await self.get_alert(alert_id)
        now = self.clock()
        return self._put(
            dataclasses.replace(
                a,
                assignee=assignee,
                updated_ms=now,
                events=(*a.events, AlertEvent(now, "assigned", by, "api", assignee)),
            )
        )

    async def list_silences(self, *, include_expired: bool = False) -> list[SilenceRecord]:
        self._check()
        now = self.clock()
        return [
            s
            for s in self.silences.values()
            if include_expired or (s.expired_ms is None and s.ends_ms > now)
        ]

    async def create_silence(self, draft: SilenceDraft) -> SilenceRecord:
        self._check()
        sid = f"si{next(self._ids):04d}"
        record = SilenceRecord(
            sid,
            dict(draft.matchers),
            draft.starts_ms,
            draft.ends_ms,
            draft.reason,
            draft.author,
            draft.end_on_recovery,
        )
        self.silences[sid] = record
        return record

    async def get_silence(self, silence_id: str) -> SilenceRecord:
        self._check()
        try:
            return self.silences[silence_id]
        except KeyError:
            raise AlertNotFound(silence_id) from None

    async def expire_silence(self, silence_id: str, *, by: str) -> SilenceRecord:
        s = await self.get_silence(silence_id)
        if s.expired_ms is None:
            s = dataclasses.replace(s, expired_ms=self.clock(), expired_by=by)
            self.silences[silence_id] = s
        return s

    def verify_ack_link(self, token: str) -> AckLink:
        parts = token.split(".")
        if len(parts) != 4 or not parts[2].isdigit():
            raise AckRefused("malformed link")
        body = ".".join(parts[:3])
        sig = hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(sig, parts[3]):
            raise AckRefused("bad signature")
        if int(parts[2]) < self.clock():
            raise AckRefused("link expired")
        return AckLink(parts[0], parts[1] or None, int(parts[2]))

    async def ack_by_link(self, token: str, *, comment: str | None = None) -> AlertRecord:
        link = self.verify_ack_link(token)
        return await self.ack(
            link.alert_id, by=link.contact or "link", comment=comment, channel="link"
        )

    async def handle_inbound(
        self, gateway: str, body: bytes, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> InboundResult:
        if gateway != "generic":
            raise InboundRejected(f"unknown gateway {gateway!r}")
        try:
            doc = orjson.loads(body)
            sender, text = str(doc["from"]), str(doc["text"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise InboundRejected("expected JSON {from, text}") from None
        contact = self.phones.get(sender)
        if contact is None:
            return InboundResult(False, "unknown sender")
        match = _REPLY.match(text)
        if match is None:
            return InboundResult(False, "not a reply: ACK <code>")
        found = [a for a in self.alerts.values() if a.code == match.group(2)]
        if not found:
            return InboundResult(False, f"no alert with code {match.group(2)}")
        a = await self.ack(found[0].id, by=contact, comment=None, channel="sms")
        return InboundResult(True, "acknowledged", a.id)

    async def ping(self) -> None:
        self._check()

    def subscribe(self, listener: Callable[[AlertRecord], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("alert database is down")
