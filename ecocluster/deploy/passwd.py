"""Mosquitto's own password hash, without `mosquitto_passwd`: PBKDF2-HMAC-SHA512.

Mosquitto 2.x stores `user:$7$<iterations>$<base64 salt>$<base64 key>` (12-byte salt,
64-byte key; `mosquitto_passwd` uses 101 iterations). Writing it ourselves means
`ecocluster broker-config` needs no Mosquitto tools on the machine that runs it.

Iterations: a secret ecocluster generates has 192 random bits, so stretching adds nothing
against guessing and costs the broker CPU at every reconnect storm (one PBKDF2 per CONNECT);
such secrets get Mosquitto's own 101. A password a person chose (the cluster file's
`mqtt_password`) may be weak: it gets `HUMAN_ITERATIONS`.

    line = f"{user}:{mosquitto_hash(secret)}"
    assert verify(secret, mosquitto_hash(secret))
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

__all__ = ["GENERATED_ITERATIONS", "HUMAN_ITERATIONS", "mosquitto_hash", "verify"]

#: Mosquitto's default, enough for 192-bit random secrets.
GENERATED_ITERATIONS = 101
#: For passwords people chose: ~57 ms of broker CPU per CONNECT (bench/broker_auth.py).
HUMAN_ITERATIONS = 20_000
_SALT_BYTES = 12
_HASH = re.compile(r"^\$7\$(\d{1,7})\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")


def mosquitto_hash(
    secret: str, *, iterations: int = GENERATED_ITERATIONS, salt: bytes | None = None
) -> str:
    """The `$7$…` hash Mosquitto 2.x verifies (a fresh random salt unless given)."""
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations)
    return f"$7${iterations}${_b64(salt)}${_b64(key)}"


def verify(secret: str, hashed: str) -> bool:
    """True when `secret` matches a `$7$` hash (constant-time compare)."""
    match = _HASH.match(hashed)
    if match is None:
        return False
    try:
        salt = base64.b64decode(match.group(2), validate=True)
        expected = base64.b64decode(match.group(3), validate=True)
    except ValueError:
        return False
    key = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, int(match.group(1)))
    return hmac.compare_digest(key, expected)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
