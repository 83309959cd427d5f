"""`ecocluster run`: the composition root builds and runs stages, and refuses unknown ones."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from ecocluster.cli import app
from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.node import build_stages, run_node
from tests.ingest.conftest import Publisher


def test_unknown_stage_is_refused(small_cluster_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["run", "--config", str(small_cluster_path), "--only", "ingest,bogus"]
    )
    assert result.exit_code == 2
    assert "unknown stage 'bogus'" in result.output


@pytest.mark.e2e
async def test_node_runs_ingest_until_stopped(
    small_cluster: Cluster, ingest_settings: Settings, publisher: Publisher, topic_prefix: str
) -> None:
    stages = build_stages(small_cluster, ingest_settings, ["ingest"])
    stop, ready = asyncio.Event(), asyncio.Event()
    node = asyncio.create_task(run_node(stages, stop=stop, on_ready=ready.set))
    await asyncio.wait_for(ready.wait(), 15)
    await asyncio.to_thread(
        publisher.publish,
        [(f"{topic_prefix}/s1/em-01/data", orjson.dumps({"m": {"power_w": 3.0}}))],
    )
    ingest = stages[0]
    for _ in range(200):
        if ingest.accepted:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(node, 15)
    assert ingest.accepted == 1  # type: ignore[attr-defined]
    assert (Path(ingest_settings.data_dir) / "ecocluster.duckdb").exists()  # DuckDB is the default
