"""Sending one message through one Apprise URL, and what a URL says about its channel.

One `Apprise` object per target URL (cached), so each outcome is known per channel. The
URL is a secret: it never appears in a log line, an error or a returned value; errors
carry the channel's index and scheme only, with Apprise's own log text scrubbed of every
part of the URL.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

import apprise
from apprise.attachment.memory import AttachMemory

__all__ = [
    "ChannelKind",
    "Outgoing",
    "SendResult",
    "channel_kind",
    "identities",
    "prepare",
    "scheme_of",
    "send",
]

_log = logging.getLogger(__name__)
ChannelKind = Literal["email", "sms", "chat"]
_EMAIL = {"mailto", "mailtos", "email", "sendgrid", "mailgun", "ses", "sparkpost", "resend"}
_SMS = {
    "smseagle",
    "smseagles",
    "signal",
    "signals",
    "twilio",
    "vonage",
    "nexmo",
    "sns",
    "clicksend",
    "d7sms",
    "bulksms",
    "bulkvs",
    "sinch",
    "plivo",
    "messagebird",
    "msg91",
    "kavenegar",
    "httpsms",
    "smsmgr",
    "seven",
    "africastalking",
    "voipms",
    "threema",
    "burstsms",
}
_PHONE = re.compile(r"\+?\d{8,15}")
_EMAIL_ADDR = re.compile(r"[^@\s/?&=,]+@[^@\s/?&=,]+\.[A-Za-z]{2,}")
_lock = threading.Lock()
_cache: dict[str, apprise.Apprise] = {}


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "?"


def channel_kind(url: str) -> ChannelKind:
    """Which rendering a URL gets: rich e-mail, a 160-character SMS, or chat text. A
    `json://`/`form://` gateway is SMS when its URL says so (`?format=sms`, or `sms` in its
    path), e.g. the Android SMS Gateway app or Kannel behind Apprise's field mapping."""
    scheme = scheme_of(url)
    if scheme in _EMAIL:
        return "email"
    if scheme in _SMS:
        return "sms"
    if scheme in ("json", "jsons", "form", "forms", "xml", "xmls"):
        parts = urlsplit(url)
        if "sms" in parts.path.lower() or "kind=sms" in parts.query.lower():
            return "sms"
    return "chat"


def identities(url: str) -> tuple[set[str], set[str]]:
    """Phone numbers and e-mail addresses a URL delivers to: replies from them are the
    contact's. Only the path and the `to` targets are read, never the credentials."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    targets = unquote(parts.path) + " " + " ".join(query.get("to", []))
    if scheme_of(url) in _EMAIL and parts.hostname and parts.username and not query.get("to"):
        targets += f" {unquote(parts.username)}@{parts.hostname}"
    phones = {normalise_phone(p) for p in _PHONE.findall(targets)}
    emails = {e.lower() for e in _EMAIL_ADDR.findall(targets)}
    return phones, emails


def normalise_phone(text: str) -> str:
    digits = re.sub(r"[^\d+]", "", text)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    return digits


@dataclass(frozen=True, slots=True)
class Outgoing:
    title: str
    body: str
    body_format: Literal["text", "html"]
    chart_png: bytes | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    error: str | None = None


def _apprise_for(url: str) -> apprise.Apprise | None:
    with _lock:
        found = _cache.get(url)
        if found is None:
            obj = apprise.Apprise()
            if not obj.add(url):
                return None
            found = _cache[url] = obj
        return found


def prepare(urls: Iterable[str]) -> int:
    """Blocking: build the Apprise object of each URL now, at start. Apprise loads its
    plugins on the first one (about a second): paid there, not by the first notification
    of a storm, whose send timeout it could eat. Returns how many Apprise understood."""
    return sum(_apprise_for(url) is not None for url in urls)


def _scrub(text: str, url: str) -> str:
    parts = urlsplit(url)
    secrets = [url, parts.password or "", parts.username or "", parts.netloc]
    secrets += [s for s in re.split(r"[/:@?&=]", url) if len(s) >= 6]
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def send(url: str, message: Outgoing, *, index: int) -> SendResult:
    """Blocking: one notification through one URL. Call it from a worker thread."""
    where = f"channel {index} ({scheme_of(url)})"
    inline = bool(message.chart_png) and scheme_of(url) in _EMAIL and "inline=" not in url
    effective = url + ("&" if "?" in url else "?") + "inline=yes" if inline else url
    target = _apprise_for(effective)
    if target is None:
        return SendResult(False, f"{where}: Apprise does not understand this URL")
    attach = None
    if message.chart_png and message.body_format == "html":
        attach = [AttachMemory(content=message.chart_png, name="chart.png", mimetype="image/png")]
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        try:
            ok = target.notify(
                body=message.body,
                title=message.title,
                body_format=message.body_format,
                attach=attach,
            )
        except Exception as exc:
            return SendResult(False, f"{where}: {type(exc).__name__}")
        log_text = captured.getvalue()
    if ok:
        return SendResult(True)
    reason = " ".join(log_text.split())[-300:] if log_text else "refused"
    return SendResult(False, f"{where}: {_scrub(reason, url)}")
