"""Store refusals classified, never taken for success (issue 9 #2), errors mapped at each
adapter's boundary (issue 8), credentials in the InfluxDB URL never shown (issue 9 #18)."""

from __future__ import annotations

import gzip
import inspect
import logging
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import httpx
import pytest

from ecocluster.core.errors import EcoclusterError, FatalError, TransientError
from ecocluster.core.settings import load_settings
from ecocluster.core.types import DeviceStatus
from ecocluster.ingest.errors import (
    IngestError,
    StoreFatalError,
    StoreQueryError,
    StoreRejected,
    StoreUnavailable,
)
from ecocluster.ingest.statuses import StatusLatch
from ecocluster.ingest.stores import duckdb as duck_store
from ecocluster.ingest.stores import influx as influx_store
from ecocluster.ingest.stores import make_store
from ecocluster.ingest.stores.duckdb import DuckDBStore
from ecocluster.ingest.stores.influx import InfluxStore
from tests.ingest.test_stores import E1, NAN, P1, T0, batch, rows_of
from tests.services import InfluxServer

H = 3_600_000


def mock_store(handler: Callable[[httpx.Request], httpx.Response], **kwargs: object) -> InfluxStore:
    return InfluxStore(
        "http://influx.invalid:8086",
        "eco",
        create_db=False,
        retries=2,
        backoff_s=0.001,
        transport=httpx.MockTransport(handler),
        **kwargs,  # type: ignore[arg-type]
    )


def answer(code: int, error: str | None = None) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/query":
            return httpx.Response(200, json={"results": [{"statement_id": 0}]})
        return httpx.Response(code, json={"error": error} if error is not None else None)

    return handler


FOUR = batch(
    [(E1, T0, 1.0, NAN), (P1, T0, 2.0, NAN), (E1, T0 + 1, 3.0, 2.0), (P1, T0 + 1, 4.0, NAN)]
)


# -- every 4xx classified (unit level, on the store's answer texts) ------------------------------
@pytest.mark.parametrize(
    ("code", "text"),
    [
        (400, "partial write: points beyond retention policy dropped=4"),  # 1.x, names none
        (422, "partial write: points beyond retention policy dropped=4"),  # 2.x says 422
        (400, "something we have never seen"),
        (400, ""),
        (418, "I'm a teapot"),
        (409, "conflict"),
    ],
)
async def test_a_refusal_that_names_no_point_rejects_the_whole_batch(code: int, text: str) -> None:
    s = mock_store(answer(code, text))
    with pytest.raises(StoreRejected) as caught:
        await s.write(FOUR)
    assert sorted(caught.value.rejected_idx) == [0, 1, 2, 3]  # never counted as stored
    assert caught.value.dropped == (4 if "dropped" in text else None)
    await s.close()


async def test_named_lines_are_the_only_ones_rejected() -> None:
    lines = influx_store.encode_lines(FOUR)
    text = f"partial write: unable to parse '{lines[2]}': bad timestamp dropped=1"
    s = mock_store(answer(400, text))
    with pytest.raises(StoreRejected) as caught:
        await s.write(FOUR)
    assert caught.value.rejected_idx == [2] and caught.value.dropped == 1
    await s.close()


@pytest.mark.parametrize(
    ("code", "text", "match"),
    [
        (401, "authorization failed", "refused our credentials"),
        (403, "forbidden", "refused our credentials"),
        (404, "retention policy not found: bogus", "ECOCLUSTER_INFLUX_RP"),
        (404, "page not found", "base URL"),
    ],
)
async def test_refusals_retrying_cannot_fix_are_fatal_with_one_line(
    code: int, text: str, match: str
) -> None:
    s = mock_store(answer(code, text))
    with pytest.raises(StoreFatalError, match=match) as caught:
        await s.write(FOUR)
    assert isinstance(caught.value, FatalError) and "\n" not in str(caught.value)
    await s.close()


@pytest.mark.parametrize("code", [408, 429, 500, 503])
async def test_transient_answers_are_retried_then_unavailable(code: int) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(code, text="busy")

    s = mock_store(handler)
    with pytest.raises(StoreUnavailable) as caught:
        await s.write(FOUR)
    assert isinstance(caught.value, TransientError) and len(calls) == 2
    await s.close()


