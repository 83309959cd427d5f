"""Alert identity: a fingerprint of the rule and its target's labels (severity excluded, so a
warning that turns critical stays the same alert), and the short code people type."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Container, Mapping

__all__ = ["fingerprint", "new_code"]


def fingerprint(rule: str, labels: Mapping[str, str]) -> str:
    parts = [f"rule={rule}"] + [
        f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("severity", "rule")
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def new_code(taken: Container[str], rng: random.Random | None = None) -> str:
    """A short numeric code not in `taken`: four digits while they are plentiful, then
    more. Codes are for typing on a phone; the sender's scope is checked on every ack."""
    rng = rng or random.SystemRandom()
    digits = 4
    while True:
        for _ in range(12):
            code = str(rng.randrange(10 ** (digits - 1), 10**digits))
            if code not in taken:
                return code
        digits += 1
