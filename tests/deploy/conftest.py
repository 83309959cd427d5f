"""A cluster with three kinds of device credentials, and a real Mosquitto running the
configuration `ecocluster broker-config` wrote for it (with `dev-ca` certificates)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecocluster.cli import app
from ecocluster.deploy.passwd import mosquitto_hash
from tests.services import MosquittoServer, free_port

HASHED_SECRET = "installer-kept-secret"

CLUSTER = """
territory: {{id: t, name: "Test", timezone: Europe/Rome}}
settings: {{topic_prefix: eco}}
organisations:
  - {{id: o, name: "Org", kind: public}}
sites:
  - {{id: s1, org: o, name: "Site 1", category: office, lat: 44.3, lon: 10.3}}
  - {{id: s2, org: o, name: "Site 2", category: school, lat: 44.3, lon: 10.3}}
meters:
  - {{id: em-01, site: s1, quantities: [energy_kwh, power_w]}}
  - {{id: em-01, site: s2, quantities: [energy_kwh, power_w]}}
  - {{id: wm-01, site: s1, quantities: [water_m3], mqtt_username: dev-wm, mqtt_password: chosen-pw}}
  - {{id: aq-01, site: s2, quantities: [no2_ugm3], mqtt_password_hash: "{hashed}"}}
"""

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def mosquitto_group() -> str | None:
    """Mosquitto started as root drops to `mosquitto`: the files must be readable by it."""
    if os.geteuid() != 0:
        return None
    import grp

    try:
        grp.getgrnam("mosquitto")
    except KeyError:
        return None
    return "mosquitto"


@dataclass
class Deployment:
    root: Path
    cluster_file: Path
    out: Path
    data: Path
    certs: Path
    broker: MosquittoServer
    tls_port: int

    def secret(self, key: str) -> str:
        store = json.loads((self.data / "mqtt-credentials.json").read_text())
        return str(store["accounts"][key]["secret"])

    def broker_config(self) -> str:
        return invoke(
            "broker-config", "--config", str(self.cluster_file), "--out", str(self.out),
            "--data-dir", str(self.data), "--certs-dir", str(self.certs),
            "--persistence-dir", str(self.root / "persist"), "--listen", "127.0.0.1",
            "--port", str(self.broker.port), "--tls-port", str(self.tls_port),
            "--tls-bind", "127.0.0.1", *(["--group", g] if (g := mosquitto_group()) else []),
        )  # fmt: skip


def broker_readable_dir() -> Path:
    """A fresh directory Mosquitto's own user can traverse. Not under pytest's basetemp: a
    pytest session starting in parallel resets `/tmp/pytest-of-root` to 0700."""
    root = Path(tempfile.mkdtemp(prefix="ecocluster-deploy-"))
    root.chmod(0o755)
    return root


def make_deployment(root: Path) -> Deployment:
    cluster_file = root / "cluster.yaml"
    cluster_file.write_text(CLUSTER.format(hashed=mosquitto_hash(HASHED_SECRET)))
    persist = root / "persist"
    persist.mkdir()
    if mosquitto_group():
        shutil.chown(persist, "mosquitto", "mosquitto")
    out = root / "broker"
    broker = MosquittoServer(root / "mq", port=free_port(), config_file=out / "mosquitto.conf")
    dep = Deployment(root, cluster_file, out, root / "data", root / "certs", broker, free_port())
    group = mosquitto_group()
    invoke("dev-ca", "--out", str(dep.certs), "--hosts", "localhost,127.0.0.1",
           *(["--group", group] if group else []))  # fmt: skip
    dep.broker_config()
    return dep


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    root = broker_readable_dir()
    try:
        dep = make_deployment(root)
        dep.broker.start()
        try:
            yield dep
        finally:
            dep.broker.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