async def test_a_body_too_large_is_split_until_it_fits() -> None:
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        n = len(gzip.decompress(request.content).splitlines())
        seen.append(n)
        return httpx.Response(413 if n > 1 else 204)

    s = mock_store(handler)
    await s.write(FOUR)  # no exception: every line stored, in halves then quarters
    assert seen == [4, 2, 1, 1, 2, 1, 1]
    await s.close()


async def test_a_query_refused_is_a_query_error_not_a_bare_value_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/query":
            return httpx.Response(400, json={"error": "error parsing query: found BOGUS"})
        return httpx.Response(204)

    s = mock_store(handler)
    with pytest.raises(StoreQueryError, match="parsing query") as caught:
        await s.query_range("power_w", 0, 1)
    assert isinstance(caught.value, IngestError) and isinstance(caught.value, FatalError)
    await s.close()

    s = mock_store(lambda r: httpx.Response(200, text="<html>a proxy</html>"))
    with pytest.raises(StoreUnavailable, match="no InfluxDB result"):
        await s.latest()
    await s.close()


# -- against the real influxd ---------------------------------------------------------------------
async def test_points_beyond_the_retention_policy_are_dead_lettered_not_stored(
    influxd: InfluxServer, influx_db: str
) -> None:
    influxd.create_database(influx_db)
    influxd.query(f'CREATE RETENTION POLICY "short" ON "{influx_db}" DURATION 1h REPLICATION 1')
    s = InfluxStore(influxd.url, influx_db, rp="short")
    await s.open()
    now = int(time.time() * 1000)
    b = batch(
        [
            (E1, now - 1000, 1.0, NAN),
            (E1, now - 3 * H, 2.0, NAN),  # beyond the policy
            (P1, now - 2000, 3.0, NAN),
            (P1, now - 5 * H, 4.0, NAN),  # beyond the policy
        ]
    )
    with pytest.raises(StoreRejected) as caught:
        await s.write(b)
    exc = caught.value
    assert exc.dropped == 2 and sorted(exc.rejected_idx) == [1, 3]
    assert all("retention" in why for why in exc.reasons)
    stored = rows_of(await s.query_range("energy_kwh", 0, now + 1))
    assert stored == [(E1, now - 1000, 1.0, None)]
    # A batch the policy drops whole: every row named, nothing counted as stored.
    with pytest.raises(StoreRejected) as caught:
        await s.write(batch([(P1, now - 4 * H, 5.0, NAN), (P1, now - 6 * H, 6.0, NAN)]))
    assert sorted(caught.value.rejected_idx) == [0, 1] and caught.value.dropped == 2
    await s.close()


async def test_a_misspelt_retention_policy_stops_with_one_line(
    influxd: InfluxServer, influx_db: str
) -> None:
    s = InfluxStore(influxd.url, influx_db, rp="autogn")
    with pytest.raises(StoreFatalError, match=r"no retention policy 'autogn'.*autogen"):
        await s.open()
    await s.close()


