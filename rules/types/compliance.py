"""`compliance`: the air-quality standards of a regulatory pack as alerts, for every
station at once.

    - {name: air-quality, type: compliance}                    # every air series, its pack
    - {name: pm10-eu2030, type: compliance, quantity: pm10_ugm3, pack: eu2030,
       warn_share: 0.8, checks: [limit, allowance]}

One rule expands into one alert target per station × check (label `check`, e.g.
`pm10-day-limit`), plus an `…/allowance` target per counted standard:

- an **information or alert threshold** fires at once, when the hour (or day) that
  crosses it closes, and stays firing while the run lasts (the NO2/SO2 alert thresholds
  need three consecutive valid hours, 2008/50/EC Annex XII A);
- a **limit exceedance** fires when its averaging period closes (the hour, the standard-
  time day, the year) with a valid value above the standard, and resolves on the next
  tick: one firing per exceedance, so a backtest counts what the report counts;
- an **allowance** warning fires when a station's count this calendar year reaches
  `warn_share` of the permitted exceedances (value = count, threshold = permitted:
  "PM10 daily limit exceeded 28 of 35 permitted times"), critical once above it.

Hourly values are read from the hot window's 15-minute ring once the hour is sealed
(`hour capture` ≥ 75 % from the series' reporting interval, as in the report); the kernel
keeps the last 32 hours, today's sums and this year's counts. Those counts live in memory
(the engine's snapshot keeps only alert states): after a restart the kernel counts from the
hours the hot window still holds; the report (`build_report`) is the authoritative count.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
from pydantic import Field, field_validator

from ecocluster.core.types import AIR_QUANTITIES, FloatArray, IntArray, Severity
from ecocluster.rules.compliance.packs import PACKS, Check, get_pack
from ecocluster.rules.compliance.report import pack_of
from ecocluster.rules.compliance.timebase import (
    DAY_H,
    HOUR_MS,
    hour_of_ms,
    ms_of_hour,
    standard_offset_ms,
    year_hours,
    year_of_hour,
)
from ecocluster.rules.config import FlapSpec, RuleBase
from ecocluster.rules.kernel import CompileContext, Kernel, RuleCompileError, Verdict
from ecocluster.rules.state import RuleState
from ecocluster.rules.targets import Targets
from ecocluster.rules.transitions import LEVEL_BY_SEVERITY
from ecocluster.rules.window import HotWindow

__all__ = ["ComplianceKernel", "ComplianceRule"]

CheckKind = Literal[
    "limit", "target", "long_term", "guideline", "information", "alert", "allowance"
]
_ALL_KINDS: Final[tuple[CheckKind, ...]] = (
    "limit",
    "target",
    "long_term",
    "guideline",
    "information",
    "alert",
    "allowance",
)
_RING_H: Final = 32
_AVG_CODE: Final = {"hour": 0, "day": 1, "max8h": 2, "year": 3}
#: Target roles: an exceedance event, a threshold run, an allowance counter.
_EVENT, _RUN, _ALLOWANCE = 0, 1, 2


class ComplianceRule(RuleBase):
    type: Literal["compliance"]
    #: The pack for every matched station; unset: each station's configured pack
    #: (meter → site → territory `compliance: {pack: …}`, default eu2008).
    pack: Literal["eu2008", "eu2030", "who2021"] | None = None
    checks: list[CheckKind] = Field(default_factory=lambda: list(_ALL_KINDS), min_length=1)
    #: The allowance warning fires when this share of the permitted exceedances is used.
    warn_share: float = Field(default=0.8, gt=0.0, le=1.0)
    information_severity: Severity = Severity.WARNING
    alert_severity: Severity = Severity.CRITICAL
    exceedance_severity: Severity = Severity.WARNING
    #: An exceedance is an event that fires and resolves: never hold it as flapping.
    flapping: FlapSpec = FlapSpec(count=0)

    @field_validator("quantity")
    @classmethod
    def _air_only(cls, value: str | None) -> str | None:
        if value is not None and value not in AIR_QUANTITIES:
            known = ", ".join(sorted(AIR_QUANTITIES))
            raise ValueError(f"compliance is for air pollutants ({known}), not {value}")
        return value


class ComplianceKernel(Kernel[ComplianceRule]):
    def prepare(self, ctx: CompileContext) -> None:
        cfg = ctx.window.config
        if HOUR_MS % cfg.coarse_res_ms:
            raise RuleCompileError("type", "the hot window's coarse ring must divide an hour")
        self.offset_ms = standard_offset_ms(ctx.tz)
        self.lag_ms = 3 * cfg.fine_res_ms
        self.per_hour = HOUR_MS // cfg.coarse_res_ms
        keys = ctx.table.keys
        stations = [int(r) for r in self.targets.rows if keys[int(r)].quantity in AIR_QUANTITIES]
        self.station_rows: IntArray = np.asarray(stations, np.int64)
        self.declared_interval = np.full(len(stations), np.nan)
        for i, row in enumerate(stations):
            m = ctx.cluster.meter(keys[row].site, keys[row].meter)
            if m is not None and m.interval is not None:
                self.declared_interval[i] = m.interval.total_seconds() * 1000
        self._build_targets(ctx, stations)
        self._reset_station_state(len(stations))

    # -- compile ---------------------------------------------------------------------------
    def _build_targets(self, ctx: CompileContext, stations: list[int]) -> None:
        spec = self.spec
        wanted = set(spec.checks)
        levels = {
            "information": LEVEL_BY_SEVERITY[spec.information_severity],
            "alert": LEVEL_BY_SEVERITY[spec.alert_severity],
        }
        exceed_level = LEVEL_BY_SEVERITY[spec.exceedance_severity]
        cols: dict[str, list[float]] = {
            k: []
            for k in (
                "station",
                "role",
                "avg",
                "value",
                "hours",
                "allowed",
                "level",
                "year_capture",
                "period_capture",
            )
        }
        rows, labels, tkeys = [], [], []
        self.checks: list[Check] = []

        def add(i: int, row: int, check: Check, pack: str, role: int, level: int) -> None:
            key = ctx.table.keys[row]
            name = check.id + ("/allowance" if role == _ALLOWANCE else "")
            rows.append(row)
            labels.append({**ctx.table.labels[row], "check": name, "pack": pack})
            tkeys.append(f"{key.site}/{key.meter}/{key.quantity}#{pack}:{name}")
            self.checks.append(check)
            pk = PACKS[pack]
            for col, v in (
                ("station", i),
                ("role", role),
                ("avg", _AVG_CODE[check.averaging]),
                ("value", check.value),
                ("hours", check.hours),
                ("allowed", -1 if check.allowed is None else check.allowed),
                ("level", level),
                ("year_capture", pk.year_capture),
                ("period_capture", pk.period_capture),
            ):
                cols[col].append(float(v))

        for i, row in enumerate(stations):
            key = ctx.table.keys[row]
            pack = spec.pack or pack_of(ctx.cluster, key.site, key.meter)
            for check in get_pack(pack).checks_for(key.quantity):
                if check.is_threshold and check.kind in wanted:
                    add(i, row, check, pack, _RUN, levels[check.kind])
                elif check.is_counted and check.kind in wanted:
                    add(i, row, check, pack, _EVENT, exceed_level)
                if check.is_counted and check.allowed and "allowance" in wanted:
                    add(i, row, check, pack, _ALLOWANCE, LEVEL_BY_SEVERITY[Severity.WARNING])
        n = len(rows)
        self.targets = Targets(
            "series", np.asarray(rows, np.int64), np.arange(n), tuple(labels), tuple(tkeys)
        )
        self.state = RuleState(n)
        self.t_station = np.asarray(cols["station"], np.int64)
        self.t_role = np.asarray(cols["role"], np.int64)
        self.t_avg = np.asarray(cols["avg"], np.int64)
        self.t_limit = np.asarray(cols["value"], np.float64)
        self.t_hours = np.asarray(cols["hours"], np.int64)
        self.t_allowed = np.asarray(cols["allowed"], np.int64)
        self.t_level = np.asarray(cols["level"], np.int8)
        self.t_year_capture = np.asarray(cols["year_capture"], np.float64)
        self.t_period_need = np.asarray(cols["period_capture"], np.float64)
        self.t_warn_at = np.ceil(self.spec.warn_share * np.maximum(self.t_allowed, 0) - 1e-9)
        self.count = np.zeros(n, np.int64)
        self.run = np.zeros(n, np.int64)
        self.value = np.full(n, np.nan)

    def _reset_station_state(self, s: int) -> None:
        self.ring = np.full((s, _RING_H), np.nan)
        self.ring_hour = np.full(_RING_H, -1, np.int64)
        self.done_hour: int | None = None
        self.day = -1
        self.day_sum = np.zeros(s)
        self.day_n = np.zeros(s, np.int64)
        self.day_max8 = np.full(s, -np.inf)
        self.day_n8 = np.zeros(s, np.int64)
        self.year = -1
        self.year_sum = np.zeros(s)
        self.year_n = np.zeros(s, np.int64)

    # -- evaluation ------------------------------------------------------------------------
    def evaluate(self, window: HotWindow, now_ms: int) -> Verdict:
        n = self.targets.n
        fired = np.zeros(n, np.bool_)
        last = hour_of_ms(now_ms - self.lag_ms, self.offset_ms) - 1
        if self.done_hour is None:
            self.done_hour = last - DAY_H  # the hot window holds about a day
        for hour in range(max(self.done_hour + 1, last - DAY_H + 1), last + 1):
            self._process_hour(window, hour, fired)
        self.done_hour = max(self.done_hour, last)
        return self._verdict(fired)

    def _verdict(self, fired: np.ndarray) -> Verdict:
        role = self.t_role
        level = np.zeros(self.targets.n, np.int8)
        level = np.where((role == _EVENT) & fired, self.t_level, level)
        level = np.where((role == _RUN) & (self.run >= self.t_hours), self.t_level, level)
        is_allowance = role == _ALLOWANCE
        warn = is_allowance & (self.count >= np.maximum(self.t_warn_at, 1))
        breach = is_allowance & (self.count > self.t_allowed)
        level = np.where(warn, LEVEL_BY_SEVERITY[Severity.WARNING], level)
        level = np.where(breach, LEVEL_BY_SEVERITY[Severity.CRITICAL], level).astype(np.int8)
        value = np.where(is_allowance, self.count.astype(np.float64), self.value)
        threshold = np.where(is_allowance, self.t_allowed.astype(np.float64), self.t_limit)
        return Verdict(level, value, threshold)

    def hourly_means(self, window: HotWindow, hour: int) -> FloatArray:
        """Each station's value for standard-time hour `hour`, NaN where under 75 % covered."""
        end_bucket = (ms_of_hour(hour + 1, self.offset_ms) - 1) // window.coarse.res_ms
        sl = window.coarse.window(self.station_rows, end_bucket, self.per_hour)
        count = sl.count.sum(axis=0)
        total = sl.sum.sum(axis=0)
        interval = np.where(
            np.isnan(self.declared_interval),
            np.minimum(window.interval_ms[self.station_rows], HOUR_MS),
            self.declared_interval,
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / count
            by_time = np.minimum(1.0, count * interval / HOUR_MS)
        capture = np.where(np.isnan(interval), (count > 0).astype(np.float64), by_time)
        return np.where((count > 0) & (capture >= 0.75 - 1e-9), mean, np.nan)

    def _process_hour(self, window: HotWindow, hour: int, fired: np.ndarray) -> None:
        self.feed_hour(hour, self.hourly_means(window, hour), fired)

    def feed_hour(self, hour: int, mean: FloatArray, fired: np.ndarray) -> None:
        """Advance the station state by one closed hour of values (S,), NaN = invalid;
        mark in `fired` the event targets whose period closed above the standard."""
        year = year_of_hour(hour)
        if year != self.year:
            self.year, self.year_sum[:], self.year_n[:] = year, 0.0, 0
            self.count[:] = 0
        day = hour // DAY_H
        if day != self.day:
            self.day = day
            self.day_sum[:], self.day_n[:] = 0.0, 0
            self.day_max8[:], self.day_n8[:] = -np.inf, 0
        slot = hour % _RING_H
        self.ring[:, slot], self.ring_hour[slot] = mean, hour
        is_valid = ~np.isnan(mean)
        self.day_sum += np.where(is_valid, mean, 0.0)
        self.day_n += is_valid
        self.year_sum += np.where(is_valid, mean, 0.0)
        self.year_n += is_valid
        m8 = self._running_8h(hour)
        self.day_max8 = np.where(np.isnan(m8), self.day_max8, np.fmax(self.day_max8, m8))
        self.day_n8 += ~np.isnan(m8)
        self._judge(_AVG_CODE["hour"], mean, fired, need=None)
        if hour % DAY_H == DAY_H - 1:
            with np.errstate(invalid="ignore", divide="ignore"):
                daily = self.day_sum / self.day_n
            self._judge(_AVG_CODE["day"], daily, fired, need=self.day_n)
            self._judge(_AVG_CODE["max8h"], self.day_max8, fired, need=self.day_n8)
        first, end = year_hours(year)
        if hour == end - 1:
            with np.errstate(invalid="ignore", divide="ignore"):
                annual = self.year_sum / self.year_n
            share = self.year_n / (end - first)
            self._judge_year(annual, share, fired)

    def _running_8h(self, hour: int) -> FloatArray:
        """The 8-hour mean ending with `hour` (hours hour−7 … hour), valid with ≥ 6 hours."""
        hours = np.arange(hour - 7, hour + 1)
        slots = hours % _RING_H
        held = self.ring_hour[slots] == hours
        part = np.where(held[None, :], self.ring[:, slots], np.nan)
        n = (~np.isnan(part)).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.nansum(part, axis=1) / n
        return np.where(n >= 6, mean, np.nan)

    def _judge(
        self, avg: int, station_value: FloatArray, fired: np.ndarray, need: IntArray | None
    ) -> None:
        on = self.t_avg == avg
        if not on.any():
            return
        x = station_value[self.t_station]
        if need is not None:  # a day / max-8h day: ≥ 75 % of its 24 parts
            parts = need[self.t_station]
            x = np.where(parts >= self.t_period_need * DAY_H - 1e-9, x, np.nan)
        with np.errstate(invalid="ignore"):
            over = on & ~np.isnan(x) & (x > self.t_limit)
        self._apply(on, over, x, fired)

    def _judge_year(self, annual: FloatArray, share: FloatArray, fired: np.ndarray) -> None:
        on = self.t_avg == _AVG_CODE["year"]
        if not on.any():
            return
        x = annual[self.t_station]
        x = np.where(share[self.t_station] >= self.t_year_capture - 1e-9, x, np.nan)
        with np.errstate(invalid="ignore"):
            over = on & ~np.isnan(x) & (x > self.t_limit)
        self._apply(on, over, x, fired)

    def _apply(self, on: np.ndarray, over: np.ndarray, x: FloatArray, fired: np.ndarray) -> None:
        event = on & (self.t_role == _EVENT)
        counter = on & (self.t_role != _RUN)  # the allowance targets count too
        run = on & (self.t_role == _RUN)
        fired |= event & over
        self.count += counter & over
        self.run = np.where(run, np.where(over, self.run + 1, 0), self.run)
        keep = (event & over) | run
        self.value = np.where(keep, x, self.value)

    # -- text ---------------------------------------------------------------------------
    def allowance_text(self, i: int, year: int | None = None) -> str:
        """'PM10 daily limit exceeded 28 of 35 permitted times in 2026' for target `i`."""
        check = self.checks[i]
        what = check.quantity.split("_")[0].upper().replace("PM25", "PM2.5")
        period = {"hour": "hourly", "day": "daily", "max8h": "max daily 8-hour", "year": "annual"}[
            check.averaging
        ]
        kind = {
            "limit": "limit",
            "target": "target value",
            "long_term": "long-term objective",
            "guideline": "guideline",
        }.get(check.kind, check.kind)
        y = year if year is not None else self.year
        return (
            f"{what} {period} {kind} exceeded {int(self.count[i])} of {check.allowed} "
            f"permitted times in {y}"
        )
