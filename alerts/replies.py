"""Inbound replies: "ACK 4821", "OK 4821", "RISOLTO 4821" from SMS gateways and e-mail.

Parser functions for each gateway's incoming-message webhook (the API mounts them; each
verifies the gateway's signature when a key is configured) and for a reply e-mail; all give
an `InboundMessage`, which `AlertService.handle_reply` turns into an acknowledgement after
checking the sender's scope.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parseaddr

from ecocluster.core.errors import EcoclusterError

__all__ = [
    "InboundMessage",
    "Reply",
    "ReplyRejected",
    "parse_email_reply",
    "parse_httpsms",
    "parse_reply",
    "parse_smseagle",
    "parse_smsgate",
]


class ReplyRejected(EcoclusterError):
    """A webhook call that is not a genuine incoming message (bad signature, wrong shape)."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    channel: str  # "sms" or "email"
    sender: str  # phone number or e-mail address
    text: str
    gateway: str


@dataclass(frozen=True, slots=True)
class Reply:
    verb: str  # "ack" or "resolved"
    code: str
    comment: str | None


_ACK = {"ACK", "OK", "PRESO", "RICEVUTO", "VISTO", "CONFERMO", "ROGER", "ACCEPT", "YES", "SI", "SÌ"}
_RESOLVED = {"RISOLTO", "RESOLVED", "FIXED", "RIPARATO", "FATTO", "DONE"}
_REPLY_RE = re.compile(r"^\s*([A-Za-zÀ-ÿ]+)[\s:#.,-]*#?(\d{4,12})\b[\s:.,-]*(.*)$", re.S)


def parse_reply(text: str) -> Reply | None:
    """The command in a reply's first meaningful line, or None when there is none."""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(">"):
            continue
        found = _REPLY_RE.match(line)
        if not found:
            return None
        word, code, rest = found.groups()
        word = word.upper()
        if word in _ACK:
            return Reply("ack", code, rest.strip() or None)
        if word in _RESOLVED:
            return Reply("resolved", code, rest.strip() or None)
        return None
    return None


def _check_shared(given: str | None, expected: str | None, what: str) -> None:
    if expected is not None and not (given and hmac.compare_digest(given, expected)):
        raise ReplyRejected(f"{what}: wrong or missing key")


def parse_smseagle(params: Mapping[str, str], *, apikey: str | None = None) -> InboundMessage:
    """SMSEagle's Callback URL (GET or POST form): `sender`, `msg` (or `text`), `apikey`."""
    _check_shared(params.get("apikey"), apikey, "SMSEagle callback")
    sender = params.get("sender") or params.get("from") or ""
    text = params.get("msg") or params.get("text") or params.get("message") or ""
    if not sender:
        raise ReplyRejected("SMSEagle callback: no sender")
    return InboundMessage("sms", sender, text, "smseagle")


def parse_smsgate(
    body: bytes,
    headers: Mapping[str, str],
    *,
    signing_key: str | None = None,
    max_skew_s: float = 300.0,
) -> InboundMessage | None:
    """The Android SMS Gateway app's webhook: `{"event": "sms:received", "payload":
    {"message", "phoneNumber", …}}`, signed with `X-Signature` = hex HMAC-SHA256(key, body +
    X-Timestamp). Other events give None."""
    lower = {k.lower(): v for k, v in headers.items()}
    if signing_key is not None:
        stamp, signature = lower.get("x-timestamp", ""), lower.get("x-signature", "")
        expected = hmac.new(signing_key.encode(), body + stamp.encode(), hashlib.sha256).hexdigest()
        if not signature or not hmac.compare_digest(signature.lower(), expected):
            raise ReplyRejected("SMS Gateway webhook: bad signature")
        try:
            if abs(time.time() - int(stamp)) > max_skew_s:
                raise ReplyRejected("SMS Gateway webhook: timestamp too old")
        except ValueError:
            raise ReplyRejected("SMS Gateway webhook: bad timestamp") from None
    try:
        event = json.loads(body)
        if event.get("event") != "sms:received":
            return None
        payload = event["payload"]
        return InboundMessage(
            "sms", str(payload["phoneNumber"]), str(payload["message"]), "smsgate"
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ReplyRejected("SMS Gateway webhook: not an sms:received event") from None


def _jwt_hs256_ok(token: str, key: str) -> bool:
    try:
        head, payload, signature = token.split(".")
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
        if header.get("alg") != "HS256":
            return False
        mac = hmac.new(key.encode(), f"{head}.{payload}".encode(), hashlib.sha256).digest()
        given = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError):
        return False
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return hmac.compare_digest(mac, given) and (exp is None or float(exp) >= time.time())


def parse_httpsms(
    body: bytes, headers: Mapping[str, str], *, signing_key: str | None = None
) -> InboundMessage | None:
    """httpSMS's webhook (a CloudEvent, `type: message.phone.received`, `data.contact` and
    `data.content`), authenticated by an HS256 JWT in `Authorization: Bearer` signed with
    the webhook's signing key. Other event types give None."""
    lower = {k.lower(): v for k, v in headers.items()}
    if signing_key is not None:
        token = lower.get("authorization", "").removeprefix("Bearer ").strip()
        if not _jwt_hs256_ok(token, signing_key):
            raise ReplyRejected("httpSMS webhook: bad or expired signature")
    try:
        event = json.loads(body)
        kind = event.get("type") or lower.get("x-event-type")
        if kind != "message.phone.received":
            return None
        data = event["data"]
        return InboundMessage("sms", str(data["contact"]), str(data["content"]), "httpsms")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ReplyRejected("httpSMS webhook: not a message.phone.received event") from None


def parse_email_reply(raw: bytes, envelope_from: str | None = None) -> InboundMessage:
    """A reply e-mail: the sender's address (From, else the envelope) and the text of its
    plain part (or the subject when the body has no command, e.g. "Re: ACK 4821")."""
    message = message_from_bytes(raw, policy=policy.default)
    sender = parseaddr(str(message.get("From", "")))[1] or (envelope_from or "")
    text = ""
    if isinstance(message, EmailMessage):
        part = message.get_body(preferencelist=("plain",))
        if part is not None:
            text = part.get_content()
    subject = str(message.get("Subject", ""))
    subject = re.sub(r"^\s*((re|r|aw|fwd?)\s*:\s*)+", "", subject, flags=re.I)
    if parse_reply(text) is None and parse_reply(subject) is not None:
        text = subject
    return InboundMessage("email", sender.lower(), text, "smtp")
