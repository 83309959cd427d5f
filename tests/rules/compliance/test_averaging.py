"""Hand-computed fixtures straight from the directive's definitions (2008/50/EC Annex XI A,
Annex XII A; domain reference §1.4): every expected number is worked out in the comment."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import numpy as np

from ecocluster.rules.compliance.assess import assess, runs
from ecocluster.rules.compliance.averaging import (
    HourGrid,
    daily_means,
    hour_grid,
    max_daily_8h,
    running_8h,
    year_mean,
)
from ecocluster.rules.compliance.packs import EU2008, get_pack
from ecocluster.rules.compliance.timebase import (
    DAY_H,
    HOUR_MS,
    day_of_date,
    hour_of_ms,
    standard_offset_ms,
    year_hours,
)

ROME = ZoneInfo("Europe/Rome")
CET = 3_600_000


def _grid(values: list[float] | np.ndarray, h0: int) -> HourGrid:
    """One station's hourly values (NaN = invalid) starting at hour h0."""
    arr = np.asarray(values, np.float64)[None, :]
    return HourGrid(h0, arr, np.where(np.isnan(arr), 0.0, 1.0))


def test_rome_standard_time_is_cet_all_year() -> None:
    assert standard_offset_ms(ROME) == CET
    assert standard_offset_ms(ZoneInfo("UTC")) == 0


def test_8h_running_mean_belongs_to_the_day_on_which_it_ends() -> None:
    # Day D-1: hours 00..15 = 0, hours 16..23 = 80. Day D: all 0.
    # D-1's last window (16:00-24:00) = 8 × 80 / 8 = 80 → D-1's maximum.
    # D's first window (17:00 D-1 - 01:00 D) = (7 × 80 + 0) / 8 = 70 → D's maximum, not D-1's.
    d = day_of_date(date(2026, 1, 10))
    h0 = (d - 2) * DAY_H  # two whole days before D, so D-1's windows are complete
    values = np.zeros(3 * DAY_H)
    values[DAY_H + 16 : DAY_H + 24] = 80.0
    grid = _grid(values, h0)
    m8 = running_8h(grid)
    assert m8.value[0, DAY_H + 23] == 80.0  # the window ending at 24:00 of D-1
    assert m8.value[0, 2 * DAY_H] == 70.0  # the window ending at 01:00 of D
    assert m8.value[0, 2 * DAY_H + 7] == 0.0  # 00:00-08:00 of D: all zero
    days = max_daily_8h(grid)
    assert days.first == d - 2
    assert days.value[0, 1] == 80.0
    assert days.value[0, 2] == 70.0


def test_8h_window_needs_6_of_8_hours_and_the_day_18_of_24_windows() -> None:
    # Hours 0..7 of the grid: 6 valid (value 10) and 2 missing → the window ending with
    # hour 7 is valid, mean of the 6 valid = 10. With 5 valid it is not.
    six = [10, 10, np.nan, 10, 10, np.nan, 10, 10]
    five = [10, np.nan, np.nan, 10, 10, np.nan, 10, 10]
    assert running_8h(_grid(six, 0)).value[0, 7] == 10.0
    assert np.isnan(running_8h(_grid(five, 0)).value[0, 7])
    # A day whose first 6 hours and the 7 before are missing: windows ending 01..07 have
    # ≤ 2 valid hours of the grid... Build: day with hours 0..23, no lead hours at all:
    # windows ending with hours 0..4 have 1..5 hours → invalid; 5..23 → 19 valid → day valid.
    assert max_daily_8h(_grid(np.full(24, 5.0), 0)).value[0, 0] == 5.0
    # Take away hour 5 too: windows ending with hours 5, 6 have 5, 6 hours... ending with
    # hour 5: hours 0..5 minus hour 5 = 5 valid → invalid; ending 6: 6 valid → valid; ending
    # 12: hours 5..12 → 7 valid → valid. So invalid windows: 0..5 → 18 valid → still valid.
    vals = np.full(24, 5.0)
    vals[5] = np.nan
    assert max_daily_8h(_grid(vals, 0)).n_parts[0, 0] == 18
    assert max_daily_8h(_grid(vals, 0)).value[0, 0] == 5.0
    vals[6] = np.nan  # now windows ending 0..6 and ... ending 6 has 5 → 17 valid: invalid
    assert max_daily_8h(_grid(vals, 0)).n_parts[0, 0] == 17
    assert np.isnan(max_daily_8h(_grid(vals, 0)).value[0, 0])


