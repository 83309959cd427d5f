"""systemd units, the env template and the compose file: valid, hardened, consistent."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ecocluster.core.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = ("ecocluster.service", "ecocluster@.service")
HARDENING = (
    "ProtectSystem=strict",
    "StateDirectory=ecocluster",
    "NoNewPrivileges=yes",
    "PrivateTmp=yes",
    "ProtectHome=yes",
    "CapabilityBoundingSet=",
    "SystemCallFilter=@system-service",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
)


def _directives(unit: str) -> list[str]:
    text = (DEPLOY / "systemd" / unit).read_text()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("unit", UNITS)
def test_units_are_hardened_and_run_the_node(unit: str) -> None:
    lines = _directives(unit)
    for directive in HARDENING:
        assert directive in lines, f"{unit}: {directive} missing"
    assert "DynamicUser=yes" in lines or "User=ecocluster" in lines
    exec_start = next(line for line in lines if line.startswith("ExecStart="))
    assert " run --config /etc/ecocluster/cluster.yaml" in exec_start
    assert "Environment=ECOCLUSTER_DATA_DIR=%S/ecocluster" in lines
    assert "EnvironmentFile=/etc/ecocluster/ecocluster.env" in lines
    if "@" in unit:
        assert exec_start.endswith("--only %I")
        assert "EnvironmentFile=-/var/lib/ecocluster/mqtt-%I.env" in lines
        sysusers = (DEPLOY / "systemd" / "ecocluster.sysusers.conf").read_text()
        assert "u ecocluster " in sysusers


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine (no systemd)")
    ecocluster = shutil.which("ecocluster", path=str(Path(sys.executable).parent))
    assert ecocluster, "the ecocluster console script is not installed beside python"
    names = []
    for unit in UNITS:  # ExecStart must exist: point it at this machine's ecocluster
        text = (DEPLOY / "systemd" / unit).read_text()
        (tmp_path / unit).write_text(text.replace("/opt/ecocluster/bin/ecocluster", ecocluster))
        names.append(f"./{unit}")
    (tmp_path / "ecocluster@ingest.service").write_text((tmp_path / UNITS[1]).read_text())
    names.append("./ecocluster@ingest.service")
    done = subprocess.run(
        [analyze, "verify", *names], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    # verify exits 0 on unknown keys and bad values, only warning: any output about our
    # units is a failure
    ours = [line for line in done.stderr.splitlines() if "ecocluster" in line]
    assert done.returncode == 0 and ours == [], done.stderr


def test_the_env_template_names_only_real_settings() -> None:
    known = {f"ECOCLUSTER_{name.upper()}" for name in Settings.model_fields}
    text = (DEPLOY / "ecocluster.env").read_text()
    names = [
        line.lstrip("# ").split("=", 1)[0]
        for line in text.splitlines()
        if line.lstrip("# ").startswith("ECOCLUSTER_") and "=" in line
    ]
    assert len(names) >= 15
    assert [n for n in names if n not in known] == []
    # the MQTT login comes from broker-config's per-role env file, never from the template
    assert not any(line.startswith("ECOCLUSTER_MQTT_URL=") for line in text.splitlines())


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_file_structure() -> None:
    doc = _compose()
    services = doc["services"]
    assert set(services) == {"mosquitto", "influxdb", "postgres", "ecocluster"}
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        assert service.get("restart") == "unless-stopped", name
    mosquitto = services["mosquitto"]
    assert mosquitto["command"][-1] == "/mosquitto/config/mosquitto.conf"
    assert "./broker:/mosquitto/config:ro" in mosquitto["volumes"]
    assert mosquitto["ports"] == ["8883:8883"]  # plain MQTT stays on the compose network
    app = services["ecocluster"]
    assert {dep: c["condition"] for dep, c in app["depends_on"].items()} == {
        "mosquitto": "service_healthy",
        "influxdb": "service_healthy",
        "postgres": "service_healthy",
    }
    assert "./state/mqtt-ingest.env" in app["env_file"]
    assert app["environment"]["ECOCLUSTER_ALERT_DB_URL"].startswith("postgresql+psycopg://")
    assert (DEPLOY / app["build"]["dockerfile"].removeprefix("deploy/")).exists()
    assert set(doc["volumes"]) == {"mosquitto-data", "influxdb-data", "postgres-data"}
    known = {f"ECOCLUSTER_{name.upper()}" for name in Settings.model_fields}
    assert set(app["environment"]) <= known


def test_compose_config_validates_with_docker(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed (docker client only)")
    work = tmp_path / "deploy"
    shutil.copytree(DEPLOY, work, symlinks=True)
    (work / "state").mkdir()
    (work / "state" / "mqtt-ingest.env").write_text("ECOCLUSTER_MQTT_URL=mqtt://u:p@mosquitto\n")
    done = subprocess.run(
        [docker, "compose", "-f", "docker-compose.yml", "config", "--quiet"],
        cwd=work, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "POSTGRES_PASSWORD": "x"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
