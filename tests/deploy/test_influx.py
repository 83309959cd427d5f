"""Database, retention policies and downsampling against Debian's real influxd (1.6.7); the
refusals of InfluxDB 2.x/3.x (not installable here) replayed by a tiny real HTTP server."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ecocluster.core.settings import Settings, load_settings
from ecocluster.deploy.downsample import WINDOW_MS, Downsampler
from ecocluster.deploy.influx_http import InfluxHttp
from ecocluster.deploy.influx_setup import ensure_schema, influx_maintenance
from tests.services import InfluxServer, free_port

pytestmark = pytest.mark.e2e
TZ = "Europe/Rome"


def _settings(url: str, db: str, **extra: object) -> Settings:
    return load_settings({"influx_url": url, "influx_db": db, **extra})


def _policies(influxd: InfluxServer, db: str) -> dict[str, tuple[str, bool]]:
    doc = influxd.query(f'SHOW RETENTION POLICIES ON "{db}"')
    series = doc["results"][0]["series"][0]
    cols = series["columns"]
    return {
        row[cols.index("name")]: (row[cols.index("duration")], row[cols.index("default")])
        for row in series["values"]
    }


async def test_schema_is_created_once_and_follows_the_settings(
    influxd: InfluxServer, influx_db: str
) -> None:
    settings = _settings(influxd.url, influx_db, influx_retention_raw="14d")
    async with InfluxHttp.from_settings(settings) as influx:
        first = await ensure_schema(influx, settings)
        assert first.refused == []
        assert first.raw_rp == "autogen"
        policies = _policies(influxd, influx_db)
        assert policies["autogen"] == ("336h0m0s", True)  # the default one holds raw readings
        assert policies["agg_15m"] == ("17520h0m0s", False)
        assert policies["agg_1d"] == ("0s", False)
        second = await ensure_schema(influx, settings)
        assert [s for s in second.executed if "RETENTION" in s] == []
        longer = _settings(influxd.url, influx_db, influx_retention_raw="60d")
        third = await ensure_schema(influx, longer)
        assert len(third.executed) == 2 and "ALTER RETENTION POLICY" in third.executed[1]
        assert _policies(influxd, influx_db)["autogen"] == ("1440h0m0s", True)


async def test_a_named_raw_policy_is_created_beside_autogen(
    influxd: InfluxServer, influx_db: str
) -> None:
    settings = _settings(influxd.url, influx_db, influx_rp="raw", influx_retention_raw="7d")
    async with InfluxHttp.from_settings(settings) as influx:
        report = await ensure_schema(influx, settings)
    assert report.raw_rp == "raw"
    assert _policies(influxd, influx_db)["raw"] == ("168h0m0s", False)


def _line(q: str, site: str, meter: str, ts: int, value: float, delta: float | None) -> str:
    fields = f"value={value}" + (f",delta={delta}" if delta is not None else "")
    return f"{q},meter={meter},org=o,site={site} {fields} {ts}"


async def test_downsampling_aggregates_windows_and_local_days(
    influxd: InfluxServer, influx_db: str, tmp_path: Path
) -> None:
    settings = _settings(influxd.url, influx_db)
    tz = ZoneInfo(TZ)
    today = datetime.now(tz).date()
    day = today - timedelta(days=2)
    midnight_ms = int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp() * 1000)
    next_ms = int(
        datetime.combine(day + timedelta(days=1), datetime.min.time(), tz).timestamp() * 1000
    )
    w0 = midnight_ms + 10 * 3_600_000  # a 15-minute boundary (Rome is a whole-hour offset)
    lines = [
        _line("power_w", "s1", "em-01", w0 + 1_000, 100.0, None),
        _line("power_w", "s1", "em-01", w0 + 61_000, 300.0, None),
        _line("power_w", "s1", "em-01", w0 + WINDOW_MS + 5_000, 50.0, None),
        _line("power_w", "s2", "em-01", w0 + 2_000, 7.0, None),
        _line("energy_kwh", "s1", "em-01", w0 + 1_000, 1000.5, 0.5),
        _line("energy_kwh", "s1", "em-01", w0 + 120_000, 1001.25, 0.75),
        _line("energy_kwh", "s1", "em-01", next_ms - 1_000, 1002.0, 0.75),  # last minute of day
        _line("energy_kwh", "s1", "em-01", next_ms + 1_000, 1010.0, 8.0),  # the next day
    ]
    async with InfluxHttp.from_settings(settings) as influx:
        await ensure_schema(influx, settings)
        influxd.write_lines(influx_db, "\n".join(lines))
        sampler = Downsampler(influx, settings, timezone=TZ, state_path=tmp_path / "ds.json")
        quarters, days = await sampler.run_once()
        assert quarters == 6 and days >= 3
        again = await sampler.run_once()  # recomputes only the recent windows
        assert again[0] == 0

    def rows(rp: str, q: str, where: str = "") -> list[dict[str, object]]:
        doc = influxd.query(f'SELECT * FROM "{rp}"."{q}" {where}', db=influx_db)
        series = doc["results"][0].get("series", [])
        return [dict(zip(s["columns"], v, strict=True)) for s in series for v in s["values"]]

    power = {(r["site"], r["time"]): r for r in rows("agg_15m", "power_w")}
    first = power[("s1", w0)]
    assert (first["mean"], first["min"], first["max"], first["count"], first["last"]) == (
        200.0, 100.0, 300.0, 2, 300.0,
    )  # fmt: skip
    assert power[("s1", w0 + WINDOW_MS)]["mean"] == 50.0
    assert power[("s2", w0)]["count"] == 1  # series stay apart
    energy = rows("agg_1d", "energy_kwh", f"WHERE time = {midnight_ms}ms")
    assert len(energy) == 1
    assert energy[0]["delta"] == pytest.approx(2.0)  # 0.5 + 0.75 + 0.75: the local day only
    assert energy[0]["last"] == 1002.0
    daily_power = rows("agg_1d", "power_w", f"WHERE time = {midnight_ms}ms AND site = 's1'")
    assert daily_power[0]["mean"] == pytest.approx(150.0)
    state = json.loads((tmp_path / "ds.json").read_text())
    assert state["done_15m_ms"] % WINDOW_MS == 0


class _RefusingInflux(BaseHTTPRequestHandler):
    """Answers like InfluxDB 3 Core's v1 API: /ping OK, InfluxQL DDL refused with a 400."""

    def do_GET(self) -> None:
        if self.path.startswith("/ping"):
            self.send_response(204)
            self.end_headers()
            return
        self._refuse()

    def do_POST(self) -> None:
        if self.path.startswith("/write"):
            self.send_response(204)
            self.end_headers()
            return
        self._refuse()

    def _refuse(self) -> None:
        body = json.dumps({"error": "error in InfluxQL statement: not supported"}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def refusing_influx() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusingInflux)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_refused_ddl_on_2x_3x_is_reported_not_fatal(refusing_influx: str) -> None:
    settings = _settings(refusing_influx, "ecocluster")
    async with InfluxHttp.from_settings(settings) as influx:
        report = await ensure_schema(influx, settings)
    assert report.executed == [] and len(report.refused) == 2
    assert "not supported" in report.refused[0]
    skipped = _settings(
        refusing_influx, "ecocluster", influx_create_db=False, influx_manage_retention=False
    )
    async with InfluxHttp.from_settings(skipped) as influx:
        report = await ensure_schema(influx, skipped)
    assert report.executed == report.refused == []


async def test_maintenance_never_fails_the_node_at_start(
    refusing_influx: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for url in (refusing_influx, f"http://127.0.0.1:{free_port()}"):
        settings = _settings(url, "ecocluster", data_dir=str(tmp_path))
        async with influx_maintenance(settings, timezone=TZ) as task:
            await asyncio.sleep(0.3)
            assert not task.done() or task.exception() is None
    assert "ECOCLUSTER_INFLUX_MANAGE_RETENTION=false" in caplog.text


def test_local_days_follow_daylight_saving_time() -> None:
    settings = load_settings({"influx_url": "http://127.0.0.1:1", "influx_db": "x"})
    sampler = Downsampler(
        None,  # type: ignore[arg-type]
        settings,
        timezone=TZ,
        state_path=Path("/nonexistent"),
    )
    tz = ZoneInfo(TZ)
    start = int(datetime(2026, 3, 28, 12, tzinfo=tz).timestamp() * 1000)
    end = int(datetime(2026, 3, 31, 0, tzinfo=tz).timestamp() * 1000)
    hours = [(hi - lo) / 3_600_000 for lo, hi in sampler.local_days(start, end)]
    assert hours == [24.0, 23.0, 24.0]  # 28, 29 (clocks go forward), 30 March