def test_hour_capture_74_percent_is_invalid_75_percent_is_valid() -> None:
    # A station reporting every 36 s: 100 readings fill an hour. 75 readings = 75 % → valid;
    # 74 readings = 74 % → invalid (Annex XI A: "75 % of the hour").
    interval = 36_000
    hour0 = hour_of_ms(1_767_225_600_000, CET)  # 2026-01-01 00:00 UTC
    start = hour0 * HOUR_MS - CET
    ts = np.r_[start + interval * np.arange(75), start + HOUR_MS + interval * np.arange(74)]
    vals = np.r_[np.full(75, 20.0), np.full(74, 30.0)]
    grid = hour_grid(
        np.zeros(ts.shape[0], np.int64),
        ts.astype(np.int64),
        vals,
        n_series=1,
        h0=hour0,
        n_hours=2,
        offset_ms=CET,
        interval_ms=np.array([float(interval)]),
    )
    assert grid.capture[0].tolist() == [0.75, 0.74]
    assert grid.mean[0, 0] == 20.0
    assert np.isnan(grid.mean[0, 1])


def test_daily_mean_needs_18_hours() -> None:
    # 18 valid hours of 40 → valid mean 40; 17 valid → invalid.
    day18 = np.r_[np.full(18, 40.0), np.full(6, np.nan)]
    day17 = np.r_[np.full(17, 40.0), np.full(7, np.nan)]
    out = daily_means(_grid(np.r_[day18, day17], 0))
    assert out.value[0, 0] == 40.0
    assert np.isnan(out.value[0, 1])
    assert out.n_parts[0].tolist() == [18, 17]


def _pm10_year(n_over: int) -> tuple[HourGrid, int, int]:
    """A year of hourly PM10: every day 20, except `n_over` days at 60 + their index."""
    first, end = year_hours(2026)
    vals = np.full(end - first + 7, 20.0)
    for k in range(n_over):
        lo = 7 + (10 + 3 * k) * DAY_H  # days 10, 13, 16, …
        vals[lo : lo + DAY_H] = 60.0 + k
    return _grid(vals, first - 7), first, end


def test_the_36th_daily_exceedance_breaches_the_pm10_limit() -> None:
    for n_over, expected in ((35, "met"), (36, "exceeded")):
        grid, first, end = _pm10_year(n_over)
        (results,) = assess(EU2008, "pm10_ugm3", grid, first, end, complete=True)
        day = next(r for r in results if r.check.id == "pm10-day-limit")
        assert day.count == n_over
        assert day.status == expected
        assert day.exceedances[0].period == "2026-01-11"  # day index 10 → 11 January
        assert day.exceedances[0].value == 60.0
        # The 36th highest daily mean: 60 (the lowest of 36 exceedances) or 20 with 35.
        assert day.value == (60.0 if n_over == 36 else 20.0)
        year = next(r for r in results if r.check.id == "pm10-year-limit")
        assert year.status == "met" and year.data_capture == 1.0


def test_annual_data_capture_90_percent() -> None:
    first, end = year_hours(2026)
    n = end - first
    vals = np.full(n, 45.0)  # above the 40 annual limit
    vals[: int(n * 0.11)] = np.nan  # 89 % captured
    mean, capture = year_mean(_grid(vals, first), first, end)
    assert mean[0] == 45.0 and round(float(capture[0]), 2) == 0.89
    (results,) = assess(EU2008, "no2_ugm3", _grid(vals, first), first, end, complete=True)
    annual = next(r for r in results if r.check.id == "no2-year-limit")
    assert annual.status == "insufficient_data" and not annual.capture_ok
    vals[: int(n * 0.09)] = 45.0  # 91 %
    (results,) = assess(EU2008, "no2_ugm3", _grid(vals, first), first, end, complete=True)
    assert next(r for r in results if r.check.id == "no2-year-limit").status == "exceeded"


