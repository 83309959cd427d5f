"""Accounts, kept secrets, the Mosquitto hash and the ACL text, without a broker."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ecocluster.core.registry import load_cluster
from ecocluster.core.settings import MqttTarget
from ecocluster.deploy.broker_config import BrokerOptions, render_broker_files
from ecocluster.deploy.credentials import (
    CredentialsError,
    CredentialStore,
    find_device,
    resolve_accounts,
    write_service_env,
)
from ecocluster.deploy.passwd import HUMAN_ITERATIONS, mosquitto_hash, verify
from tests.deploy.conftest import CLUSTER, HASHED_SECRET


def _cluster(tmp_path: Path, text: str | None = None):  # type: ignore[no-untyped-def]
    path = tmp_path / "cluster.yaml"
    path.write_text(text or CLUSTER.format(hashed=mosquitto_hash(HASHED_SECRET)))
    return load_cluster(path)


def test_hash_round_trip_and_mosquitto_passwd_compatibility(tmp_path: Path) -> None:
    hashed = mosquitto_hash("s3cret")
    assert hashed.startswith("$7$101$")
    assert verify("s3cret", hashed)
    assert not verify("s3cret!", hashed)
    assert not verify("s3cret", "$6$abc$def")
    assert verify("pw", mosquitto_hash("pw", iterations=HUMAN_ITERATIONS))
    binary = shutil.which("mosquitto_passwd")
    if binary:  # a hash mosquitto_passwd made verifies here too (same algorithm both ways)
        subprocess.run([binary, "-b", "-c", str(tmp_path / "pw"), "u", "their-pw"], check=True)
        theirs = (tmp_path / "pw").read_text().strip().split(":", 1)[1]
        assert verify("their-pw", theirs)


def test_secrets_are_generated_once_and_kept_private(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path)
    data = tmp_path / "data"
    first = resolve_accounts(cluster, CredentialStore.open(data))
    store_file = data / "mqtt-credentials.json"
    assert store_file.stat().st_mode & 0o777 == 0o600
    again = resolve_accounts(cluster, CredentialStore.open(data))
    assert [(a.username, a.password_hash) for a in again] == [
        (a.username, a.password_hash) for a in first
    ]
    secrets = {a.key: a.secret.get_secret_value() for a in first if a.secret}
    assert len(set(secrets.values())) == len(secrets)  # every account its own secret
    assert all(len(s) >= 32 for k, s in secrets.items() if k != "device:s1/wm-01")
    # the cluster file's plaintext is hashed, never kept
    assert "chosen-pw" not in store_file.read_text()
    assert verify("chosen-pw", find_device(first, "wm-01").password_hash)
    # a given hash is used as is, with no secret to print
    aq = find_device(first, "s2/aq-01")
    assert aq.secret is None and verify(HASHED_SECRET, aq.password_hash)


def test_removing_and_readding_a_meter_keeps_its_secret(tmp_path: Path) -> None:
    full = CLUSTER.format(hashed=mosquitto_hash(HASHED_SECRET))
    data = tmp_path / "data"
    first = find_device(
        resolve_accounts(_cluster(tmp_path, full), CredentialStore.open(data)), "s2/em-01"
    )
    without = full.replace("  - {id: em-01, site: s2, quantities: [energy_kwh, power_w]}\n", "")
    accounts = resolve_accounts(_cluster(tmp_path, without), CredentialStore.open(data))
    assert "s2/em-01" not in {a.username for a in accounts}
    back = find_device(
        resolve_accounts(_cluster(tmp_path, full), CredentialStore.open(data)), "s2/em-01"
    )
    assert back.secret is not None and first.secret is not None
    assert back.secret.get_secret_value() == first.secret.get_secret_value()


def test_ambiguous_and_unknown_meters_and_username_clashes(tmp_path: Path) -> None:
    accounts = resolve_accounts(_cluster(tmp_path), CredentialStore.open(tmp_path / "d"))
    with pytest.raises(CredentialsError, match=r"ambiguous \(s1/em-01, s2/em-01\)"):
        find_device(accounts, "em-01")
    with pytest.raises(CredentialsError, match="no meter 'zz'"):
        find_device(accounts, "zz")
    clash = CLUSTER.format(hashed=mosquitto_hash("x")).replace(
        "mqtt_username: dev-wm", "mqtt_username: ecocluster-ingest"
    )
    with pytest.raises(CredentialsError, match="'ecocluster-ingest' is used by service:ingest"):
        resolve_accounts(_cluster(tmp_path, clash), CredentialStore.open(tmp_path / "d2"))
    both = CLUSTER.format(hashed=mosquitto_hash("x")).replace(
        'mqtt_password_hash: "', 'mqtt_password: a, mqtt_password_hash: "'
    )
    with pytest.raises(CredentialsError, match="s2/aq-01: give mqtt_password or"):
        resolve_accounts(_cluster(tmp_path, both), CredentialStore.open(tmp_path / "d3"))


def test_a_corrupt_store_is_an_error_not_a_silent_regeneration(tmp_path: Path) -> None:
    (tmp_path / "mqtt-credentials.json").write_text("{not json")
    with pytest.raises(CredentialsError, match="unreadable credential store"):
        CredentialStore.open(tmp_path)


def test_acl_grants_per_role_and_conf_limits(tmp_path: Path) -> None:
    accounts = resolve_accounts(_cluster(tmp_path), CredentialStore.open(tmp_path / "d"))
    files = render_broker_files(
        accounts, BrokerOptions(prefix="eco", conf_dir=Path("/etc/mosquitto/eco"))
    )
    blocks = {b.split("\n")[1]: b for b in files.acl.split("\n\n") if "\nuser " in b}
    assert blocks["user s1/em-01"].strip().endswith("topic write eco/s1/em-01/#")
    assert "read" not in blocks["user s1/em-01"]
    assert blocks["user ecocluster-ingest"].count("topic") == 1
    assert "topic read eco/#" in blocks["user ecocluster-ingest"]
    assert "topic write eco/_alerts/#" in blocks["user ecocluster-rules"]
    assert blocks["user ecocluster-alerts"].strip().endswith("topic read eco/_alerts/#")
    assert len(files.passwd.splitlines()) == len(accounts) == 7
    conf = files.conf
    for line in (
        "allow_anonymous false",
        "max_queued_messages 2000000",
        "max_inflight_messages 1000",
        "max_queued_bytes 0",
        "persistence true",
        "listener 1883 127.0.0.1",
        "listener 8883",
        "certfile /etc/mosquitto/eco/certs/server.crt",
        "password_file /etc/mosquitto/eco/passwd",
    ):
        assert line in conf.splitlines()
    with pytest.raises(CredentialsError, match="absolute"):
        render_broker_files(accounts, BrokerOptions(prefix="eco", conf_dir=Path("rel")))


def test_service_env_files_hold_each_roles_url(tmp_path: Path) -> None:
    accounts = resolve_accounts(_cluster(tmp_path), CredentialStore.open(tmp_path))
    node = MqttTarget("broker.lan", 1883, None, None, False)
    paths = write_service_env(tmp_path, accounts, node)
    assert [p.name for p in paths] == [
        "mqtt-ingest.env", "mqtt-rules.env", "mqtt-ingest,rules.env", "mqtt-alerts.env",
    ]  # fmt: skip
    store = json.loads((tmp_path / "mqtt-credentials.json").read_text())["accounts"]
    text = (tmp_path / "mqtt-rules.env").read_text()
    secret = store["service:rules"]["secret"]
    assert f"ECOCLUSTER_MQTT_URL=mqtt://ecocluster-rules:{secret}@broker.lan:1883" in text
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in paths)


def test_cli_errors_are_one_line_and_never_print_secrets(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ecocluster.cli import app

    cluster_file = tmp_path / "cluster.yaml"
    cluster_file.write_text(CLUSTER.format(hashed=mosquitto_hash(HASHED_SECRET)))
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "d")]
    done = runner.invoke(app, ["device-credentials", "em-01", "-c", str(cluster_file), *data])
    assert done.exit_code == 2 and "ambiguous (s1/em-01, s2/em-01): use SITE/METER" in done.output
    done = runner.invoke(app, ["device-credentials", "s2/aq-01", "-c", str(cluster_file), *data])
    assert done.exit_code == 2 and "known only as a hash" in done.output
    out = tmp_path / "broker"
    done = runner.invoke(app, ["broker-config", "-c", str(cluster_file), "--out", str(out), *data])
    assert done.exit_code == 0, done.output
    store = json.loads((tmp_path / "d" / "mqtt-credentials.json").read_text())["accounts"]
    for entry in store.values():
        if entry.get("secret"):
            assert entry["secret"] not in done.output
    assert "secrets kept in" in done.output and "4 device(s)" in done.output
    done = runner.invoke(app, ["dev-ca", "--out", str(tmp_path / "ca"), "--hosts", "bad host!"])
    assert done.exit_code == 2 and "neither an IP address nor a host name" in done.output
