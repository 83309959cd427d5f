from __future__ import annotations

from pathlib import Path

import pytest

from ecocluster.rules.snapshot import load_snapshot, save_snapshot


def test_round_trip_and_atomic_replace(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "rules.json"
    save_snapshot(
        path, {"version": 1, "rules": {"a": {"targets": {"s1/m1/power_w": ["firing", 2]}}}}
    )
    save_snapshot(path, {"version": 1, "rules": {}})
    assert load_snapshot(path) == {"version": 1, "rules": {}}
    assert [p.name for p in path.parent.iterdir()] == ["rules.json"]


def test_missing_or_corrupt_snapshot_is_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert load_snapshot(tmp_path / "none.json") is None
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"{not json")
    assert load_snapshot(bad) is None
    assert "corrupt rules snapshot" in caplog.text