def test_three_consecutive_hours_over_the_no2_alert_threshold() -> None:
    # 410, 420, 405 → one episode of 3 hours; 410, 420, 300, 410, 401 → runs of 2 and 2:
    # none; a missing hour breaks a run: 410, NaN, 420, 430 → none.
    first = year_hours(2026)[0]
    vals = np.full(DAY_H * 2, 50.0)
    vals[1:4] = [410, 420, 405]
    vals[10:15] = [410, 420, 300, 410, 401]
    vals[20:24] = [410, np.nan, 420, 430]
    (results,) = assess(EU2008, "no2_ugm3", _grid(vals, first), first, first + 48, complete=False)
    alert = next(r for r in results if r.check.id == "no2-alert")
    assert alert.status == "triggered"
    assert [(e.start, e.length, e.peak) for e in alert.episodes] == [("2026-01-01T01:00", 3, 420.0)]
    hourly = next(r for r in results if r.check.id == "no2-hour-limit")
    assert hourly.count == 3 + 5 + 3  # every valid hour above 200 (300 is, too)
    assert hourly.status == "in_progress"
    # Two hours are not an alert:
    two = np.full(DAY_H, 50.0)
    two[5:7] = 450.0
    (results,) = assess(EU2008, "no2_ugm3", _grid(two, first), first, first + 24, complete=False)
    assert next(r for r in results if r.check.id == "no2-alert").status == "not_triggered"


def test_runs_helper() -> None:
    stations, starts, lengths = runs(np.array([[1, 1, 0, 1], [0, 1, 1, 1]], bool))
    assert list(zip(stations.tolist(), starts.tolist(), lengths.tolist(), strict=True)) == [
        (0, 0, 2),
        (0, 3, 1),
        (1, 1, 3),
    ]


def _hour_of(moment: datetime) -> int:
    return hour_of_ms(int(moment.timestamp() * 1000), standard_offset_ms(ROME))


def test_year_and_dst_boundaries_use_local_standard_time() -> None:
    # 31 Dec 2026 23:30 UTC is 1 Jan 2027 00:30 CET: the new year's first hour.
    assert _hour_of(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == year_hours(2027)[0]
    # 22:59 UTC is still 2026 (23:59 CET).
    assert _hour_of(datetime(2026, 12, 31, 22, 59, tzinfo=UTC)) == year_hours(2027)[0] - 1
    # In summer the law's day still starts at 00:00 CET = 01:00 CEST: 00:30 CEST on 2 July
    # belongs to 1 July.
    summer = datetime(2026, 7, 2, 0, 30, tzinfo=ROME)
    assert _hour_of(summer) // DAY_H == day_of_date(date(2026, 7, 1))
    assert _hour_of(datetime(2026, 7, 2, 1, 30, tzinfo=ROME)) // DAY_H == day_of_date(
        date(2026, 7, 2)
    )
    # The spring-forward day (29 March 2026) has 23 wall-clock hours but 24 standard ones:
    # hourly readings from 00:00 to 24:00 CET all land in one day and make a valid mean.
    day = day_of_date(date(2026, 3, 29))
    start = day * DAY_H * HOUR_MS - CET
    ts = start + HOUR_MS * np.arange(24)
    wall = {datetime.fromtimestamp(t / 1000, ROME).hour for t in ts.tolist()}
    assert len(wall) == 23  # the wall clock skips 02:00
    grid = hour_grid(
        np.zeros(24, np.int64),
        ts.astype(np.int64),
        np.arange(24, dtype=float),
        n_series=1,
        h0=day * DAY_H,
        n_hours=24,
        offset_ms=CET,
        interval_ms=np.array([3.6e6]),
    )
    means = daily_means(grid)
    assert means.n_parts[0, 0] == 24 and means.value[0, 0] == 11.5


def test_packs_cite_their_sources_and_leave_out_the_unconfirmed_so2_alert() -> None:
    for name in ("eu2008", "eu2030", "who2021"):
        pack = get_pack(name)
        assert all(c.source for c in pack.checks)
        assert len({c.id for c in pack.checks}) == len(pack.checks)
    assert get_pack("eu2008").check("pm10-day-limit").allowed == 35
    assert get_pack("eu2030").check("pm10-day-limit").value == 45.0
    assert get_pack("eu2030").check("no2-hour-limit").allowed == 3
    assert not any(c.id == "so2-alert" for c in get_pack("eu2030").checks)
    assert get_pack("who2021").check("so2-day-aqg").value == 40.0
