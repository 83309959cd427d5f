"""MQTT accounts from the registry: one per device, one per service role, with their secrets.

A device's secret is generated once and kept in `{data_dir}/mqtt-credentials.json` (mode
0600): a second `broker-config` run reuses every secret it finds there, so provisioned
devices keep working. The cluster file may instead give a device's `mqtt_password` (hashed
here) or only its `mqtt_password_hash` (used as is; the secret stays with the installer).

Service roles and what their topics allow (the ACL in `broker_config.py`):

| role   | runs                                   | may                                       |
|--------|----------------------------------------|-------------------------------------------|
| ingest | `run` (all stages), `--only ingest`    | read `{prefix}/#`                         |
| rules  | `--only ingest,rules` (alerts apart)   | read `{prefix}/#`, write `{prefix}/_alerts/#` |
| alerts | `--only alerts`                        | read `{prefix}/_alerts/#`                 |

    store = CredentialStore.open(settings.data_dir)
    accounts = resolve_accounts(cluster, store)      # generates what is missing, saves
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import SecretStr

from ecocluster.core.errors import FatalError
from ecocluster.core.registry import Cluster
from ecocluster.core.settings import MqttTarget
from ecocluster.deploy.passwd import HUMAN_ITERATIONS, mosquitto_hash, verify

__all__ = [
    "SERVICE_ROLES",
    "Account",
    "CredentialStore",
    "CredentialsError",
    "find_device",
    "resolve_accounts",
    "write_private",
    "write_service_env",
]

Role = Literal["device", "ingest", "rules", "alerts"]
SERVICE_ROLES: tuple[Role, ...] = ("ingest", "rules", "alerts")
STORE_NAME = "mqtt-credentials.json"
_SECRET_BYTES = 24  # 192 bits, 32 URL-safe characters
_USERNAME = re.compile(r"^[^\s:#+\x00-\x1f\x7f]{1,128}$")


class CredentialsError(FatalError):
    """The cluster's accounts cannot be built (a clash, a bad name, an unreadable store)."""


