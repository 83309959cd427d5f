"""Signed, expiring one-click ack links (HMAC-SHA256, truncated; stateless).

A token carries the alert id, the contact it was sent to and its expiry (minutes since the
epoch), compact enough for an SMS: `base64url(varints + contact) . base64url(mac[:12])`.
The alert service verifies; the API serves the confirmation page at `/a/{token}` (a GET
only shows the page, so a link-preview bot cannot ack).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from ecocluster.core.errors import EcoclusterError

__all__ = ["AckClaim", "AckLinks", "InvalidAckLink"]


class InvalidAckLink(EcoclusterError):
    """The link is malformed, forged or expired (the message says which)."""


@dataclass(frozen=True, slots=True)
class AckClaim:
    alert_id: int
    contact_id: str
    expires_ms: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(raw: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(raw) or shift > 63:
            raise InvalidAckLink("ack link is malformed")
        byte = raw[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


class AckLinks:
    """Usage: `links = AckLinks(secret, base_url, ttl_ms)`; `links.url(alert_id, contact,
    now_ms)`; `links.verify(token, now_ms) -> AckClaim`."""

    def __init__(self, secret: bytes, base_url: str, ttl_ms: int) -> None:
        if len(secret) < 16:
            raise ValueError("ack link secret must be at least 16 bytes")
        self._secret = secret
        self.base_url = base_url.rstrip("/")
        self.ttl_ms = ttl_ms

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:12]

    def token(self, alert_id: int, contact_id: str, now_ms: int) -> str:
        expires_min = -(-(now_ms + self.ttl_ms) // 60_000)
        payload = _varint(alert_id) + _varint(expires_min) + contact_id.encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def url(self, alert_id: int, contact_id: str, now_ms: int) -> str:
        return f"{self.base_url}/a/{self.token(alert_id, contact_id, now_ms)}"

    def verify(self, token: str, now_ms: int) -> AckClaim:
        try:
            body, mac = token.strip().split(".")
            payload, given = _unb64(body), _unb64(mac)
        except (ValueError, TypeError):
            raise InvalidAckLink("ack link is malformed") from None
        if not hmac.compare_digest(self._mac(payload), given):
            raise InvalidAckLink("ack link signature does not match")
        alert_id, pos = _read_varint(payload, 0)
        expires_min, pos = _read_varint(payload, pos)
        contact = payload[pos:].decode(errors="replace")
        if expires_min * 60_000 < now_ms:
            raise InvalidAckLink("ack link has expired")
        return AckClaim(alert_id, contact, expires_min * 60_000)
