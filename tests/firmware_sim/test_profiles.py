"""Profiles checked numerically against how the quantities behave (broker-free)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from ecocluster.sim import SimPlan, generate
from ecocluster.sim.localtime import local_time

from .conftest import Columns, collect, local

HOUR_MS = 3_600_000


def _local_days(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lt = local_time(ts, "Europe/Rome")
    return lt.day, lt.hour, lt.weekday


def daily_kwh(cols: Columns, site: str, meter: str = "em-01") -> tuple[np.ndarray, np.ndarray]:
    """kWh per local day from the power readings (1-min means), and each day's weekday."""
    ts, power = cols.series(site, meter, "power_w")
    day, _hour, weekday = _local_days(ts)
    days, inverse = np.unique(day, return_inverse=True)
    kwh = np.bincount(inverse, weights=power * 60.0 / 3.6e6)
    return kwh, np.array([weekday[inverse == i][0] for i in range(len(days))])


@pytest.mark.parametrize(
    ("site", "cap_kw", "low_h", "high_h"),
    [
        ("parco-sede", 30, 3.0, 10.0),  # office
        ("ventasso-municipio", 30, 3.0, 10.0),  # town hall
        ("cerreto-hotel", 80, 4.0, 12.0),  # hotel in the ski season
        ("cerreto-seggiovia-nuda", 500, 1.5, 8.0),  # ski lift in season
        ("caseificio-cervarezza", 150, 4.0, 12.0),  # dairy
        ("ic-secondaria-castelnovo", 50, 2.0, 9.0),  # school in term
    ],
)
def test_winter_weekday_energy_is_plausible(
    winter_week: Columns, site: str, cap_kw: float, low_h: float, high_h: float
) -> None:
    kwh, weekday = daily_kwh(winter_week, site)
    full_load_hours = kwh[weekday < 5] / cap_kw
    assert low_h <= full_load_hours.min() and full_load_hours.max() <= high_h, full_load_hours


def test_offices_and_schools_use_less_at_weekends(winter_week: Columns) -> None:
    for site in ("parco-sede", "ventasso-municipio", "ic-secondaria-castelnovo"):
        kwh, weekday = daily_kwh(winter_week, site)
        assert kwh[weekday == 6].max() < 0.6 * kwh[weekday < 5].min(), site


def test_seasons_ski_lift_and_school(winter_week: Columns, summer_week: Columns) -> None:
    lift_winter, _ = daily_kwh(winter_week, "cerreto-seggiovia-nuda")
    lift_summer, wd = daily_kwh(summer_week, "cerreto-seggiovia-nuda")
    assert lift_summer[wd < 5].max() < 0.05 * lift_winter.mean()  # lifts stopped on weekdays
    school_winter, wd_w = daily_kwh(winter_week, "ic-secondaria-castelnovo")
    school_summer, wd_s = daily_kwh(summer_week, "ic-secondaria-castelnovo")
    assert school_summer[wd_s < 5].mean() < 0.5 * school_winter[wd_w < 5].mean()


def test_dairy_processes_in_the_early_morning(winter_week: Columns) -> None:
    ts, power = winter_week.series("caseificio-cervarezza", "em-01", "power_w")
    _day, hour, _wd = _local_days(ts)
    morning = power[(hour >= 6) & (hour < 10)].mean()
    night = power[(hour >= 0) & (hour < 4)].mean()
    afternoon = power[(hour >= 16) & (hour < 18)].mean()
    assert morning > 2.0 * night and morning > 2.0 * afternoon


def test_power_stays_under_the_example_overload_rules(winter_week: Columns) -> None:
    """Normal operation must not trip the example cluster's overload rules (false alarms)."""
    hotel_power = [
        k for k in winter_week.plan.series if k.quantity == "power_w" and "hotel" in k.site
    ]
    assert len(hotel_power) == 6
    for k in hotel_power:
        assert winter_week.series(k.site, k.meter, "power_w")[1].max() < 60_000, k
    for site in ("cerreto-seggiovia-nuda", "cerreto-seggiovia-sara", "cerreto-sciovia-lago"):
        assert winter_week.series(site, "em-01", "power_w")[1].max() < 450_000


@pytest.mark.parametrize(
    ("site", "meter", "register", "rate", "to_register"),
    [
        ("parco-sede", "em-01", "energy_kwh", "power_w", 60.0 / 3.6e6),
        ("caseificio-cervarezza", "em-03", "energy_kwh", "power_w", 60.0 / 3.6e6),
        ("ps-busana", "wm-01", "water_m3", "flow_lpm", 1.0 / 1000.0),
        ("cerreto-hotel", "wm-01", "water_m3", "flow_lpm", 5.0 / 1000.0),
    ],
)
def test_register_is_the_integral_of_the_rate(
    winter_week: Columns, site: str, meter: str, register: str, rate: str, to_register: float
) -> None:
    ts_r, reg = winter_week.series(site, meter, register)
    ts_p, flow = winter_week.series(site, meter, rate)
    assert np.array_equal(ts_r, ts_p)
    increments = np.diff(reg)
    expected = flow[1:] * to_register
    # the register is rounded to 0.001 (Wh, litre); the rate to its last decimal
    assert np.abs(increments - expected).max() <= 1.01e-3
    assert np.all(increments >= 0)
    total = reg[-1] - reg[0]
    assert total == pytest.approx(expected.sum(), abs=2e-3)


