"""The installed `ecocluster` command, run as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from ecocluster import __version__


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecocluster", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_version_and_help() -> None:
    assert run_cli("--version").stdout.strip() == f"ecocluster {__version__}"
    help_text = run_cli("--help").stdout
    assert "check-config" in help_text


def test_check_config_ok_on_the_example(example_cluster_path: Path) -> None:
    result = run_cli("check-config", str(example_cluster_path))
    assert result.returncode == 0, result.stderr
    assert "OK:" in result.stdout and "organisations" in result.stdout


def test_check_config_prints_every_error_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "territory: {id: t, name: T}\n"
        "organisations:\n"
        "  - {id: o1, name: O, kind: public}\n"
        "sites:\n"
        "  - {id: s1, org: o2, name: S, category: hotel, lat: 44.3, lon: 10.2}\n"
        "meters:\n"
        "  - {id: m1, site: s1, quantities: [power_kw]}\n"
    )
    result = run_cli("check-config", str(bad))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{bad}:5 sites[0].org: unknown organisation 'o2'" in result.stderr
    assert f"{bad}:7 meters[0].quantities[0]: unknown quantity 'power_kw'" in result.stderr
    assert "2 error(s)" in result.stderr


def test_check_config_rejects_bad_settings_block(
    tmp_path: Path, example_cluster_path: Path
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"include: [{example_cluster_path}]\n")
    # include of an absolute path works; a settings block with an unknown key is refused
    ok = run_cli("check-config", str(cfg))
    assert ok.returncode == 0, ok.stderr
    cfg.write_text(f"include: [{example_cluster_path}]\nsettings: {{api_port: -1}}\n")
    bad = run_cli("check-config", str(cfg))
    assert bad.returncode == 1 and "api_port" in bad.stderr and "Traceback" not in bad.stderr


def test_json_log_format() -> None:
    code = (
        "import logging; from ecocluster.core.logs import setup_logging;"
        "setup_logging('INFO', 'json');"
        "logging.getLogger('ecocluster.x').warning('lost %s', 'broker', extra={'topic': 'eco/a'})"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    entry = orjson.loads(result.stderr.strip())
    assert entry["level"] == "warning" and entry["msg"] == "lost broker"
    assert entry["logger"] == "ecocluster.x" and entry["topic"] == "eco/a"
