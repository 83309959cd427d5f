"""The backtest against the real embedded store (DuckDB), and through the CLI."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecocluster.cli import app
from ecocluster.core.registry import Cluster
from ecocluster.ingest.stores.duckdb import DuckDBStore
from ecocluster.rules.backtest import run_backtest
from tests.rules.conftest import MIN, T0, batch
from tests.services import InfluxServer

HOT = {"name": "hot", "type": "threshold", "quantity": "power_w", "above": 100, "for": "2m"}
WET = {"name": "wet", "type": "threshold", "quantity": "flow_lpm", "above": 5}


def history(cluster: Cluster) -> list[tuple[int, int, float]]:
    """s1 power: 150 W from minute 10 to 19, else 50 W; s3 flow 9 from minute 30 on."""
    power = [(0, T0 + m * MIN + 1000, 150.0 if 10 <= m < 20 else 50.0) for m in range(60)]
    flow = [(4, T0 + m * MIN + 2000, 9.0 if m >= 30 else 1.0) for m in range(60)]
    return power + flow


async def stored(tmp_path: Path, cluster: Cluster) -> DuckDBStore:
    store = DuckDBStore(tmp_path / "ecocluster.duckdb")
    await store.open()
    await store.write(batch(cluster, history(cluster)))
    return store


async def test_backtest_reports_episodes_from_the_duckdb_store(
    tmp_path: Path, make_cluster: Callable[..., Cluster]
) -> None:
    cluster = make_cluster([HOT, WET])
    store = await stored(tmp_path, cluster)
    try:
        result = await run_backtest(cluster, store, T0, T0 + 60 * MIN, chunk_ms=17 * MIN)
    finally:
        await store.close()
    got = [
        (
            e.rule,
            e.target.split(",")[-2:],
            (e.fired_ms - T0) // MIN,
            None if e.resolved_ms is None else (e.resolved_ms - T0) // MIN,
        )
        for e in result.episodes
    ]
    assert got == [
        ("hot", ["rule=hot", "site=s1"], 13, 21),  # pending at 11, firing after `for: 2m`
        ("wet", ["rule=wet", "site=s3"], 31, None),  # still firing at the end
    ]
    assert result.readings == 120 and result.ticks == 60


@pytest.mark.e2e
async def test_backtest_reads_a_real_influxdb_the_same_way(
    influxd: InfluxServer, influx_db: str, make_cluster: Callable[..., Cluster]
) -> None:
    from ecocluster.ingest.stores.influx import InfluxStore

    cluster = make_cluster([HOT, WET])
    store = InfluxStore(influxd.url, influx_db)
    await store.open()
    try:
        await store.write(batch(cluster, history(cluster)))
        result = await run_backtest(cluster, store, T0, T0 + 60 * MIN)
    finally:
        await store.close()
    got = [(e.rule, (e.fired_ms - T0) // MIN) for e in result.episodes]
    assert got == [("hot", 13), ("wet", 31)]
    assert result.readings == 120


async def test_backtest_rejects_an_empty_range(make_cluster: Callable[..., Cluster]) -> None:
    with pytest.raises(ValueError, match="--to must be after --from"):
        await run_backtest(make_cluster([HOT]), None, T0, T0)  # type: ignore[arg-type]


def test_cli_backtest_prints_what_would_have_fired(
    tmp_path: Path, make_cluster: Callable[..., Cluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    cluster = make_cluster([HOT, WET])
    asyncio.run(_store_and_close(tmp_path, cluster))
    monkeypatch.setenv("ECOCLUSTER_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ECOCLUSTER_INFLUX_URL", raising=False)
    start = datetime.fromtimestamp(T0 / 1000, UTC).isoformat()
    end = datetime.fromtimestamp((T0 + 60 * MIN) / 1000, UTC).isoformat()
    out = CliRunner().invoke(
        app,
        [
            "rules",
            "backtest",
            "--config",
            str(cluster.source),
            "--from",
            start,
            "--to",
            end,
            "--rule",
            "hot",
        ],
    )
    assert out.exit_code == 0, out.output
    assert "What would have fired (1 episodes)" in out.output
    assert "120 readings, 60 ticks" in out.output
    assert "wet" not in out.output.split("Per rule")[1]


def test_cli_backtest_names_an_unknown_rule(
    tmp_path: Path, make_cluster: Callable[..., Cluster]
) -> None:
    cluster = make_cluster([HOT])
    out = CliRunner().invoke(
        app,
        ["rules", "backtest", "--config", str(cluster.source), "--from", "1d", "--rule", "nope"],
    )
    assert out.exit_code != 0
    assert "unknown rule 'nope' (known: hot)" in out.output


async def _store_and_close(tmp_path: Path, cluster: Cluster) -> None:
    store = await stored(tmp_path, cluster)
    await store.close()
