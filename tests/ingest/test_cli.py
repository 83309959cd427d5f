from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecocluster.cli import app
from ecocluster.ingest.deadletter import DeadLetterLog


def test_dead_letters_command_counts_and_shows(
    tmp_path: Path, small_cluster_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECOCLUSTER_DATA_DIR", str(tmp_path))
    log = DeadLetterLog(tmp_path / "dead-letters.jsonl", max_bytes=1 << 20)
    log.record("eco/s1/em-01/data", "not_json", "not JSON: oops", payload=b"{oops")
    log.record(
        "eco/s1/em-01/data", "future", "timestamp is 3600 s in the future", field="power_w", count=2
    )
    log.close()
    result = CliRunner().invoke(app, ["dead-letters", "--config", str(small_cluster_path)])
    assert result.exit_code == 0, result.output
    assert "future" in result.output and " 2" in result.output
    assert "eco/s1/em-01/data power_w: [future]" in result.output
    only = CliRunner().invoke(
        app, ["dead-letters", "--config", str(small_cluster_path), "--reason", "not_json"]
    )
    assert "future" not in only.output and "not_json" in only.output


def test_dead_letters_command_reads_every_partitioned_worker(
    tmp_path: Path, small_cluster_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ingest workers started with `--partition k/n` keep their logs in `p{k}of{n}/`."""
    monkeypatch.setenv("ECOCLUSTER_DATA_DIR", str(tmp_path))
    for share, reason in (("p0of2", "not_json"), ("p1of2", "unknown_meter")):
        log = DeadLetterLog(tmp_path / share / "dead-letters.jsonl", max_bytes=1 << 20)
        log.record(f"eco/{share}/em-01/data", reason, f"{reason} in {share}", payload=b"x")
        log.close()
    result = CliRunner().invoke(app, ["dead-letters", "--config", str(small_cluster_path)])
    assert result.exit_code == 0, result.output
    assert "not_json" in result.output and "unknown_meter" in result.output
    assert "eco/p0of2/em-01/data" in result.output and "eco/p1of2/em-01/data" in result.output
