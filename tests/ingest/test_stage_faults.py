"""The ingest stage under faults, against the real Mosquitto (issue 9 #1, #8, #16):
readings without a time, retained copies at every reconnect, a disk that fills up."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.core.types import ReadingBatch
from ecocluster.ingest.stage import IngestStage
from ecocluster.ingest.stores.influx import InfluxStore
from ecocluster.ingest.stores.memory import MemoryStore
from tests.ingest.conftest import Publisher, running, stored_count, wait_until
from tests.services import InfluxServer

ALL = {"start_ms": 0, "end_ms": 2**62}


def now_ms() -> int:
    return int(time.time() * 1000)


async def _once(stage: IngestStage, until: object, timeout_s: float = 15) -> None:
    async with running(stage):
        await wait_until(until, timeout_s)


UNTIMED = [
    orjson.dumps({"m": {"power_w": float(i), "energy_kwh": 100 + i / 100}}) for i in range(200)
]


@pytest.mark.parametrize("policy", ["reject", "receipt"])
async def test_a_backlog_without_timestamps_is_neither_collapsed_nor_silent(
    small_cluster: Cluster,
    ingest_settings: Settings,
    publisher: Publisher,
    topic_prefix: str,
    policy: str,
) -> None:
    settings = ingest_settings.model_copy(update={"ingest_missing_ts": policy})
    store = MemoryStore()
    first = IngestStage(small_cluster, settings, store=store)
    async with running(first):
        pass  # the persistent session exists: the broker queues for it from now on
    topic = f"{topic_prefix}/s1/em-01/data"
    await asyncio.to_thread(publisher.publish, [(topic, p) for p in UNTIMED])
    stage = IngestStage(small_cluster, settings, store=store)  # the backlog arrives at once
    if policy == "receipt":
        await _once(stage, lambda: stage.accepted >= 400)
        power = await store.query_range("power_w", **ALL)
        assert len(power) == 200  # one point per message, none collapsed
        assert sorted(power.values.tolist()) == [float(i) for i in range(200)]
        assert len(set(power.ts_ms.tolist())) == 200
    else:
        key = "ecocluster_ingest_readings_rejected_total"
        await _once(stage, lambda: stage.metrics.value(key, reason="no_time") >= 400)
        assert await stored_count(store, "power_w") == 0
        assert len(stage.dead_letters.entries()) == 200  # one entry per message, with evidence


async def test_a_retained_data_message_is_not_stored_again_at_every_reconnect(
    small_cluster: Cluster,
    ingest_settings: Settings,
    publisher: Publisher,
    topic_prefix: str,
) -> None:
    settings = ingest_settings.model_copy(update={"ingest_missing_ts": "receipt"})
    store = MemoryStore()
    untimed, timed = f"{topic_prefix}/s1/em-01/data", f"{topic_prefix}/s2/em-02/data"
    t = now_ms() - 5000
    await asyncio.to_thread(
        publisher.publish,
        [
            (untimed, orjson.dumps({"m": {"power_w": 7.0}})),
            (timed, orjson.dumps({"ts": t, "m": {"power_w": 8.0}})),
        ],
        1,
        True,
    )
    name = "ecocluster_ingest_messages_total"
    try:
        for _reconnect in range(3):
            stage = IngestStage(small_cluster, settings, store=store)
            await _once(stage, lambda s=stage: s.metrics.value(name, kind="retained_untimed") >= 1)
            await asyncio.sleep(0.2)
            power = await store.query_range("power_w", **ALL)
            assert power.ts_ms.tolist() == [t]  # the timed copy: one point, however often
            assert stage.dead_letters.entries() == []
    finally:
        await asyncio.to_thread(publisher.publish, [(untimed, b""), (timed, b"")], 1, True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_full_disk_holds_acks_keeps_running_and_resumes(
    small_cluster: Cluster,
    ingest_settings: Settings,
    publisher: Publisher,
    topic_prefix: str,
    small_disk: Path,
) -> None:
    filler = small_disk / "someone-else.bin"
    filler.write_bytes(b"x" * 200 * 1024)
    store = MemoryStore()
    store.available = False  # the store is away: everything must go to the spool
    settings = ingest_settings.model_copy(
        update={"data_dir": small_disk / "data", "mqtt_receive_maximum": 100}
    )
    stage = IngestStage(small_cluster, settings, store=store)
    t0 = now_ms() - 100_000
    n = 3000
    msgs = [
        (f"{topic_prefix}/s1/em-01/data", orjson.dumps({"ts": t0 + i, "m": {"power_w": float(i)}}))
        for i in range(n)
    ]
    async with running(stage):
        task = asyncio.create_task(asyncio.to_thread(publisher.publish, msgs))
        await wait_until(lambda: stage.metrics.value("ecocluster_ingest_spool_full") == 1, 20)
        await asyncio.sleep(0.5)
        assert stage.accepted < n  # the broker keeps the rest: we stopped acknowledging
        filler.unlink()  # space returns, then the store
        store.available = True
        await wait_until(lambda: stage.accepted >= n and stage.spool.empty, 60)
        await task
    assert await stored_count(store, "power_w") == n
    assert stage.metrics.value("ecocluster_ingest_spool_full") == 0


async def test_points_the_store_drops_are_dead_lettered_and_counted_not_stored(
    small_cluster: Cluster,
    ingest_settings: Settings,
    publisher: Publisher,
    topic_prefix: str,
    influxd: InfluxServer,
    influx_db: str,
) -> None:
    influxd.create_database(influx_db)
    influxd.query(f'CREATE RETENTION POLICY "short" ON "{influx_db}" DURATION 1h REPLICATION 1')
    store = InfluxStore(influxd.url, influx_db, rp="short")

    class Seen:
        """What the rules stage would receive after the store: only what was stored."""

        def __init__(self) -> None:
            self.values: list[float] = []

        async def on_readings(self, batch: ReadingBatch) -> None:
            self.values.extend(batch.values.tolist())

        async def on_status(self, status: object) -> None:
            pass

    seen = Seen()
    stage = IngestStage(small_cluster, ingest_settings, store=store, sinks=[seen])
    now = now_ms()
    topic = f"{topic_prefix}/s1/em-01/data"
    recent = [
        (topic, orjson.dumps({"ts": now - 1000 - i, "m": {"power_w": 1.0}})) for i in range(10)
    ]
    old = [
        (topic, orjson.dumps({"ts": now - 7_200_000 - i, "m": {"power_w": 2.0}})) for i in range(10)
    ]
    async with running(stage):
        await asyncio.to_thread(publisher.publish, recent + old)
        await wait_until(lambda: stage.metrics.value("ecocluster_ingest_store_dropped_total") >= 10)
        await wait_until(lambda: stage.accepted >= 10)
        await asyncio.sleep(0.2)
    assert stage.accepted == 10  # the dropped ten were never counted as stored
    assert seen.values == [1.0] * 10  # nor handed to the rules
    rejected = "ecocluster_ingest_readings_rejected_total"
    assert stage.metrics.value(rejected, reason="store_rejected") == 10
    entries = [e for e in stage.dead_letters.entries() if e["reason"] == "store_rejected"]
    assert sum(int(e["count"]) for e in entries) == 10  # type: ignore[call-overload]
    assert all("retention" in str(e["message"]) for e in entries)
    reader = InfluxStore(influxd.url, influx_db, rp="short")
    assert len(await reader.query_range("power_w", **ALL)) == 10
    await reader.close()