@dataclass(frozen=True)
class Account:
    """One MQTT login: who, its Mosquitto hash, and the secret when ecocluster knows it."""

    key: str
    role: Role
    username: str
    password_hash: str
    secret: SecretStr | None = None
    site: str | None = None
    meter: str | None = None
    #: "generated" (kept in the store), "cluster" (the file's password or hash).
    source: str = "generated"


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write `text` atomically with `mode` from the first byte (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed it
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class CredentialStore:
    """The kept secrets, a JSON file under the data dir; secrets never leave it but through
    `Account.secret` (for `device-credentials`) and the services' env files."""

    def __init__(self, path: Path, entries: dict[str, dict[str, Any]]) -> None:
        self.path = path
        self.entries = entries
        self.dirty = False

    @classmethod
    def open(cls, data_dir: Path) -> CredentialStore:
        path = Path(data_dir) / STORE_NAME
        if not path.exists():
            return cls(path, {})
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            entries = doc["accounts"]
            if not isinstance(entries, dict):
                raise TypeError("accounts is not a mapping")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CredentialsError(f"{path}: unreadable credential store ({exc})") from None
        return cls(path, entries)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        if self.entries.get(key) != entry:
            self.entries[key] = entry
            self.dirty = True

    def save(self) -> None:
        if self.dirty or not self.path.exists():
            doc = {"version": 1, "accounts": self.entries}
            write_private(self.path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
            self.dirty = False


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _generated(store: CredentialStore, key: str, username: str) -> tuple[str, str]:
    """The kept secret and hash of `key`, or new ones (kept on `save`)."""
    entry = store.get(key)
    if entry and entry.get("source") == "generated" and entry.get("secret"):
        secret, hashed = str(entry["secret"]), str(entry.get("hash", ""))
        if not verify(secret, hashed):
            hashed = mosquitto_hash(secret)
    else:
        secret = secrets.token_urlsafe(_SECRET_BYTES)
        hashed = mosquitto_hash(secret)
        entry = {"created_ms": _now_ms()}
    store.put(
        key,
        {
            "source": "generated",
            "username": username,
            "secret": secret,
            "hash": hashed,
            "created_ms": entry.get("created_ms", _now_ms()),
        },
    )
    return secret, hashed


def _from_cluster_password(store: CredentialStore, key: str, username: str, secret: str) -> str:
    """Hash the file's plaintext once; reuse the kept hash while the password is unchanged
    (so a re-run writes the same password file)."""
    entry = store.get(key)
    if entry and entry.get("source") == "cluster" and verify(secret, str(entry.get("hash"))):
        hashed = str(entry["hash"])
    else:
        hashed = mosquitto_hash(secret, iterations=HUMAN_ITERATIONS)
    store.put(key, {"source": "cluster", "username": username, "hash": hashed})
    return hashed


def device_key(site: str, meter: str) -> str:
    return f"device:{site}/{meter}"


def resolve_accounts(
    cluster: Cluster, store: CredentialStore, *, service_prefix: str = "ecocluster"
) -> list[Account]:
    """Every account the broker must know: the services' and each meter's. Generates the
    missing secrets into `store` and saves it. Raises `CredentialsError` naming the clash."""
    accounts: list[Account] = []
    for role in SERVICE_ROLES:
        key, username = f"service:{role}", f"{service_prefix}-{role}"
        secret, hashed = _generated(store, key, username)
        accounts.append(Account(key, role, username, hashed, SecretStr(secret)))
    for meter in cluster.meters:
        accounts.append(_device_account(store, meter.site, meter.id, meter))
    _check_usernames(accounts)
    store.save()
    return accounts


def _device_account(store: CredentialStore, site: str, meter_id: str, meter: Any) -> Account:
    key = device_key(site, meter_id)
    username = meter.mqtt_username or f"{site}/{meter_id}"
    where = f"meter {site}/{meter_id}"
    if meter.mqtt_password is not None and meter.mqtt_password_hash is not None:
        raise CredentialsError(f"{where}: give mqtt_password or mqtt_password_hash, not both")
    common: dict[str, Any] = {"site": site, "meter": meter_id, "source": "cluster"}
    if meter.mqtt_password_hash is not None:
        return Account(key, "device", username, meter.mqtt_password_hash, None, **common)
    if meter.mqtt_password is not None:
        secret = meter.mqtt_password.get_secret_value()
        hashed = _from_cluster_password(store, key, username, secret)
        return Account(key, "device", username, hashed, SecretStr(secret), **common)
    secret, hashed = _generated(store, key, username)
    return Account(key, "device", username, hashed, SecretStr(secret), site=site, meter=meter_id)


def _check_usernames(accounts: Iterable[Account]) -> None:
    owners: dict[str, str] = {}
    for account in accounts:
        name = account.username
        if not _USERNAME.match(name):
            raise CredentialsError(
                f"{account.key}: MQTT username {name!r} must be 1-128 characters without"
                " spaces, ':', '#' or '+'"
            )
        if name in owners:
            raise CredentialsError(
                f"MQTT username {name!r} is used by {owners[name]} and {account.key}"
            )
        owners[name] = account.key


def find_device(accounts: Iterable[Account], name: str) -> Account:
    """`site/meter`, or a meter id that is unique across sites."""
    devices = [a for a in accounts if a.role == "device"]
    found = [a for a in devices if f"{a.site}/{a.meter}" == name] or [
        a for a in devices if a.meter == name
    ]
    if not found:
        raise CredentialsError(f"no meter {name!r} in the cluster file (use SITE/METER)")
    if len(found) > 1:
        sites = ", ".join(f"{a.site}/{a.meter}" for a in found)
        raise CredentialsError(f"meter {name!r} is ambiguous ({sites}): use SITE/METER")
    return found[0]


#: The env files of each role, also named by the `--only` value the role serves, so that
#: the templated unit `ecocluster@%I` finds `mqtt-%I.env` (`ecocluster@ingest\x2crules`).
_ENV_NAMES: dict[Role, tuple[str, ...]] = {
    "ingest": ("ingest",),
    "rules": ("rules", "ingest,rules"),
    "alerts": ("alerts",),
}


def write_service_env(data_dir: Path, accounts: Iterable[Account], node: MqttTarget) -> list[Path]:
    """`{data_dir}/mqtt-{role}.env` with the role's `ECOCLUSTER_MQTT_URL` (mode 0600), for
    systemd's `EnvironmentFile=` or compose's `env_file:` (read by root before start)."""
    written = []
    scheme = "mqtts" if node.tls else "mqtt"
    for account in accounts:
        if account.role == "device" or account.secret is None:
            continue
        user = quote(account.username, safe="")
        secret = quote(account.secret.get_secret_value(), safe="")
        url = f"{scheme}://{user}:{secret}@{node.host}:{node.port}"
        text = f"# generated by ecocluster broker-config\nECOCLUSTER_MQTT_URL={url}\n"
        for name in _ENV_NAMES[account.role]:
            path = Path(data_dir) / f"mqtt-{name}.env"
            write_private(path, text)
            written.append(path)
    return written
