"""One contract, three backends: the same tests run on the memory, DuckDB and InfluxDB stores."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from ecocluster.core.types import DeviceStatus, ReadingBatch, SeriesKey
from ecocluster.ingest.errors import StoreRejected, StoreUnavailable
from ecocluster.ingest.stores.base import Store
from ecocluster.ingest.stores.duckdb import DuckDBStore
from ecocluster.ingest.stores.influx import InfluxStore
from ecocluster.ingest.stores.memory import MemoryStore
from tests.services import InfluxServer

E1 = SeriesKey("o1", "s1", "em-01", "energy_kwh")
P1 = SeriesKey("o1", "s1", "em-01", "power_w")
E2 = SeriesKey("o2", "s2", "em-02", "energy_kwh")
W1 = SeriesKey("o1", "s1", "wm-01", "water_m3")
T0 = 1_699_999_980_000  # a multiple of 60 s


def batch(rows: list[tuple[SeriesKey, int, float, float]]) -> ReadingBatch:
    series = sorted({r[0] for r in rows})
    return ReadingBatch(
        series=tuple(series),
        series_idx=np.array([series.index(r[0]) for r in rows], np.int64),
        ts_ms=np.array([r[1] for r in rows], np.int64),
        values=np.array([r[2] for r in rows], np.float64),
        deltas=np.array([r[3] for r in rows], np.float64),
    )


def rows_of(b: ReadingBatch) -> list[tuple[SeriesKey, int, float, float | None]]:
    return [
        (b.series[i], t, v, None if math.isnan(d) else d)
        for i, t, v, d in zip(
            b.series_idx.tolist(),
            b.ts_ms.tolist(),
            b.values.tolist(),
            b.deltas.tolist(),
            strict=True,
        )
    ]


NAN = math.nan


@pytest.fixture(params=["memory", "duckdb", "influx"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store
    if request.param == "memory":
        s = MemoryStore()
    elif request.param == "duckdb":
        s = DuckDBStore(tmp_path / "store.duckdb")
    else:
        influxd: InfluxServer = request.getfixturevalue("influxd")
        s = InfluxStore(influxd.url, request.getfixturevalue("influx_db"))
    await s.open()
    yield s
    await s.close()


async def test_written_points_come_back_sorted_by_series_then_time(store: Store) -> None:
    await store.write(batch([(P1, T0 + 2000, 7.5, NAN), (P1, T0, 5.0, NAN), (E1, T0, 10.0, 0.5)]))
    got = await store.query_range("power_w", T0, T0 + 10_000)
    assert rows_of(got) == [(P1, T0, 5.0, None), (P1, T0 + 2000, 7.5, None)]
    energy = await store.query_range("energy_kwh", T0, T0 + 10_000)
    assert rows_of(energy) == [(E1, T0, 10.0, 0.5)]


async def test_range_is_half_open_and_filtered(store: Store) -> None:
    await store.write(batch([(E1, T0, 1.0, NAN), (E1, T0 + 1000, 2.0, 1.0), (E2, T0, 3.0, NAN)]))
    got = await store.query_range("energy_kwh", T0, T0 + 1000)
    assert sorted((k.meter, t) for k, t, _, _ in rows_of(got)) == [("em-01", T0), ("em-02", T0)]
    only_o2 = await store.query_range("energy_kwh", T0, T0 + 5000, where={"org": "o2"})
    assert rows_of(only_o2) == [(E2, T0, 3.0, None)]


async def test_rewriting_a_point_overwrites_and_keeps_its_delta(store: Store) -> None:
    await store.write(batch([(E1, T0, 10.0, 0.25)]))
    await store.write(batch([(E1, T0, 10.0, NAN)]))  # a QoS 1 redelivery without a delta
    await store.write(batch([(E1, T0, 10.0, NAN), (E1, T0, 10.0, NAN)]))
    got = await store.query_range("energy_kwh", 0, T0 + 1)
    assert rows_of(got) == [(E1, T0, 10.0, 0.25)]


async def test_aggregate_per_bucket_and_series(store: Store) -> None:
    rows = [(P1, T0 + i * 10_000, float(i), NAN) for i in range(12)]  # two 1-min buckets
    await store.write(batch([*rows, (E1, T0, 5.0, NAN), (E1, T0 + 30000, 6.0, 1.0)]))
    expect = {
        "mean": [2.5, 8.5],
        "min": [0.0, 6.0],
        "max": [5.0, 11.0],
        "sum": [15.0, 51.0],
        "last": [5.0, 11.0],
        "count": [6.0, 6.0],
    }
    for fn, values in expect.items():
        got = await store.query_aggregate("power_w", T0, T0 + 120_000, every_ms=60_000, fn=fn)  # type: ignore[arg-type]
        assert got.ts_ms.tolist() == [T0, T0 + 60_000], fn
        assert got.values.tolist() == pytest.approx(values), fn
    energy = await store.query_aggregate("energy_kwh", T0, T0 + 120_000, every_ms=60_000, fn="sum")
    assert rows_of(energy) == [(E1, T0, 11.0, 1.0)]


async def test_latest_per_series(store: Store) -> None:
    await store.write(
        batch(
            [(P1, T0, 1.0, NAN), (P1, T0 + 5, 2.0, NAN), (E1, T0 + 1, 7.0, 0.5), (E1, T0, 6.5, NAN)]
        )
    )
    got = await store.latest()
    assert rows_of(got) == [(E1, T0 + 1, 7.0, 0.5), (P1, T0 + 5, 2.0, None)]
    only_power = await store.latest("power_w")
    assert rows_of(only_power) == [(P1, T0 + 5, 2.0, None)]


async def test_several_series_sorted_with_their_own_table_and_nan_deltas(store: Store) -> None:
    e3 = SeriesKey("o1", "s3", "em-03", "energy_kwh")
    await store.write(
        batch(
            [
                (E2, T0 + 2000, 3.0, 1.0),
                (e3, T0 + 1000, 8.0, NAN),
                (E1, T0 + 1000, 2.0, NAN),
                (E2, T0, 2.0, NAN),
                (e3, T0, 7.0, 0.5),
                (E1, T0, 1.0, 0.25),
                (P1, T0, 9.0, NAN),
            ]
        )
    )
    got = await store.query_range("energy_kwh", T0, T0 + 10_000)
    assert list(got.series) == [E1, e3, E2]
    assert got.series_idx.dtype == np.int64 and got.ts_ms.dtype == np.int64
    assert got.values.dtype == np.float64 and got.deltas.dtype == np.float64
    assert rows_of(got) == [
        (E1, T0, 1.0, 0.25),
        (E1, T0 + 1000, 2.0, None),
        (e3, T0, 7.0, 0.5),
        (e3, T0 + 1000, 8.0, None),
        (E2, T0, 2.0, None),
        (E2, T0 + 2000, 3.0, 1.0),
    ]
    only_o1 = await store.query_range("energy_kwh", T0, T0 + 10_000, where={"org": "o1"})
    assert list(only_o1.series) == [E1, e3] and len(only_o1) == 4
    assert len(await store.query_range("energy_kwh", T0 + 5000, T0 + 10_000)) == 0
    agg = await store.query_aggregate("energy_kwh", T0, T0 + 10_000, every_ms=60_000, fn="sum")
    assert rows_of(agg) == [(E1, T0, 3.0, 0.25), (e3, T0, 15.0, 0.5), (E2, T0, 5.0, 1.0)]
    count = await store.query_aggregate("power_w", T0, T0 + 10_000, every_ms=60_000, fn="count")
    assert rows_of(count) == [(P1, T0, 1.0, None)]
    newest = await store.latest("energy_kwh")
    assert rows_of(newest) == [
        (E1, T0 + 1000, 2.0, None),
        (e3, T0 + 1000, 8.0, None),
        (E2, T0 + 2000, 3.0, 1.0),
    ]


async def test_consumption_sums_deltas_per_meter_site_and_org(store: Store) -> None:
    await store.write(
        batch(
            [
                (E1, T0, 100.0, NAN),
                (E1, T0 + 1000, 101.5, 1.5),
                (E1, T0 + 2000, 104.0, 2.5),
                (E2, T0 + 1000, 50.0, 4.0),
                (W1, T0 + 1000, 9.0, 0.5),
            ]
        )
    )
    assert await store.consumption("energy_kwh", T0, T0 + 5000, by="meter") == {
        "s1/em-01": 4.0,
        "s2/em-02": 4.0,
    }
    assert await store.consumption("energy_kwh", T0, T0 + 1500, by="site") == {"s1": 1.5, "s2": 4.0}
    assert await store.consumption("energy_kwh", T0, T0 + 5000, by="org", where={"org": "o1"}) == {
        "o1": 4.0
    }
    assert await store.consumption("water_m3", T0, T0 + 5000, by="org") == {"o1": 0.5}


async def test_device_statuses_newest_per_device(store: Store) -> None:
    await store.write_statuses(
        [
            DeviceStatus("s1", "em-01", True, T0),
            DeviceStatus("s1", "em-01", False, T0 + 10),
            DeviceStatus("s2", "aq-01", True, T0 + 5),
        ]
    )
    assert await store.device_statuses() == [
        DeviceStatus("s1", "em-01", False, T0 + 10),
        DeviceStatus("s2", "aq-01", True, T0 + 5),
    ]


async def test_filters_reject_unknown_labels(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown filter"):
        await store.query_range("power_w", 0, 1, where={"category": "hotel"})
    with pytest.raises(ValueError, match="invalid"):
        await store.latest(where={"site": "x' OR 1=1"})


async def test_unreachable_influx_is_unavailable() -> None:
    from tests.services import free_port

    s = InfluxStore(f"http://127.0.0.1:{free_port()}", "x", retries=2, backoff_s=0.01, timeout_s=1)
    with pytest.raises(StoreUnavailable):
        await s.write(batch([(P1, T0, 1.0, NAN)]))
    with pytest.raises(StoreUnavailable):
        await s.open()
    await s.close()


async def test_influx_partial_write_names_only_the_bad_points(
    influxd: InfluxServer, influx_db: str
) -> None:
    s = InfluxStore(influxd.url, influx_db)
    await s.open()
    influxd.write_lines(influx_db, f"power_w,meter=em-01,org=o1,site=s1 value=1i {T0 - 1000}")
    good, bad = (E1, T0, 1.0, NAN), (P1, T0, 2.0, NAN)  # power_w.value is an integer there now
    with pytest.raises(StoreRejected) as caught:
        await s.write(batch([good, bad]))
    assert caught.value.rejected_idx == [1]
    assert "conflict" in caught.value.reasons[0]
    assert rows_of(await s.query_range("energy_kwh", 0, T0 + 1)) == [(E1, T0, 1.0, None)]
    await s.close()


async def test_influx_unparsable_line_is_the_only_one_rejected(
    influxd: InfluxServer, influx_db: str
) -> None:
    s = InfluxStore(influxd.url, influx_db)
    await s.open()
    evil = SeriesKey("o1", "s1", "em-01", "power_w\\")  # a measurement ending in a backslash
    good = (E1, T0, 1.0, NAN)
    b = batch([good, (evil, T0, 2.0, NAN)])
    try:
        await s.write(b)
    except StoreRejected as exc:
        assert 0 not in exc.rejected_idx
    assert rows_of(await s.query_range("energy_kwh", 0, T0 + 1)) == [(E1, T0, 1.0, None)]
    await s.close()


async def test_influx_write_request_on_the_wire(http_receiver) -> None:  # type: ignore[no-untyped-def]
    import gzip
    from urllib.parse import parse_qs, urlsplit

    http_receiver.status = 204
    s = InfluxStore(http_receiver.url, "eco", rp="autogen", token="t0ken", create_db=False)
    await s.write(batch([(E1, T0, 10.0, 0.5), (P1, T0, 5.0, NAN)]))
    await s.close()
    (req,) = http_receiver.wait_for(1)
    query = parse_qs(urlsplit(req.path).query)
    assert urlsplit(req.path).path == "/write"
    assert query == {"db": ["eco"], "rp": ["autogen"], "precision": ["ms"]}
    headers = {k.lower(): v for k, v in req.headers.items()}
    assert headers["authorization"] == "Token t0ken" and headers["content-encoding"] == "gzip"
    assert gzip.decompress(req.body).decode().splitlines() == [
        f"energy_kwh,meter=em-01,org=o1,site=s1 value=10.0,delta=0.5 {T0}",
        f"power_w,meter=em-01,org=o1,site=s1 value=5.0 {T0}",
    ]


async def test_influx_retries_5xx_then_gives_up(http_receiver) -> None:  # type: ignore[no-untyped-def]
    http_receiver.status = 503
    s = InfluxStore(http_receiver.url, "eco", retries=3, backoff_s=0.01, create_db=False)
    with pytest.raises(StoreUnavailable, match="503"):
        await s.write(batch([(P1, T0, 5.0, NAN)]))
    await s.close()
    assert len(http_receiver.wait_for(3)) == 3
