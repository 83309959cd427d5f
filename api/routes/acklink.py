"""The signed one-click acknowledgement link, and the SMS gateways' inbound webhooks.

A GET of the link only shows a confirmation page: link-preview bots (chat apps, mail
scanners) fetch every URL they see, so a GET that acknowledged would ack alerts nobody read.
The page's button POSTs to the same URL, which acknowledges. The token in the URL is the
credential (an HMAC the alert service signed, with an expiry): no bearer token needed, and
the pages are never cached, indexed or sent as a referrer.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from ecocluster.api.alert_port import AckRefused, AlertNotFound, InboundRejected
from ecocluster.api.context import Deps, alerts_of
from ecocluster.api.errors import ApiError, BadParameter, NotFound, error_responses
from ecocluster.api.models import InboundOut

pages = APIRouter(tags=["ack link"])
inbound = APIRouter(tags=["inbound"], responses=error_responses(400, 404, 422, 503))

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}
_TEXT = {
    "it": {
        "title": "Conferma presa in carico",
        "ask": "Confermi la presa in carico di questo allarme?",
        "comment": "Commento (facoltativo)",
        "button": "Confermo la presa in carico",
        "done": "Allarme preso in carico",
        "by": "da",
        "bad": "Link non valido o scaduto",
        "since": "dal",
    },
    "en": {
        "title": "Acknowledge alert",
        "ask": "Acknowledge this alert?",
        "comment": "Comment (optional)",
        "button": "Acknowledge",
        "done": "Alert acknowledged",
        "by": "by",
        "bad": "Invalid or expired link",
        "since": "since",
    },
}
_STYLE = (
    "body{font:16px/1.4 system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}"
    "button{font-size:1.1rem;padding:.7rem 1.2rem;background:#0a5;color:#fff;border:0;"
    "border-radius:.4rem}textarea{width:100%;min-height:4rem}.k{color:#555}"
)


def _lang(request: Request) -> str:
    accept = request.headers.get("accept-language", "it").lower()
    return "en" if accept.startswith("en") else "it"


def _page(lang: str, title: str, body: str, status: int = 200) -> HTMLResponse:
    doc = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )
    return HTMLResponse(doc, status_code=status, headers=_HEADERS)


def _when(ms: int, deps: Deps) -> str:
    return datetime.fromtimestamp(ms / 1000, deps.tz).strftime("%Y-%m-%d %H:%M")


_PAGE_ERRORS: dict[int | str, dict[str, object]] = {
    403: {"content": {"text/html": {}}, "description": "Invalid or expired link (page)."},
    404: {"content": {"text/html": {}}, "description": "Invalid or expired link (page)."},
    503: {"description": "No alert service in this node."},
}


@pages.get(
    "/a/{token}",
    response_class=HTMLResponse,
    summary="Confirmation page (no ack)",
    responses=_PAGE_ERRORS,
)
async def ack_page(token: str, request: Request, deps: Deps) -> HTMLResponse:
    t = _TEXT[_lang(request)]
    port = alerts_of(deps)
    try:
        link = port.verify_ack_link(token)
        alert = await port.get_alert(link.alert_id)
    except (AckRefused, AlertNotFound, ValueError):
        return _page(_lang(request), t["bad"], f"<h1>{t['bad']}</h1>", 404)
    e = html.escape
    site = deps.cluster.site_by_id.get(alert.site or "")
    where = e(site.name if site else (alert.site or ""))
    acked = ""
    if alert.acked_by:
        acked = f"<p>✔ {t['done']} {t['by']} <b>{e(alert.acked_by)}</b></p>"
    body = (
        f"<h1>{e(t['title'])}</h1><p><b>{e(alert.severity.upper())}</b> {e(alert.rule)} — "
        f"{where}</p><p class=k>{t['since']} {_when(alert.started_ms, deps)} · "
        f"code {e(alert.code)}</p>{acked}<p>{t['ask']}</p>"
        f'<form method="post"><label>{t["comment"]}<br><textarea name="comment" maxlength="500">'
        f'</textarea></label><p><button type="submit">{t["button"]}</button></p></form>'
    )
    return _page(_lang(request), t["title"], body)


@pages.post(
    "/a/{token}",
    response_class=HTMLResponse,
    summary="Acknowledge by signed link",
    responses=_PAGE_ERRORS,
)
async def ack_by_link(
    token: str,
    request: Request,
    deps: Deps,
    comment: Annotated[str | None, Form(max_length=500)] = None,
) -> HTMLResponse:
    t = _TEXT[_lang(request)]
    port = alerts_of(deps)
    try:
        alert = await port.ack_by_link(token, comment=comment or None)
    except (AckRefused, AlertNotFound, ValueError):
        return _page(_lang(request), t["bad"], f"<h1>{t['bad']}</h1>", 403)
    e = html.escape
    body = (
        f"<h1>✔ {t['done']}</h1><p><b>{e(alert.severity.upper())}</b> {e(alert.rule)} — "
        f"{e(alert.site or '')}</p><p>{t['by']} <b>{e(alert.acked_by or '')}</b>, "
        f"{_when(alert.acked_ms or deps.clock(), deps)}</p>"
    )
    return _page(_lang(request), t["done"], body)


_MAX_INBOUND = 64 * 1024


@inbound.post(
    "/inbound/sms/{gateway}",
    summary="An SMS gateway's incoming-message webhook (ACK 4821, OK 4821, RISOLTO 4821)",
)
async def inbound_sms(gateway: str, request: Request, deps: Deps) -> InboundOut:
    """For SMSEagle's callback URL, the Android SMS Gateway app's `sms:received` webhook and
    httpSMS's signed `message.phone.received`: the alert service checks the signature or
    shared secret, parses the reply and the sender, and acknowledges within its scope."""
    if not gateway.isascii() or not gateway.replace("-", "").isalnum() or len(gateway) > 32:
        raise NotFound(f"unknown gateway {gateway[:32]!r}", field="gateway")
    body = await request.body()
    if len(body) > _MAX_INBOUND:
        raise BadParameter("the message body is larger than 64 KiB", field="body")
    port = alerts_of(deps)
    try:
        result = await port.handle_inbound(
            gateway, body, dict(request.headers), dict(request.query_params)
        )
    except InboundRejected as exc:
        raise _Rejected(f"inbound message refused: {exc}") from None
    return InboundOut(accepted=result.accepted, message=result.message, alert_id=result.alert_id)


class _Rejected(ApiError):
    status, code = 400, "inbound_rejected"
