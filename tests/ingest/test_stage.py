"""End to end: real Mosquitto → the ingest stage → a real store (and the memory twin)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import orjson
import pytest

from ecocluster.core.registry import Cluster
from ecocluster.core.settings import Settings
from ecocluster.core.types import DeviceStatus, ReadingBatch
from ecocluster.ingest.stage import IngestStage
from ecocluster.ingest.stores.duckdb import DuckDBStore
from ecocluster.ingest.stores.influx import InfluxStore
from ecocluster.ingest.stores.memory import MemoryStore
from tests.ingest.conftest import Publisher, running, stored_count, wait_until
from tests.services import InfluxServer

pytestmark = pytest.mark.e2e
ALL = {"start_ms": 0, "end_ms": 2**62}


def now_ms() -> int:
    return int(time.time() * 1000)


def with_(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update=changes)


class RecordingSink:
    def __init__(self) -> None:
        self.readings = 0
        self.statuses: list[DeviceStatus] = []

    async def on_readings(self, batch: ReadingBatch) -> None:
        self.readings += len(batch)

    async def on_status(self, status: DeviceStatus) -> None:
        self.statuses.append(status)


async def test_exact_counts_json_and_senml_into_influx(
    small_cluster: Cluster,
    ingest_settings: Settings,
    publisher: Publisher,
    topic_prefix: str,
    influxd: InfluxServer,
    influx_db: str,
) -> None:
    store = InfluxStore(influxd.url, influx_db)
    sink = RecordingSink()
    stage = IngestStage(small_cluster, ingest_settings, store=store, sinks=[sink])
    t0 = now_ms() - 600_000
    native = [
        (
            f"{topic_prefix}/s1/em-01/data",
            orjson.dumps(
                {"ts": t0 + i * 1000, "m": {"energy_kwh": 100 + i * 0.01, "power_w": 1000.0 + i}}
            ),
        )
        for i in range(300)
    ]
    batched = [  # arrays of objects: 3 readings each
        (
            f"{topic_prefix}/s1/wm-01/data",
            orjson.dumps(
                [
                    {"ts": t0 + i * 1000, "m": {"water_m3": 5 + i * 0.01, "flow_lpm": 1.0}},
                    {"ts": t0 + i * 1000 + 500, "m": {"flow_lpm": 2.0}},
                ]
            ),
        )
        for i in range(200)
    ]
    senml = [
        (
            f"{topic_prefix}/s2/aq-01/senml",
            orjson.dumps(
                [
                    {
                        "bn": "urn:dev:eco:s2:aq-01:",
                        "bt": (t0 + i * 1000) / 1000,
                        "n": "no2",
                        "u": "ppb",
                        "v": 10,
                    },
                    {"n": "temp", "u": "Cel", "v": 12.5},
                    {"n": "pm10", "u": "ug/m3", "v": 20, "t": 0.25},
                ]
            ),
        )
        for i in range(250)
    ]
    async with running(stage):
        await asyncio.to_thread(publisher.publish, native + batched + senml)
        expected = 300 * 2 + 200 * 3 + 250 * 3
        await wait_until(lambda: stage.accepted >= expected, 20)
    assert stage.accepted == expected and sink.readings == expected
    reader = InfluxStore(influxd.url, influx_db)
    quantities = (
        "energy_kwh",
        "power_w",
        "water_m3",
        "flow_lpm",
        "no2_ugm3",
        "temp_c",
        "pm10_ugm3",
    )
    counts = {q: await stored_count(reader, q) for q in quantities}
    assert counts == {
        "energy_kwh": 300,
        "power_w": 300,
        "water_m3": 200,
        "flow_lpm": 400,
        "no2_ugm3": 250,
        "temp_c": 250,
        "pm10_ugm3": 250,
    }
    no2 = await reader.query_range("no2_ugm3", **ALL)
    assert no2.values[0] == pytest.approx(19.12, rel=1e-3)
    assert await reader.consumption("energy_kwh", **ALL, by="meter") == {
        "s1/em-01": pytest.approx(299 * 0.01)
    }
    await reader.close()


async def test_every_rejection_class_beside_a_good_reading(
    small_cluster: Cluster,
    ingest_settings: Settings,
    publisher: Publisher,
    topic_prefix: str,
) -> None:
    store = MemoryStore()
    settings = with_(ingest_settings, max_payload_bytes=4096)
    stage = IngestStage(small_cluster, settings, store=store)
    t = now_ms() - 1000
    p = topic_prefix
    good = {"power_w": 1.0}
    cases = {
        "not_finite": (
            f"{p}/s1/em-01/data",
            b'{"ts": %d, "m": {"power_w": 1.0, "energy_kwh": Infinity}}' % t,
        ),
        "not_a_number": (
            f"{p}/s1/em-01/data",
            orjson.dumps({"ts": t + 1, "m": {**good, "energy_kwh": "12"}}),
        ),
        "undeclared_quantity": (
            f"{p}/s1/em-01/data",
            orjson.dumps({"ts": t + 2, "m": {**good, "co2_ppm": 400}}),
        ),
        "unknown_quantity": (
            f"{p}/s1/em-01/data",
            orjson.dumps({"ts": t + 3, "m": {**good, "volts": 230}}),
        ),
        "future": (
            f"{p}/s1/em-01/data",
            orjson.dumps([{"ts": t + 4, "m": good}, {"ts": t + 3_600_000, "m": good}]),
        ),
        "too_old": (
            f"{p}/s1/em-01/data",
            orjson.dumps([{"ts": t + 5, "m": good}, {"ts": 1000, "m": good}]),
        ),
        "unit": (
            f"{p}/s1/em-01/senml",
            orjson.dumps(
                [
                    {"n": "power", "u": "W", "v": 1, "bt": (t + 6) / 1000},
                    {"n": "power", "u": "hp", "v": 1, "t": 1},
                ]
            ),
        ),
        "not_json": (f"{p}/s1/em-01/data", b"{oops"),
        "unknown_site": (f"{p}/nowhere/em-01/data", orjson.dumps({"m": good})),
        "unknown_meter": (f"{p}/s2/wm-01/data", orjson.dumps({"m": good})),  # wm-01 belongs to s1
        "bad_id": (f"{p}/s1/em 01,x=1/data", orjson.dumps({"m": good})),
        "payload_too_large": (
            f"{p}/s1/em-01/data",
            orjson.dumps({"ts": t, "m": good, "pad": "x" * 4200}),
        ),
        "bad_status": (f"{p}/s1/em-01/status", b"maybe"),
    }
    async with running(stage):
        await asyncio.to_thread(publisher.publish, list(cases.values()))
        await wait_until(lambda: len(stage.dead_letters.entries()) >= len(cases), 15)
        await wait_until(lambda: stage.accepted >= 7, 5)
    entries = stage.dead_letters.entries()
    assert sorted(e["reason"] for e in entries) == sorted(cases)
    assert all(e["topic"] and e["message"] and "recv_ms" in e for e in entries)
    big = next(e for e in entries if e["reason"] == "payload_too_large")
    assert big["payload_bytes"] > 4096 and len(big["payload"]) <= 1024
    power = await store.query_range("power_w", **ALL)
    assert sorted(power.ts_ms.tolist()) == [t + i for i in range(7)]  # each good neighbour stored
    assert await stored_count(store, "energy_kwh") == 0
    assert stage.metrics.value("ecocluster_ingest_readings_rejected_total", reason="unit") == 1
    # line-protocol specials never reach the store
    assert all(" " not in k.meter and "," not in k.meter for k in store.points)


async def test_influxd_stopped_mid_stream_every_reading_stored_once(
    small_cluster: Cluster,
    ingest_settings: Settings,
    publisher: Publisher,
    topic_prefix: str,
    influxd: InfluxServer,
    influx_db: str,
) -> None:
    store = InfluxStore(influxd.url, influx_db, retries=2, backoff_s=0.05, timeout_s=2)
    stage = IngestStage(small_cluster, ingest_settings, store=store)
    t0 = now_ms() - 3_000_000
    msgs = [
        (
            f"{topic_prefix}/s2/em-02/data",
            orjson.dumps(
                {"ts": t0 + i * 1000, "m": {"energy_kwh": 50 + i * 0.1, "power_w": float(i)}}
            ),
        )
        for i in range(1500)
    ]
    try:
        async with running(stage):
            await asyncio.to_thread(publisher.publish, msgs[:500])
            await wait_until(lambda: stage.accepted >= 1000, 15)
            await asyncio.to_thread(influxd.stop)
            await asyncio.to_thread(publisher.publish, msgs[500:1000])
            await wait_until(lambda: stage.accepted >= 2000, 20)
            assert not stage.spool.empty  # made durable in the spool while influxd was down
            await asyncio.to_thread(influxd.start)
            await asyncio.to_thread(publisher.publish, msgs[1000:])
            await wait_until(lambda: stage.accepted >= 3000 and stage.spool.empty, 30)
    finally:
        await asyncio.to_thread(influxd.start)
    reader = InfluxStore(influxd.url, influx_db)
    power = await reader.query_range("power_w", **ALL)
    assert len(power) == 1500 and len(set(power.ts_ms.tolist())) == 1500
    total = await reader.consumption("energy_kwh", **ALL, by="meter")
    assert total["s2/em-02"] == pytest.approx(1499 * 0.1)  # no delta lost or doubled
    await reader.close()


async def test_register_reset_and_replacement_never_store_bad_deltas(
    small_cluster: Cluster,
    ingest_settings: Settings,
    publisher: Publisher,
    topic_prefix: str,
) -> None:
    store = MemoryStore()
    stage = IngestStage(small_cluster, ingest_settings, store=store)
    t0 = now_ms() - 1_000_000
    series = [100.0, 100.5, 101.0, 0.2, 0.4, 58000.0, 58000.5]  # reset to 0, then a new meter
    msgs = [
        (
            f"{topic_prefix}/s1/em-01/data",
            orjson.dumps({"ts": t0 + i * 100_000, "m": {"energy_kwh": v}}),
        )
        for i, v in enumerate(series)
    ]
    async with running(stage):
        for n, m in enumerate(msgs, 1):  # one at a time, in order
            await asyncio.to_thread(publisher.publish, [m])
            await wait_until(lambda n=n: stage.accepted >= n, 5)
        # a late reading (out of order) is stored without a delta
        await asyncio.to_thread(
            publisher.publish,
            [(msgs[0][0], orjson.dumps({"ts": t0 + 50_000, "m": {"energy_kwh": 100.2}}))],
        )
        await wait_until(lambda: stage.accepted >= 8, 5)
    got = await store.query_range("energy_kwh", **ALL)
    deltas = [None if d != d else round(d, 6) for d in got.deltas.tolist()]
    assert deltas == [None, None, 0.5, 0.5, None, 0.4, None, 0.5]
    flags = stage.flags_log.entries()
    assert [f["reason"] for f in flags] == ["drop", "reset", "jump", "shift"]
    assert stage.metrics.value("ecocluster_ingest_register_flags_total", kind="reset") == 1


async def test_redelivery_and_restart_neither_duplicate_nor_double_deltas(
    small_cluster: Cluster,
    ingest_settings: Settings,
    publisher: Publisher,
    topic_prefix: str,
) -> None:
    store = MemoryStore()
    t0 = now_ms() - 100_000
    msgs = [
        (
            f"{topic_prefix}/s1/wm-01/data",
            orjson.dumps({"ts": t0 + i * 1000, "m": {"water_m3": 10 + i / 100}}),
        )
        for i in range(20)
    ]
    stage = IngestStage(small_cluster, ingest_settings, store=store)
    async with running(stage):
        await asyncio.to_thread(publisher.publish, msgs[:10])
        await wait_until(lambda: stage.accepted >= 10, 10)
    # while the ingestor is away the broker queues for its persistent session
    await asyncio.to_thread(publisher.publish, msgs[5:20])  # 5 duplicates, as a redelivery would be
    stage = IngestStage(small_cluster, ingest_settings, store=store)
    async with running(stage):
        await wait_until(lambda: stage.accepted >= 15, 10)
    got = await store.query_range("water_m3", **ALL)
    assert len(got) == 20
    assert await store.consumption("water_m3", **ALL, by="meter") == {
        "s1/wm-01": pytest.approx(0.19)
    }
    assert stage.tracker.values_of(small_cluster.series_index[("s1", "wm-01", "water_m3")]) == (
        t0 + 19_000,
        10.19,
    )


async def test_status_messages_are_recorded_over_mqtt_311(
    small_cluster: Cluster,
    ingest_settings: Settings,
    publisher: Publisher,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    sink = RecordingSink()
    settings = with_(ingest_settings, mqtt_protocol="3.1.1")
    await asyncio.to_thread(
        publisher.publish, [(f"{topic_prefix}/s1/em-01/status", b"online")], 1, True
    )
    stage = IngestStage(small_cluster, settings, store=store, sinks=[sink])
    async with running(stage):
        await wait_until(lambda: len(sink.statuses) >= 1, 10)  # the retained one
        await asyncio.to_thread(
            publisher.publish,
            [
                (f"{topic_prefix}/s2/aq-01/status", json.dumps({"status": "offline"}).encode()),
                (
                    f"{topic_prefix}/s2/aq-01/data",
                    orjson.dumps({"ts": now_ms(), "m": {"temp_c": 3.5}}),
                ),
            ],
        )
        await wait_until(lambda: len(sink.statuses) >= 2 and stage.accepted >= 1, 10)
        statuses = await store.device_statuses()
    assert [(s.site, s.meter, s.online) for s in statuses] == [
        ("s1", "em-01", True),
        ("s2", "aq-01", False),
    ]
    await asyncio.to_thread(publisher.publish, [(f"{topic_prefix}/s1/em-01/status", b"")], 1, True)


async def test_full_spool_holds_acks_and_nothing_is_lost(
    small_cluster: Cluster,
    ingest_settings: Settings,
    publisher: Publisher,
    topic_prefix: str,
) -> None:
    store = MemoryStore()
    store.available = False
    settings = with_(ingest_settings, spool_max_bytes=2048, mqtt_receive_maximum=20)
    stage = IngestStage(small_cluster, settings, store=store)
    t0 = now_ms() - 100_000
    msgs = [
        (f"{topic_prefix}/s1/em-01/data", orjson.dumps({"ts": t0 + i, "m": {"power_w": float(i)}}))
        for i in range(200)
    ]
    async with running(stage):
        await asyncio.to_thread(publisher.publish, msgs)
        await wait_until(lambda: stage.metrics.value("ecocluster_ingest_spool_full") == 1, 10)
        await asyncio.sleep(0.3)
        held = stage.accepted
        assert held < 200  # the broker keeps the rest: we stopped acknowledging
        store.available = True
        await wait_until(lambda: stage.accepted >= 200 and stage.spool.empty, 30)
    got = await store.query_range("power_w", **ALL)
    assert len(got) == 200


async def test_a_small_broker_window_does_not_stall_ingest(
    small_cluster: Cluster, ingest_settings: Settings, tmp_path: Path, topic_prefix: str
) -> None:
    """Mosquitto's default window is 20 unacknowledged messages; we are told 1000 and flush by
    age only after 2 s, so only stall detection keeps this fast."""
    from tests.ingest.conftest import Publisher
    from tests.services import MosquittoServer

    broker = MosquittoServer(tmp_path / "small-window", max_inflight_messages=20)
    broker.start()
    try:
        settings = ingest_settings.model_copy(
            update={
                "mqtt_url": _secret(broker.url),
                "ingest_flush_ms": 2000,
                "mqtt_protocol": "3.1.1",
            }
        )
        store = MemoryStore()
        stage = IngestStage(small_cluster, settings, store=store)
        pub = Publisher(broker.port)
        t0 = now_ms() - 10_000
        msgs = [
            (f"{topic_prefix}/s1/em-01/data", orjson.dumps({"ts": t0 + i, "m": {"power_w": 1.0}}))
            for i in range(2000)
        ]
        async with running(stage):
            started = time.monotonic()
            await asyncio.to_thread(pub.publish, msgs)
            await wait_until(lambda: stage.accepted >= 2000, 30)
            elapsed = time.monotonic() - started
        pub.close()
    finally:
        broker.stop()
    assert elapsed < 3  # flushing by age alone takes several seconds here
    assert len(await store.query_range("power_w", **ALL)) == 2000


def _secret(url: str):  # type: ignore[no-untyped-def]
    from pydantic import SecretStr

    return SecretStr(url)


async def test_broker_restart_mid_stream_reconnects_and_loses_nothing(
    small_cluster: Cluster, ingest_settings: Settings, tmp_path: Path, topic_prefix: str
) -> None:
    from tests.ingest.conftest import Publisher
    from tests.services import MosquittoServer

    broker = MosquittoServer(tmp_path / "restarting")
    broker.start()
    store = MemoryStore()
    settings = ingest_settings.model_copy(update={"mqtt_url": _secret(broker.url)})
    stage = IngestStage(small_cluster, settings, store=store)
    t0 = now_ms() - 10_000
    msgs = [
        (f"{topic_prefix}/s2/em-02/data", orjson.dumps({"ts": t0 + i, "m": {"power_w": float(i)}}))
        for i in range(1000)
    ]
    try:
        async with running(stage):
            pub = Publisher(broker.port)
            await asyncio.to_thread(pub.publish, msgs[:500])
            await wait_until(lambda: stage.accepted >= 500, 10)
            pub.close()
            await asyncio.to_thread(broker.restart)  # sessions persist across the restart
            await wait_until(lambda: stage.subscriber.connected.is_set(), 15)
            pub = Publisher(broker.port)
            await asyncio.to_thread(pub.publish, msgs[500:])
            await wait_until(lambda: stage.accepted >= 1000, 15)
            pub.close()
            assert stage.subscriber.generation >= 2  # it really reconnected
    finally:
        broker.stop()
    assert len(await store.query_range("power_w", **ALL)) == 1000