@pytest.mark.parametrize(
    "site", ["ventasso-municipio", "parco-sede", "ic-primaria-busana", "castelnovo-municipio"]
)
def test_night_flow_is_zero_without_a_leak(winter_week: Columns, site: str) -> None:
    ts, flow = winter_week.series(site, "wm-01", "flow_lpm")
    _day, hour, _wd = _local_days(ts)
    night = flow[(hour >= 0) & (hour < 5)]
    assert night.size > 100 and np.all(night == 0.0)
    assert flow.max() > 0.5  # but water is used in the day


def test_pumping_station_has_a_night_minimum_and_day_peaks(winter_week: Columns) -> None:
    ts, flow = winter_week.series("ps-busana", "wm-01", "flow_lpm")
    _day, hour, _wd = _local_days(ts)
    night = flow[(hour >= 2) & (hour < 4)].mean()
    morning = flow[(hour >= 7) & (hour < 8.5)].mean()
    assert 0.25 < night / flow.mean() < 0.7 and morning > 1.4 * night


def test_ozone_peaks_in_the_summer_afternoon(summer_week: Columns, winter_week: Columns) -> None:
    for site in ("aq-cerreto-laghi", "aq-castelnovo", "aq-fivizzano"):
        ts, o3 = summer_week.series(site, "aq-01", "o3_ugm3")
        _day, hour, _wd = _local_days(ts)
        by_hour = np.array([o3[hour.astype(int) == h].mean() for h in range(24)])
        assert 12 <= int(np.argmax(by_hour)) <= 18, by_hour.round()
        assert by_hour.max() > 1.5 * by_hour.min()
        _ts, o3_winter = winter_week.series(site, "aq-01", "o3_ugm3")
        assert o3.max() > o3_winter.max()


def test_no2_follows_traffic_and_pm_is_a_winter_problem(
    winter_week: Columns, summer_week: Columns
) -> None:
    ts, no2 = winter_week.series("aq-castelnovo", "aq-01", "no2_ugm3")
    _day, hour, weekday = _local_days(ts)
    rush = no2[(weekday < 5) & (hour >= 7.5) & (hour < 9)].mean()
    night = no2[(hour >= 2) & (hour < 4)].mean()
    assert rush > 2.5 * night
    _, pm_w = winter_week.series("aq-castelnovo", "aq-01", "pm10_ugm3")
    _, pm_s = summer_week.series("aq-castelnovo", "aq-01", "pm10_ugm3")
    assert pm_w.mean() > 1.3 * pm_s.mean()
    _, pm25 = winter_week.series("aq-castelnovo", "aq-01", "pm25_ugm3")
    assert 0.45 < pm25.mean() / pm_w.mean() < 0.75


def test_natural_air_quality_stays_within_legal_limits(
    winter_week: Columns, summer_week: Columns
) -> None:
    """Exceedances must come from injected faults, so scores are not polluted by the
    profiles: PM10 daily mean <= 50, NO2 hourly <= 200, O3 hourly <= 180 µg/m³."""
    for cols in (winter_week, summer_week):
        for site in ("aq-castelnovo", "aq-fivizzano", "aq-busana", "aq-cerreto-laghi"):
            ts, pm10 = cols.series(site, "aq-01", "pm10_ugm3")
            day, _h, _w = _local_days(ts)
            _u, inv = np.unique(day, return_inverse=True)
            daily = np.bincount(inv, weights=pm10) / np.bincount(inv)
            assert daily.max() < 50 and daily.min() > 3
            for q, limit in (("no2_ugm3", 200), ("o3_ugm3", 180)):
                ts, v = cols.series(site, "aq-01", q)
                hourly = np.bincount((ts - ts[0]) // HOUR_MS, weights=v) / np.bincount(
                    (ts - ts[0]) // HOUR_MS
                )
                assert hourly.max() < limit, (site, q)


def test_mountain_temperature_and_humidity(winter_week: Columns, summer_week: Columns) -> None:
    _, t_high_w = winter_week.series("aq-cerreto-laghi", "aq-01", "temp_c")
    _, t_low_w = winter_week.series("aq-fivizzano", "aq-01", "temp_c")
    _, t_high_s = summer_week.series("aq-cerreto-laghi", "aq-01", "temp_c")
    assert -15 < t_high_w.mean() < 3 and 8 < t_high_s.mean() < 22
    assert t_low_w.mean() > t_high_w.mean() + 3  # 1000 m lower, warmer
    _, rh = winter_week.series("aq-cerreto-laghi", "aq-01", "rh_pct")
    assert rh.min() >= 15 and rh.max() <= 100