async def test_credentials_in_the_url_are_never_shown(
    influxd: InfluxServer, influx_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "pa55-w0rd"  # influxd here has auth off: basic auth is accepted and ignored
    port = influxd.url.rsplit(":", 1)[1]
    url = f"http://reader:{secret}@127.0.0.1:{port}"
    settings = load_settings({"influx_url": url, "influx_db": influx_db})
    assert secret not in repr(settings) and secret not in str(settings.model_dump())
    assert settings.influx_username == "reader"
    store = make_store(settings)
    with caplog.at_level(logging.DEBUG):
        await store.open()
        await store.write(batch([(P1, T0, 1.0, NAN)]))
        assert len(await store.query_range("power_w", 0, T0 + 1)) == 1
    assert secret not in repr(store) and secret not in caplog.text
    assert not [
        r for r in caplog.records if r.name.startswith("httpx") and r.levelno < logging.WARNING
    ]
    await store.close()
    down = InfluxStore(f"http://reader:{secret}@127.0.0.1:1", "x", retries=1)
    with pytest.raises(StoreUnavailable) as caught:
        await down.open()
    assert secret not in str(caught.value) and secret not in repr(down)
    await down.close()


async def test_requests_carry_url_credentials_as_basic_auth() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    s = InfluxStore(
        "http://user:s3cret@influx.invalid:8086/",
        "eco",
        create_db=False,
        transport=httpx.MockTransport(handler),
    )
    await s.write(FOUR)
    await s.close()
    assert seen[0].headers["authorization"].startswith("Basic ")
    assert "s3cret" not in str(seen[0].url) and s.url == "http://influx.invalid:8086"


# -- exceptions mapped in one place per adapter ------------------------------------------------------
def _instances(module: object, base: type[BaseException]) -> list[BaseException]:
    out = []
    for _name, cls in inspect.getmembers(module, inspect.isclass):
        if not issubclass(cls, base) or cls is base:
            continue
        try:
            out.append(cls("boom"))
        except TypeError:
            try:
                out.append(cls("boom", request=httpx.Request("GET", "http://x")))  # type: ignore[call-arg]
            except TypeError:
                continue
    return out


@pytest.mark.parametrize(
    "exc", [*_instances(httpx, httpx.HTTPError), httpx.InvalidURL("x"), httpx.StreamClosed()]
)
def test_every_httpx_exception_is_mapped(exc: BaseException) -> None:
    with pytest.raises(EcoclusterError) as caught, influx_store.map_store_errors("write"):
        raise exc
    assert isinstance(caught.value, TransientError | FatalError)
    assert caught.value.__cause__ is exc


@pytest.mark.parametrize("exc", _instances(duckdb, duckdb.Error), ids=lambda e: type(e).__name__)
def test_every_duckdb_exception_is_mapped(exc: BaseException) -> None:
    with pytest.raises(EcoclusterError) as caught, duck_store.map_store_errors("query"):
        raise exc
    assert isinstance(caught.value, TransientError | FatalError)
    with pytest.raises(IngestError) as caught, duck_store.map_store_errors("write", rows=3):
        raise exc
    if isinstance(caught.value, StoreRejected):
        assert caught.value.rejected_idx == [0, 1, 2]


# -- statuses: batched and keyed (issue 9 #16) ------------------------------------------------------
async def test_statuses_are_one_statement_and_a_redelivery_adds_no_row(tmp_path: Path) -> None:
    s = DuckDBStore(tmp_path / "st.duckdb")
    await s.open()
    many = [DeviceStatus(f"s{i % 50}", f"m{i}", i % 2 == 0, T0 + i) for i in range(5000)]
    await s.write_statuses(many)
    await s.write_statuses(many[:100])  # redelivered
    await s.write_statuses([DeviceStatus("s0", "m0", False, T0)])  # same key, newer word
    count = await s._run(
        lambda: s._connection().execute("SELECT count(*) FROM device_status").fetchall()
    )
    assert count[0][0] == 5000
    assert (await s.device_statuses())[0] == DeviceStatus("s0", "m0", False, T0)
    await s.close()


async def test_a_file_with_unkeyed_statuses_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE device_status (site VARCHAR NOT NULL, meter VARCHAR NOT NULL,"
        " ts BIGINT NOT NULL, online BOOLEAN NOT NULL)"
    )
    con.execute("INSERT INTO device_status VALUES ('s', 'm', 1, true), ('s', 'm', 1, true)")
    con.close()
    s = DuckDBStore(path)
    await s.open()
    await s.write_statuses([DeviceStatus("s", "m", True, 1)])
    assert await s.device_statuses() == [DeviceStatus("s", "m", True, 1)]
    rows = await s._run(
        lambda: s._connection().execute("SELECT count(*) FROM device_status").fetchall()
    )
    assert rows[0][0] == 1
    await s.close()


def test_a_repeated_state_is_not_a_change() -> None:
    latch = StatusLatch()
    latch.seed([DeviceStatus("s", "a", True, 10)])
    got = latch.changes(
        [
            DeviceStatus("s", "a", True, 20),  # a redelivery / the retained copy again
            DeviceStatus("s", "b", True, 21),
            DeviceStatus("s", "a", False, 30),
            DeviceStatus("s", "a", False, 31),
            DeviceStatus("s", "a", True, 5),  # older than what is known
        ]
    )
    assert got == [DeviceStatus("s", "b", True, 21), DeviceStatus("s", "a", False, 30)]
    assert latch.repeats == 3
