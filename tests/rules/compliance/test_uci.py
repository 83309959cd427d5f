"""The report against a real hourly data set (UCI Air Quality, an Italian city, 2004-2005;
`../shared/data/air_quality_uci/`): the test recomputes the averages and exceedance counts
with plain Python, straight from the directive's definitions, not with the project's code.

The file's `timestamp_local` has no zone; we read it as the start of the hour in local
standard time (CET, UTC+1), the directive's time base. Missing values (-200) are empty.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from ecocluster.core.types import ReadingBatch, SeriesKey
from ecocluster.ingest.stores.memory import MemoryStore
from ecocluster.rules.compliance.report import build_report
from tests.conftest import SHARED_DATA
from tests.rules.compliance.fixtures import write_cluster

CSV = SHARED_DATA / "air_quality_uci" / "AirQualityUCI_tidy.csv"
CET_MS = 3_600_000
Rows = dict[datetime, dict[str, float | None]]


def _frame() -> Rows:
    out: Rows = {}
    with CSV.open(newline="") as f:
        for row in csv.DictReader(f):
            moment = datetime.fromisoformat(row["timestamp_local"])
            out[moment] = {
                k: (float(v) if v not in ("", None) else None)
                for k, v in row.items()
                if k != "timestamp_local"
            }
    return out


def _ts_ms(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1)).total_seconds() * 1000) - CET_MS


def _expected_no2_hours(rows: Rows, year: int) -> int:
    return sum(
        1
        for t, r in rows.items()
        if t.year == year and r["NO2(GT)"] is not None and r["NO2(GT)"] > 200
    )


def _expected_daily(rows: Rows, column: str, year: int) -> dict[date, float]:
    """Daily means with >= 18 valid hours (the file's hours are already standard time)."""
    by_day: dict[date, list[float]] = defaultdict(list)
    for t, r in rows.items():
        if t.year == year and r[column] is not None:
            by_day[t.date()].append(r[column])  # type: ignore[arg-type]
    return {d: sum(v) / len(v) for d, v in by_day.items() if len(v) >= 18}


def _expected_co_max8h(rows: Rows, year: int) -> dict[date, float]:
    """Windows of the 8 hours t-7 .. t with >= 6 valid values, belonging to the day of their
    last hour t (the window ends at t + 1 h); a day's maximum needs >= 18 valid windows."""
    windows: dict[date, list[float]] = defaultdict(list)
    for t in rows:
        if t.year != year:
            continue
        vals = [rows.get(t - timedelta(hours=k), {}).get("CO(GT)") for k in range(8)]
        valid = [v for v in vals if v is not None]
        if len(valid) >= 6:
            windows[t.date()].append(sum(valid) / len(valid))
    return {d: max(w) for d, w in windows.items() if len(w) >= 18}


@pytest.fixture(scope="module")
def frame() -> Rows:
    if not CSV.exists():
        pytest.skip(f"the shared data set is not on this machine: {CSV}")
    return _frame()


async def test_uci_report_matches_an_independent_computation(tmp_path: Path, frame: Rows) -> None:
    doc = {
        "territory": {"id": "uci", "name": "UCI", "timezone": "Europe/Rome"},
        "organisations": [{"id": "city", "name": "City", "kind": "public"}],
        "sites": [
            {
                "id": "road",
                "org": "city",
                "name": "Road",
                "category": "air_station",
                "lat": 40.8,
                "lon": 14.2,
            }
        ],
        "meters": [{"id": "ref", "site": "road", "quantities": ["no2_ugm3", "co_mgm3"]}],
    }
    cluster = write_cluster(tmp_path, doc)
    series = [
        SeriesKey("city", "road", "ref", "no2_ugm3"),
        SeriesKey("city", "road", "ref", "co_mgm3"),
    ]
    parts = []
    for i, column in enumerate(("NO2(GT)", "CO(GT)")):
        pairs = [(_ts_ms(t), r[column]) for t, r in frame.items() if r[column] is not None]
        parts.append(
            (
                np.full(len(pairs), i),
                np.array([p[0] for p in pairs]),
                np.array([p[1] for p in pairs]),
            )
        )
    batch = ReadingBatch(
        series,
        np.concatenate([p[0] for p in parts]).astype(np.int64),
        np.concatenate([p[1] for p in parts]).astype(np.int64),
        np.concatenate([p[2] for p in parts]).astype(np.float64),
        np.full(sum(len(p[0]) for p in parts), np.nan),
    )
    store = MemoryStore()
    await store.open()
    await store.write(batch)
    now = _ts_ms(datetime(2026, 1, 1))
    for year in (2004, 2005):
        report = await build_report(cluster, store, year=year, now_ms=now)
        by_q = {st.key.quantity: st for st in report.stations}
        no2 = {r.check.id: r for r in by_q["no2_ugm3"].results["eu2008"]}
        assert no2["no2-hour-limit"].count == _expected_no2_hours(frame, year)
        daily = _expected_daily(frame, "NO2(GT)", year)
        reported = {d: v for d, v in _dates(report.first_day, by_q["no2_ugm3"].daily) if v}
        assert set(reported) == {d.isoformat() for d in daily}
        assert all(math.isclose(reported[d.isoformat()], v) for d, v in daily.items())
        who = {r.check.id: r for r in by_q["no2_ugm3"].results["who2021"]}
        assert who["no2-day-aqg"].count == sum(v > 25 for v in daily.values())
        eu30 = {r.check.id: r for r in by_q["no2_ugm3"].results["eu2030"]}
        assert eu30["no2-day-limit"].count == sum(v > 50 for v in daily.values())
        assert eu30["no2-day-limit"].count > 0  # the data set does exceed it
        max8 = _expected_co_max8h(frame, year)
        got = {d: v for d, v in _dates(report.first_day, by_q["co_mgm3"].max8h or []) if v}
        assert set(got) == {d.isoformat() for d in max8}
        assert all(math.isclose(got[d.isoformat()], v) for d, v in max8.items())
        co = {r.check.id: r for r in by_q["co_mgm3"].results["eu2008"]}
        assert co["co-max8h-limit"].count == sum(v > 10 for v in max8.values())
    # The data set's README: 386 hours above 200 µg/m³ over the whole file.
    assert _expected_no2_hours(frame, 2004) + _expected_no2_hours(frame, 2005) == 386


def _dates(first_day: str, values: list[float | None]) -> list[tuple[str, float | None]]:
    start = date.fromisoformat(first_day)
    return [((start + timedelta(days=i)).isoformat(), v) for i, v in enumerate(values)]