def test_classroom_co2_rises_in_lessons_only(winter_week: Columns) -> None:
    ts, co2 = winter_week.series("ic-secondaria-castelnovo", "iaq-01", "co2_ppm")
    _day, hour, weekday = _local_days(ts)
    lesson = co2[(weekday < 5) & (hour >= 10) & (hour < 13)]
    night = co2[(hour >= 1) & (hour < 5)]
    assert lesson.mean() > 900 and night.max() < 500 and co2.max() < 1500


# -- determinism ---------------------------------------------------------------------------
def test_same_seed_same_readings_any_chunking(plan: SimPlan) -> None:
    start, end = local(2026, 3, 28), local(2026, 3, 30)  # across the switch to summer time
    a = collect(plan, start, end, chunk=timedelta(hours=1))
    b = collect(plan, start, end, chunk=timedelta(days=1))
    assert len(a.values) > 100_000
    for name in ("series_idx", "ts_ms", "values"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_another_seed_gives_other_readings(cluster) -> None:  # type: ignore[no-untyped-def]
    start, end = local(2026, 3, 2), local(2026, 3, 2, 6)
    one = next(generate(cluster, start, end, seed=1, chunk=timedelta(hours=6)))
    again = next(generate(cluster, start, end, seed=1, chunk=timedelta(hours=6)))
    other = next(generate(cluster, start, end, seed=2, chunk=timedelta(hours=6)))
    assert np.array_equal(one.values, again.values)
    assert not np.array_equal(one.values, other.values) or not np.array_equal(
        one.ts_ms, other.ts_ms
    )


def test_offices_open_at_eight_local_time_across_dst(plan: SimPlan) -> None:
    """Occupancy follows the wall clock: 09:00 local is busy in winter and summer time."""
    for day in (local(2026, 3, 26), local(2026, 4, 2)):  # a Thursday before/after DST
        cols = collect(plan, day, day + timedelta(days=1), meters_only=None)
        ts, power = cols.series("parco-sede", "em-01", "power_w")
        _d, hour, _w = _local_days(ts)
        assert power[(hour >= 9) & (hour < 10)].mean() > 3 * power[(hour >= 5) & (hour < 6)].mean()


@pytest.mark.slow
def test_a_month_of_the_territory_generates_in_day_chunks(cluster) -> None:  # type: ignore[no-untyped-def]
    """A month in day-sized chunks: every reading there (its speed is bench/sim_backfill.py's
    business, not a timed test's)."""
    batches = list(
        generate(cluster, local(2026, 1, 1), local(2026, 1, 31), chunk=timedelta(days=1))
    )
    assert len(batches) >= 30
    assert sum(len(b) for b in batches) > 5_000_000


def test_intervals_per_quantity_keep_the_register_consistent(cluster) -> None:  # type: ignore[no-untyped-def]
    from ecocluster.sim import build_plan

    plan = build_plan(
        cluster, seed=4, meters_only=["parco-sede/em-01"], intervals={"power_w": 10_000}
    )
    cols = collect(plan, local(2026, 2, 3, 9), local(2026, 2, 3, 11))
    ts_p, power = cols.series("parco-sede", "em-01", "power_w")
    ts_e, energy = cols.series("parco-sede", "em-01", "energy_kwh")
    assert np.all(np.diff(ts_p) == 10_000) and np.all(np.diff(ts_e) == 60_000)
    # each 1-minute register step is the integral of the six 10-second power means in it
    for k in range(1, len(ts_e)):
        inside = (ts_p > ts_e[k - 1]) & (ts_p <= ts_e[k])
        assert inside.sum() == 6
        assert energy[k] - energy[k - 1] == pytest.approx(
            power[inside].sum() * 10 / 3.6e6, abs=1.1e-3
        )


def test_scale_makes_valid_distinct_copies(cluster) -> None:  # type: ignore[no-untyped-def]
    from ecocluster.core.types import is_valid_id
    from ecocluster.sim import build_plan

    plan = build_plan(cluster, seed=1, scale=20)
    assert len(plan.meters) == 20 * len(cluster.meters)
    keys = {(m.site, m.meter) for m in plan.meters}
    assert len(keys) == len(plan.meters) and all(is_valid_id(s) for s, _ in keys)
    assert len({m.client_id for m in plan.meters}) == len(plan.meters)
    day = next(generate(plan, local(2026, 2, 3), local(2026, 2, 3, 1), chunk=timedelta(hours=1)))
    first = {k.site: v for k, v in zip(day.series, [None] * len(day.series), strict=True)}
    assert "parco-sede.20" in first
    power = {
        day.series[i].site: v
        for i, v in zip(day.series_idx.tolist(), day.values.tolist(), strict=True)
        if day.series[i].meter == "em-01" and day.series[i].quantity == "power_w"
    }
    assert power["parco-sede"] != power["parco-sede.2"]  # copies are not clones
