"""`ecocluster broker-config`, `device-credentials`, `dev-ca`, `backup`, `restore`.

Thin: each command parses its options and calls the library modules of this package.
Secrets are printed only by `device-credentials` (that is its job), never by the others.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr

from ecocluster.core.cli_support import echo_err, fail, load_config_or_exit
from ecocluster.core.errors import FatalError
from ecocluster.core.settings import MqttTarget, Settings, load_settings
from ecocluster.core.text import printable
from ecocluster.deploy.broker_config import BrokerOptions, render_broker_files, write_broker_files
from ecocluster.deploy.credentials import (
    Account,
    CredentialStore,
    find_device,
    resolve_accounts,
    write_service_env,
)

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("broker-config")(broker_config)
    app.command("device-credentials")(device_credentials)
    app.command("dev-ca")(dev_ca)
    app.command("backup")(backup)
    app.command("restore")(restore)


def _say(text: object) -> None:
    typer.echo(printable(text))


ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="The cluster file (YAML).")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where secrets are kept (default: the data_dir setting)."),
]


def broker_config(
    config: ConfigOpt,
    out: Annotated[Path, typer.Option("--out", help="Directory to write the broker files to.")],
    conf_dir: Annotated[
        Path | None,
        typer.Option(help="Where the broker reads passwd/acl at run time (default: --out)."),
    ] = None,
    certs_dir: Annotated[
        Path | None, typer.Option(help="ca.crt, server.crt, server.key (default: CONF_DIR/certs).")
    ] = None,
    persistence_dir: Annotated[
        Path, typer.Option(help="Mosquitto's persistence directory.")
    ] = Path("/var/lib/mosquitto"),
    listen: Annotated[
        str, typer.Option(help="Bind address of the plain listener ('none': no plain listener).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the plain listener.")] = 1883,
    tls_port: Annotated[int, typer.Option(help="Port of the TLS listener (0: none).")] = 8883,
    tls_bind: Annotated[str | None, typer.Option(help="Bind address of the TLS listener.")] = None,
    require_certificate: Annotated[
        bool, typer.Option(help="Devices must also present a client certificate.")
    ] = False,
    max_inflight: Annotated[int, typer.Option(help="max_inflight_messages per client.")] = 1000,
    max_queued: Annotated[int, typer.Option(help="max_queued_messages per client.")] = 2_000_000,
    group: Annotated[
        str | None, typer.Option(help="Group that may read passwd/acl (e.g. mosquitto).")
    ] = None,
    node_url: Annotated[
        str | None,
        typer.Option(help="The broker as the services reach it (default: ECOCLUSTER_MQTT_URL)."),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Write mosquitto.conf, passwd and acl from the cluster file; keep device secrets."""
    cluster, settings = load_config_or_exit(config)
    data = data_dir or settings.data_dir
    opts = BrokerOptions(
        prefix=settings.topic_prefix,
        conf_dir=(conf_dir or out).absolute(),
        certs_dir=certs_dir.absolute() if certs_dir else None,
        persistence_dir=persistence_dir.absolute(),
        plain_bind=None if listen.lower() == "none" else listen,
        plain_port=port,
        tls_port=tls_port or None,
        tls_bind=tls_bind,
        require_certificate=require_certificate,
        max_queued_messages=max_queued,
        max_inflight_messages=max_inflight,
    )
    try:
        store = CredentialStore.open(data)
        before = set(store.entries)
        accounts = resolve_accounts(cluster, store)
        paths = write_broker_files(out, render_broker_files(accounts, opts), group=group)
        node = _node_target(settings, node_url)
        envs = write_service_env(data, accounts, node)
    except (FatalError, OSError, ValueError) as exc:
        fail("broker-config", str(exc))
    devices = sum(a.role == "device" for a in accounts)
    new = sorted(set(store.entries) - before)
    _say(f"wrote {', '.join(p.name for p in paths)} to {out} ({devices} device(s), 3 services)")
    _say(f"secrets kept in {store.path}: {len(new)} new, {len(before)} reused")
    _say(f"service logins ({node.host}:{node.port}): {', '.join(str(p) for p in envs)}")
    if group is None and os.geteuid() == 0:
        echo_err(
            "note: passwd and acl are 0640 root:root; Mosquitto started as root drops to its"
            " own user: pass --group mosquitto (or the broker's group) so it can read them"
        )
    if settings.mqtt_receive_maximum > max_inflight:
        echo_err(
            f"warning: ECOCLUSTER_MQTT_RECEIVE_MAXIMUM={settings.mqtt_receive_maximum} exceeds"
            f" --max-inflight {max_inflight}: keep them equal"
        )


def _node_target(settings: Settings, node_url: str | None) -> MqttTarget:
    """`--node-url`, parsed as ECOCLUSTER_MQTT_URL is (ValueError when malformed)."""
    if node_url is None:
        return settings.mqtt
    return settings.model_copy(update={"mqtt_url": SecretStr(node_url)}).mqtt


