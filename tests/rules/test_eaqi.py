"""The European Air Quality Index (2024 bands, hourly values): every boundary of every
pollutant by hand, data capture, the EEA's station requirements, worst pollutant wins."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ecocluster.rules.compliance.averaging import hour_grid
from ecocluster.rules.compliance.eaqi import (
    EAQI_2024,
    LEVELS,
    band_of,
    level_of,
    station_index,
)

#: (pollutant, value, expected band), written out by hand from the EEA table: a value equal
#: to a breakpoint is in the lower band, the smallest step above it in the next one.
BOUNDARIES = [
    # PM2.5: 0-5 good, 5-15 fair, 15-50 moderate, 50-90 poor, 90-140 very poor, >140
    ("pm25_ugm3", 0.0, 1),
    ("pm25_ugm3", 5.0, 1),
    ("pm25_ugm3", 5.01, 2),
    ("pm25_ugm3", 15.0, 2),
    ("pm25_ugm3", 15.01, 3),
    ("pm25_ugm3", 50.0, 3),
    ("pm25_ugm3", 50.01, 4),
    ("pm25_ugm3", 90.0, 4),
    ("pm25_ugm3", 90.01, 5),
    ("pm25_ugm3", 140.0, 5),
    ("pm25_ugm3", 140.01, 6),
    ("pm25_ugm3", 900.0, 6),
    # PM10: 0-15, 15-45, 45-120, 120-195, 195-270, >270
    ("pm10_ugm3", 15.0, 1),
    ("pm10_ugm3", 15.01, 2),
    ("pm10_ugm3", 45.0, 2),
    ("pm10_ugm3", 45.01, 3),
    ("pm10_ugm3", 120.0, 3),
    ("pm10_ugm3", 120.01, 4),
    ("pm10_ugm3", 195.0, 4),
    ("pm10_ugm3", 195.01, 5),
    ("pm10_ugm3", 270.0, 5),
    ("pm10_ugm3", 270.01, 6),
    # NO2: 0-10, 10-25, 25-60, 60-100, 100-150, >150
    ("no2_ugm3", 10.0, 1),
    ("no2_ugm3", 10.01, 2),
    ("no2_ugm3", 25.0, 2),
    ("no2_ugm3", 25.01, 3),
    ("no2_ugm3", 60.0, 3),
    ("no2_ugm3", 60.01, 4),
    ("no2_ugm3", 100.0, 4),
    ("no2_ugm3", 100.01, 5),
    ("no2_ugm3", 150.0, 5),
    ("no2_ugm3", 150.01, 6),
    # O3: 0-60, 60-100, 100-120, 120-160, 160-180, >180
    ("o3_ugm3", 60.0, 1),
    ("o3_ugm3", 60.01, 2),
    ("o3_ugm3", 100.0, 2),
    ("o3_ugm3", 100.01, 3),
    ("o3_ugm3", 120.0, 3),
    ("o3_ugm3", 120.01, 4),
    ("o3_ugm3", 160.0, 4),
    ("o3_ugm3", 160.01, 5),
    ("o3_ugm3", 180.0, 5),
    ("o3_ugm3", 180.01, 6),
    # SO2: 0-20, 20-40, 40-125, 125-190, 190-275, >275
    ("so2_ugm3", 20.0, 1),
    ("so2_ugm3", 20.01, 2),
    ("so2_ugm3", 40.0, 2),
    ("so2_ugm3", 40.01, 3),
    ("so2_ugm3", 125.0, 3),
    ("so2_ugm3", 125.01, 4),
    ("so2_ugm3", 190.0, 4),
    ("so2_ugm3", 190.01, 5),
    ("so2_ugm3", 275.0, 5),
    ("so2_ugm3", 275.01, 6),
]


@pytest.mark.parametrize(("quantity", "value", "band"), BOUNDARIES)
def test_every_boundary_by_hand(quantity: str, value: float, band: int) -> None:
    assert int(band_of(quantity, value)[0]) == band


def test_the_table_is_the_2024_revision() -> None:
    # Not the 2017 index (PM2.5 0-10-20-25-50-75): a regression to it would pass band tests
    # only by accident.
    assert EAQI_2024["pm25_ugm3"] == (5.0, 15.0, 50.0, 90.0, 140.0)
    assert set(EAQI_2024) == {"pm25_ugm3", "pm10_ugm3", "no2_ugm3", "o3_ugm3", "so2_ugm3"}
    assert level_of(1) == "good" and level_of(6) == "extremely_poor" and level_of(None) is None
    assert len(LEVELS) == 6


def test_vectorised_with_missing_values() -> None:
    got = band_of("no2_ugm3", np.array([np.nan, -2.0, 10.0, 10.5, 151.0]))
    assert got.tolist() == [0, 1, 1, 2, 6]


def test_worst_pollutant_wins_and_is_named() -> None:
    index = station_index(
        {"pm25_ugm3": 12.0, "pm10_ugm3": 20.0, "no2_ugm3": 30.0, "o3_ugm3": 70.0, "so2_ugm3": 5}
    )
    assert (index.band, index.level, index.pollutant) == (3, "moderate", "no2_ugm3")
    assert index.bands == {
        "pm25_ugm3": 2,
        "pm10_ugm3": 2,
        "no2_ugm3": 3,
        "o3_ugm3": 2,
        "so2_ugm3": 1,
    }
    worse = station_index({"pm25_ugm3": 95.0, "no2_ugm3": 30.0, "o3_ugm3": 70.0})
    assert (worse.band, worse.pollutant) == (5, "pm25_ugm3")


def test_a_pollutant_without_valid_data_does_not_count() -> None:
    # SO2 invalid (None/NaN): the index is still set by the valid ones, never by SO2.
    index = station_index(
        {"pm10_ugm3": 20.0, "no2_ugm3": 11.0, "o3_ugm3": 61.0, "so2_ugm3": math.nan}
    )
    assert (index.band, index.pollutant) == (2, "pm10_ugm3")
    assert index.bands["so2_ugm3"] is None


def test_eea_station_requirements() -> None:
    no_o3 = {"pm10_ugm3": 200.0, "no2_ugm3": 30.0, "o3_ugm3": None}
    background = station_index(no_o3)
    assert background.band is None and background.missing == ("o3_ugm3",)
    assert background.bands["pm10_ugm3"] == 5  # the pollutant's own band stays visible
    traffic = station_index(no_o3, "traffic")  # NO2 + PM are enough at a traffic station
    assert (traffic.band, traffic.pollutant) == (5, "pm10_ugm3")
    no_pm = station_index({"no2_ugm3": 30.0, "o3_ugm3": 30.0, "pm25_ugm3": math.nan})
    assert no_pm.band is None and no_pm.missing == ("pm10_ugm3|pm25_ugm3",)
    either_pm = station_index({"no2_ugm3": 30.0, "o3_ugm3": 30.0, "pm25_ugm3": 16.0})
    assert either_pm.band == 3


def _grid(n_readings: int, step_ms: int, value: float) -> float:
    """The hourly mean of one station's hour holding `n_readings` every `step_ms`."""
    ts = np.arange(n_readings, dtype=np.int64) * step_ms
    grid = hour_grid(
        np.zeros(n_readings, np.int64),
        ts,
        np.full(n_readings, value),
        n_series=1,
        h0=0,
        n_hours=1,
        offset_ms=0,
        interval_ms=np.array([float(step_ms)]),
    )
    return float(grid.mean[0, 0])


def test_data_capture_below_threshold_gives_no_band() -> None:
    # 5-minute readings: 9 of 12 (75 %) make a valid hour, 8 (67 %) do not; two never do.
    assert _grid(9, 300_000, 30.0) == 30.0
    for n in (8, 2):
        value = _grid(n, 300_000, 30.0)
        assert math.isnan(value)
        assert int(band_of("no2_ugm3", value)[0]) == 0
    index = station_index({"no2_ugm3": _grid(2, 300_000, 999.0), "o3_ugm3": 10, "pm10_ugm3": 1})
    assert index.band is None and index.missing == ("no2_ugm3",)
