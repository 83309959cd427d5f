"""The installed `ecocluster` command, run as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from ecocluster import __version__
from ecocluster.core.types import QUANTITIES


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
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"{bad}:5 sites[0].org: unknown organisation 'o2' (known: o1)",
        f"{bad}:7 meters[0].quantities[0]: unknown quantity 'power_kw' (known: "
        + ", ".join(QUANTITIES)
        + ")",
    ]


def test_check_config_validates_the_rules_fields_too(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "territory: {id: t, name: T}\n"
        "rules:\n"
        "  - {name: r1, type: threshold, quantity: power_w, abov: 5}\n"
    )
    result = run_cli("check-config", str(bad))
    assert result.returncode == 2, result.stdout
    assert f"{bad}:3 rules[0].abov: unknown field for this rule type" in result.stderr


def test_check_config_escapes_control_characters_from_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'territory: {id: t, name: T, "x\\e]0;owned\\a\\n\\e[2J\u202e": 1}\n', encoding="utf-8"
    )
    result = run_cli("check-config", str(bad))
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line == f"{bad}:1 territory.x\\x1b]0;owned\\x07\\n\\x1b[2J\\u202e: unknown field"
    assert "\x1b" not in result.stderr and "\u202e" not in result.stderr


def test_check_config_rejects_bad_settings_block(
    tmp_path: Path, example_cluster_path: Path
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"include: [{example_cluster_path}]\n")
    # an absolute include is refused unless a setting allows its directory
    refused = run_cli("check-config", str(cfg))
    assert refused.returncode == 2 and "absolute include path" in refused.stderr
    allow = {"ECOCLUSTER_CONFIG_INCLUDE_DIRS": str(example_cluster_path.resolve().parent)}
    ok = run_cli("check-config", str(cfg), env=allow)
    assert ok.returncode == 0, ok.stderr
    cfg.write_text(f"include: [{example_cluster_path}]\nsettings: {{api_port: -1}}\n")
    bad = run_cli("check-config", str(cfg), env=allow)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    (line,) = bad.stderr.splitlines()
    assert line.startswith(f"{cfg}: settings: setting 'api_port'")


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
