"""The `compliance` rule type: alerts through the engine, and a backtest over the stored
history (real DuckDB store) that counts exactly what the report counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from ecocluster.core.registry import Cluster
from ecocluster.ingest.stores.duckdb import DuckDBStore
from ecocluster.ingest.stores.memory import MemoryStore
from ecocluster.rules.backtest import run_backtest
from ecocluster.rules.catalog import parse_rule
from ecocluster.rules.compliance.report import build_report
from ecocluster.rules.engine import RuleEngine
from ecocluster.rules.transitions import Transition
from ecocluster.rules.types.compliance import ComplianceKernel
from tests.rules.compliance.fixtures import (
    CET_START_MS,
    DAYS,
    EXPECTED,
    HOUR_MS,
    readings,
    write_cluster,
)

END_MS = CET_START_MS + DAYS * 24 * HOUR_MS


def _labels(t: Transition) -> tuple[str, str, str]:
    return t.labels["site"], t.labels["pack"], t.labels["check"]


def test_rule_config_is_checked() -> None:
    rule = parse_rule({"name": "air", "type": "compliance", "quantity": "pm10_ugm3"})
    assert rule.warn_share == 0.8  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="air pollutants"):
        parse_rule({"name": "air", "type": "compliance", "quantity": "power_w"})
    with pytest.raises(ValidationError):
        parse_rule({"name": "air", "type": "compliance", "pack": "eu1999"})


def test_targets_follow_each_stations_pack(tmp_path: Path) -> None:
    engine = RuleEngine(write_cluster(tmp_path))
    (kernel,) = engine.kernels
    assert isinstance(kernel, ComplianceKernel)
    checks = {(lab["site"], lab["pack"], lab["check"]) for lab in kernel.targets.labels}
    assert ("valle", "eu2008", "pm10-day-limit") in checks
    assert ("valle", "eu2008", "pm10-day-limit/allowance") in checks
    assert ("valle", "eu2008", "no2-alert") in checks
    assert ("monte", "eu2030", "pm10-day-limit") in checks
    assert ("monte", "eu2030", "no2-information") in checks
    assert not any(site == "monte" and pack == "eu2008" for site, pack, _ in checks)


def test_live_alert_fires_at_the_third_hour_and_the_day_closes(tmp_path: Path) -> None:
    cluster = write_cluster(tmp_path)
    engine = RuleEngine(cluster)
    batch = readings(cluster)
    # Feed day 3 up to 12:00 CET + the sealing lag: hours 10 and 11 are over 400 → no alert.
    out: list[Transition] = []
    day3 = CET_START_MS + 3 * 24 * HOUR_MS
    for now in range(day3, day3 + 14 * HOUR_MS, 300_000):
        keep = (batch.ts_ms >= now - 300_000) & (batch.ts_ms < now)
        engine.ingest(batch.take(keep))
        fired = [t for t in engine.tick(now) if t.state == "firing"]
        out.extend((now, t) for t in fired)  # type: ignore[misc]
    alerts = [(now, t) for now, t in out if _labels(t)[2] == "no2-alert"]  # type: ignore[misc]
    assert len(alerts) == 1
    now, t = alerts[0]
    # Hour 12:00-13:00 CET closes at 13:00; sealed 3 min later; the 5-minute tick at 13:05.
    assert now == day3 + 13 * HOUR_MS + 300_000
    assert t.severity == "critical" and t.value == 450.0 and t.threshold == 400.0
    hourly = [t for _, t in out if _labels(t)[2] == "no2-hour-limit"]  # type: ignore[misc]
    assert len(hourly) == 3


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["duckdb"])
async def test_backtest_counts_what_the_report_counts(tmp_path: Path, backend: str) -> None:
    cluster: Cluster = write_cluster(tmp_path)
    store = DuckDBStore(tmp_path / "store.duckdb") if backend == "duckdb" else MemoryStore()
    await store.open()
    try:
        await store.write(readings(cluster))
        report = await build_report(cluster, store, year=2026, now_ms=END_MS)
        fired: list[Transition] = []
        await run_backtest(
            cluster,
            store,
            CET_START_MS,
            END_MS + HOUR_MS,
            tick_ms=900_000,
            on_transition=lambda t: fired.append(t) if t.state == "firing" else None,
        )
    finally:
        await store.close()
    from_report = {
        (st.key.site, pack, r.check.id): r.count
        for st in report.stations
        for pack, results in st.results.items()
        for r in results
    }
    firings = Counter(_labels(t) for t in fired if t.previous != "firing")
    for key, count in EXPECTED.items():
        assert from_report[key] == count, key
        assert firings.get(key, 0) == count, key
    for key, count in from_report.items():
        if "year" not in key[2] and key[1] in ("eu2008", "eu2030") and count is not None:
            site = key[0]
            configured = "eu2008" if site == "valle" else "eu2030"
            if key[1] == configured:
                assert firings.get(key, 0) == count, key
    # The allowance warning: 28 of 35 permitted PM10 days, reached when day 31 closes.
    allowance = [t for t in fired if _labels(t) == ("valle", "eu2008", "pm10-day-limit/allowance")]
    assert len(allowance) == 1
    assert allowance[0].value == 28.0 and allowance[0].threshold == 35.0
    assert allowance[0].severity == "warning"
    day31_close = CET_START_MS + 32 * 24 * HOUR_MS
    assert day31_close < allowance[0].at_ms <= day31_close + 900_000


def test_allowance_text(tmp_path: Path) -> None:
    engine = RuleEngine(write_cluster(tmp_path))
    (kernel,) = engine.kernels
    assert isinstance(kernel, ComplianceKernel)
    i = kernel.targets.keys.index("valle/aq-a/pm10_ugm3#eu2008:pm10-day-limit/allowance")
    kernel.count[i] = 28
    assert kernel.allowance_text(i, 2026) == (
        "PM10 daily limit exceeded 28 of 35 permitted times in 2026"
    )
    assert np.all(kernel.t_limit[kernel.t_role == 2] > 0)
