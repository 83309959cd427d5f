"""`ecocluster demo`, run as a user runs it: everything embedded, a summary at the end that
agrees with what the DuckDB store really holds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from ecocluster.ingest.stores import DUCKDB_FILE

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_the_whole_pipeline_and_reports_what_it_stored(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ecocluster",
            "demo",
            "--duration",
            "32",
            "--data-dir",
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ECOCLUSTER_LOG_LEVEL": "WARNING"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    found = re.search(
        r"readings stored: (\d+); readings rejected: (\d+); alerts raised: (\d+)", result.stdout
    )
    assert found, result.stdout
    stored, rejected, alerts = map(int, found.groups())
    assert stored > 10_000
    # stress-mix: a hotel overload 3 simulated hours in (15 s at 720×, ~20 s when the
    # simulator lags on a busy machine), an NO2 episode at 2 h
    assert alerts >= 2
    assert "power-overload=" in result.stdout and "no2-hourly-limit=" in result.stdout
    with duckdb.connect(str(tmp_path / DUCKDB_FILE), read_only=True) as db:
        (rows,) = db.execute("SELECT count(*) FROM readings").fetchone()  # type: ignore[misc]
        (sites,) = db.execute("SELECT count(DISTINCT site) FROM readings").fetchone()  # type: ignore[misc]
    assert rows == stored
    assert sites >= 25
    assert rejected == 0 or (tmp_path / "dead-letters.jsonl").exists()


def test_demo_refuses_a_missing_cluster_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ecocluster",
            "demo",
            "--duration",
            "1",
            "--config",
            str(tmp_path / "nope.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "nope.yaml: not found" in result.stderr and "Traceback" not in result.stderr