def device_credentials(
    meter: Annotated[str, typer.Argument(help="SITE/METER, or a meter id unique across sites.")],
    config: ConfigOpt,
    broker: Annotated[
        str | None, typer.Option(help="The broker as devices reach it (mqtts://host:8883).")
    ] = None,
    ca_file: Annotated[
        str, typer.Option(help="The CA certificate file the device must trust.")
    ] = "ca.crt",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Print one device's provisioning block (its secret included: keep it private)."""
    cluster, settings = load_config_or_exit(config)
    data = data_dir or settings.data_dir
    try:
        store = CredentialStore.open(data)
        before = set(store.entries)
        account = find_device(resolve_accounts(cluster, store), meter)
    except (FatalError, OSError) as exc:
        fail("device-credentials", str(exc))
    if account.secret is None:
        fail(
            meter,
            "its secret is known only as a hash (mqtt_password_hash in the cluster file):"
            " the installer who made it holds the password",
        )
    target = broker or f"mqtts://{settings.mqtt.host}:8883"
    block = _provisioning(account, settings.topic_prefix, target, ca_file)
    if as_json:
        typer.echo(json.dumps(block, indent=2))  # JSON escapes control characters itself
    else:
        for line in _provisioning_text(block).splitlines():
            _say(line)
    if account.key not in before:
        echo_err("new secret: run `ecocluster broker-config` again to load it into the broker")


def _provisioning(account: Account, prefix: str, broker: str, ca_file: str) -> dict[str, object]:
    assert account.secret is not None
    base = f"{prefix}/{account.site}/{account.meter}"
    return {
        "meter": f"{account.site}/{account.meter}",
        "broker": broker,
        "ca_file": ca_file,
        "client_id": f"{prefix}-{account.site}-{account.meter}",
        "username": account.username,
        "password": account.secret.get_secret_value(),
        "qos": 1,
        "topics": {
            "data": f"{base}/data",
            "senml": f"{base}/senml",
            "status": f"{base}/status",
        },
        "will": {"topic": f"{base}/status", "payload": "offline", "retain": True},
    }


def _provisioning_text(block: dict[str, object]) -> str:
    topics = block["topics"]
    assert isinstance(topics, dict)
    lines = [
        f"# ecocluster device credentials for {block['meter']}: keep this private",
        f"broker:    {block['broker']}",
        f"ca_file:   {block['ca_file']}",
        f"client_id: {block['client_id']}",
        f"username:  {block['username']}",
        f"password:  {block['password']}",
        "publish (QoS 1), nothing else is allowed:",
        f"  data:    {topics['data']}",
        f"  senml:   {topics['senml']}",
        f"  status:  {topics['status']}  (retained 'online'; last will 'offline', retained)",
    ]
    return "\n".join(lines)


def dev_ca(
    out: Annotated[Path, typer.Option("--out", help="Directory for the CA and certificates.")],
    hosts: Annotated[
        list[str] | None,
        typer.Option(help="Broker host names / IPs (comma-separated or repeated)."),
    ] = None,
    client: Annotated[
        list[str] | None, typer.Option(help="Also issue a client certificate (repeatable).")
    ] = None,
    group: Annotated[
        str | None, typer.Option(help="Group that may read server.key (e.g. mosquitto).")
    ] = None,
) -> None:
    """A private CA, the broker's certificate and client certificates, for testing."""
    from ecocluster.deploy.broker_config import group_id
    from ecocluster.deploy.dev_ca import make_dev_ca

    names = [h.strip() for item in hosts or ["localhost,127.0.0.1"] for h in item.split(",")]
    try:
        made = make_dev_ca(
            out, hosts=[h for h in names if h], clients=client or [], group_gid=group_id(group)
        )
    except (FatalError, OSError) as exc:
        fail("dev-ca", str(exc))
    state = "new CA" if made.created_ca else "existing CA kept"
    _say(f"{state}: {made.ca_cert}; server certificate {made.server_cert} for {', '.join(names)}")
    for name, (crt, _key) in made.clients.items():
        _say(f"client {name}: {crt}")


def backup(
    out: Annotated[Path, typer.Option("--out", help="The archive to write (.tar.gz).")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="The cluster file (for its settings).")
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Archive what is not in InfluxDB: alert db, rule/register state, secrets, tokens."""
    from ecocluster.deploy.backup import BackupError, make_backup

    settings = _settings(config)
    try:
        manifest = make_backup(data_dir or settings.data_dir, out, settings)
    except (BackupError, OSError) as exc:
        fail("backup", str(exc))
    names = ", ".join(sorted({str(item["name"]).split("/")[0] for item in manifest["items"]}))
    _say(f"wrote {out}: {names or 'nothing to back up'}")
    for note in manifest["not_included"]:
        _say(f"not included: {note}")


def restore(
    archive: Annotated[Path, typer.Argument(help="An archive made by `ecocluster backup`.")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="The cluster file (for its settings).")
    ] = None,
    data_dir: DataDirOpt = None,
    force: Annotated[bool, typer.Option(help="Overwrite files already in the data dir.")] = False,
) -> None:
    """Restore a backup into the data dir (stop the node first)."""
    from ecocluster.deploy.backup import BackupError, restore_backup

    settings = _settings(config)
    try:
        restored = restore_backup(archive, data_dir or settings.data_dir, overwrite=force)
    except (BackupError, OSError) as exc:
        fail("restore", str(exc))
    _say(f"restored {', '.join(restored)} into {data_dir or settings.data_dir}")


def _settings(config: Path | None) -> Settings:
    if config is not None:
        return load_config_or_exit(config)[1]
    try:
        return load_settings()
    except ValueError as exc:
        fail("settings", str(exc))
