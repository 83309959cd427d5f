"""The backtest against the real embedded store (DuckDB), and through the CLI."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from click.testing import Result
from typer.testing import CliRunner

from ecocluster.cli import app
from ecocluster.core.registry import Cluster
from ecocluster.ingest.stores.duckdb import DuckDBStore
from ecocluster.rules.backtest import SpanError, run_backtest
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


@pytest.mark.parametrize(
    ("tick_ms", "span_ms", "message"),
    [
        (1, 86_400_000, "must be at least 1s"),  # 1 ms over a day once took 1.5 GB
        (1_000, 3000 * 86_400_000, "use --tick 2m10s or more"),
    ],
)
async def test_backtest_bounds_the_number_of_ticks(
    make_cluster: Callable[..., Cluster], tick_ms: int, span_ms: int, message: str
) -> None:
    with pytest.raises(SpanError, match=message) as info:
        await run_backtest(make_cluster([HOT]), None, T0, T0 + span_ms, tick_ms=tick_ms)  # type: ignore[arg-type]
    assert info.value.option == "--tick"


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
    assert out.exit_code == 2
    assert out.stderr == "--rule: unknown rule 'nope' (known: hot)\n"


def _backtest_cli(tmp_path: Path, cluster: Cluster, *extra: str) -> Result:
    start = datetime.fromtimestamp(T0 / 1000, UTC).isoformat()
    end = datetime.fromtimestamp((T0 + 60 * MIN) / 1000, UTC).isoformat()
    args = ["rules", "backtest", "--config", str(cluster.source), "--from", start, "--to", end]
    return CliRunner().invoke(app, [*args, *extra])


@pytest.fixture
def two_episodes(
    tmp_path: Path, make_cluster: Callable[..., Cluster], monkeypatch: pytest.MonkeyPatch
) -> Cluster:
    import asyncio

    cluster = make_cluster([HOT, {**WET, "scope": "site", "severity": "critical"}])
    asyncio.run(_store_and_close(tmp_path, cluster))
    monkeypatch.setenv("ECOCLUSTER_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ECOCLUSTER_INFLUX_URL", raising=False)
    return cluster


def test_cli_backtest_writes_one_json_episode_per_line(
    tmp_path: Path, two_episodes: Cluster
) -> None:
    out = _backtest_cli(tmp_path, two_episodes, "--format", "jsonl")
    assert out.exit_code == 0, out.output
    episodes = [orjson.loads(line) for line in out.stdout.splitlines()]
    assert episodes == [
        {
            "rule": "hot",
            "severity": "warning",
            "labels": {
                "org": "o1",
                "site": "s1",
                "meter": "m1",
                "quantity": "power_w",
                "category": "hotel",
            },
            "fired_ms": T0 + 13 * MIN,
            "resolved_ms": T0 + 21 * MIN,
        },
        {
            "rule": "wet",
            "severity": "critical",
            "labels": {"org": "o2", "site": "s3", "quantity": "flow_lpm", "category": "town_hall"},
            "fired_ms": T0 + 31 * MIN,
            "resolved_ms": None,  # still firing at the end
        },
    ]
    assert "2 episodes" in out.stderr


def test_cli_backtest_writes_csv_with_one_column_per_label(
    tmp_path: Path, two_episodes: Cluster
) -> None:
    out = _backtest_cli(tmp_path, two_episodes, "--format", "csv")
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert list(rows[0]) == [
        "rule", "severity", "org", "site", "meter", "quantity", "category", "fired_ms",
        "resolved_ms",
    ]  # fmt: skip
    assert [(r["rule"], r["meter"], r["site"], r["resolved_ms"]) for r in rows] == [
        ("hot", "m1", "s1", str(T0 + 21 * MIN)),
        ("wet", "", "s3", ""),  # a site-scope target has no meter; still firing: empty
    ]
    assert int(rows[1]["fired_ms"]) == T0 + 31 * MIN


def test_cli_backtest_table_stays_the_default(tmp_path: Path, two_episodes: Cluster) -> None:
    out = _backtest_cli(tmp_path, two_episodes)
    assert out.exit_code == 0, out.output
    assert "What would have fired (2 episodes)" in out.stdout


async def _store_and_close(tmp_path: Path, cluster: Cluster) -> None:
    store = await stored(tmp_path, cluster)
    await store.close()
