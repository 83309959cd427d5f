"""A two-station territory and 40 days of 10-minute air readings from 1 January 2026 (CET),
built so that every count can be worked out by hand.

Station `aq-a` (site `valle`, pack eu2008 from the territory):
- PM10: day k (k = 0 … 39) has daily mean 60 when k % 10 != 9, else 20: 36 exceedance days
  of the 50 µg/m³ limit. Day 12 also loses hours 17-23 (17 valid hours): not valid, so 35
  exceedances, all permitted (35); the allowance warning fires at the 28th (0.8 × 35),
  which is day 31 (days 0-8, 10-11, 13-18, 20-28, 30-31: 9 + 2 + 6 + 9 + 2 = 28).
- NO2: 50 everywhere, except day 3 hours 10-12 at 450 (three consecutive hours: one alert
  episode, three hourly exceedances), day 6 hours 8-9 at 450 (two hours: no alert; two
  hourly exceedances), day 9 hour 5 at 250 with only 4 readings (40 min: invalid hour).
Station `aq-b` (site `monte`, configured `compliance: {pack: eu2030}`):
- PM10 daily mean 47 on days 0-4 (above 45: 5 exceedances), 30 after.
- NO2 50 everywhere.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import yaml

from ecocluster.core.registry import Cluster, load_cluster
from ecocluster.core.types import ReadingBatch

CET_START_MS = int(datetime(2026, 1, 1, tzinfo=ZoneInfo("Etc/GMT-1")).timestamp() * 1000)
DAYS = 40
STEP_MS = 600_000
HOUR_MS = 3_600_000

TERRITORY: dict[str, Any] = {
    "territory": {
        "id": "appennino",
        "name": "Appennino",
        "timezone": "Europe/Rome",
        "compliance": {"pack": "eu2008"},
    },
    "organisations": [{"id": "parco", "name": "Parco", "kind": "public"}],
    "sites": [
        {
            "id": "valle",
            "org": "parco",
            "name": "Valle",
            "category": "air_station",
            "lat": 44.3,
            "lon": 10.2,
        },
        {
            "id": "monte",
            "org": "parco",
            "name": "Monte",
            "category": "air_station",
            "lat": 44.4,
            "lon": 10.3,
            "compliance": {"pack": "eu2030"},
        },
    ],
    "meters": [
        {"id": "aq-a", "site": "valle", "quantities": ["pm10_ugm3", "no2_ugm3"], "interval": "10m"},
        {"id": "aq-b", "site": "monte", "quantities": ["pm10_ugm3", "no2_ugm3"], "interval": "10m"},
    ],
    "rules": [{"name": "air", "type": "compliance"}],
}

#: (site, pack, check) → count, by hand from the module docstring.
EXPECTED = {
    ("valle", "eu2008", "pm10-day-limit"): 35,  # 36 days at 60, day 12 invalid
    ("valle", "eu2008", "no2-hour-limit"): 5,  # 3 + 2; the 40-minute hour is invalid
    ("valle", "eu2008", "no2-alert"): 1,
    ("monte", "eu2030", "pm10-day-limit"): 5,
    ("monte", "eu2030", "no2-hour-limit"): 0,
}


def write_cluster(tmp_path: Path, doc: dict[str, Any] | None = None) -> Cluster:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc or TERRITORY, sort_keys=False))
    return load_cluster(path)


def readings(cluster: Cluster) -> ReadingBatch:
    ts = CET_START_MS + STEP_MS * np.arange(DAYS * 24 * 6, dtype=np.int64)
    hour = (ts - CET_START_MS) // HOUR_MS
    day = hour // 24
    hod = hour % 24
    series = list(cluster.series)
    parts: list[tuple[int, np.ndarray, np.ndarray]] = []
    for i, key in enumerate(series):
        values = np.full(ts.shape, np.nan)
        if key.meter == "aq-a" and key.quantity == "pm10_ugm3":
            values = np.where(day % 10 != 9, 60.0, 20.0)
            values[(day == 12) & (hod >= 17)] = np.nan
        elif key.meter == "aq-a":
            values = np.full(ts.shape, 50.0)
            values[(day == 3) & (hod >= 10) & (hod <= 12)] = 450.0
            values[(day == 6) & (hod >= 8) & (hod <= 9)] = 450.0
            in_hole = (day == 9) & (hod == 5)
            values[in_hole] = 250.0
            values[in_hole & (((ts - CET_START_MS) // STEP_MS) % 6 >= 4)] = np.nan
        elif key.quantity == "pm10_ugm3":
            values = np.where(day < 5, 47.0, 30.0)
        else:
            values = np.full(ts.shape, 50.0)
        keep = ~np.isnan(values)
        parts.append((i, ts[keep], values[keep]))
    return ReadingBatch(
        series,
        np.concatenate([np.full(p[1].shape, p[0], np.int64) for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        np.full(sum(p[1].shape[0] for p in parts), np.nan),
    )
