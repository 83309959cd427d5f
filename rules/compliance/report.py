"""The compliance report of a year: per station and pollutant, the averages, exceedances
with their dates, data capture, and a status against each check of each pack.

    report = await build_report(cluster, store, year=2026, now_ms=now)
    report.to_dict()        # JSON-ready
    report.to_csv()         # one row per station, pack and check

Readings come from the store (`query_range`) for the year plus the 7 hours before it (the
first day's 8-hour windows start at 17:00 on 31 December). Statements are *indicative*:
member-site sensors are not reference methods (domain reference §0.3).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np

from ecocluster.core.registry import Cluster
from ecocluster.core.types import AIR_QUANTITIES, FloatArray, SeriesKey
from ecocluster.ingest.stores.base import Store
from ecocluster.rules.compliance.assess import CheckResult, assess
from ecocluster.rules.compliance.averaging import (
    HourGrid,
    daily_means,
    hour_grid,
    max_daily_8h,
    reporting_interval_ms,
)
from ecocluster.rules.compliance.packs import DEFAULT_PACK, PACKS
from ecocluster.rules.compliance.timebase import (
    HOUR_MS,
    date_of_day,
    hour_of_ms,
    ms_of_hour,
    standard_offset_ms,
    year_hours,
)

__all__ = ["INDICATIVE", "ComplianceReport", "StationReport", "build_report", "pack_of", "unit_of"]

LEAD_HOURS: Final = 7
INDICATIVE: Final = (
    "Indicative statement from the cluster's own sensors, computed with the directive's"
    " averaging and data-capture rules; legal compliance is assessed by the regional agency"
    " (ARPAE/ARPAT) with reference methods at approved sampling points."
)


def unit_of(quantity: str) -> str:
    return "mg/m³" if quantity == "co_mgm3" else "µg/m³"


def pack_of(cluster: Cluster, site: str, meter: str) -> str:
    """The station's configured pack: the meter's, else its site's, else the territory's."""
    m = cluster.meter(site, meter)
    s = cluster.site_by_id.get(site)
    for spec in (
        getattr(m, "compliance", None),
        getattr(s, "compliance", None),
        getattr(cluster.territory, "compliance", None),
    ):
        if spec is not None:
            return str(spec.pack)
    return DEFAULT_PACK


@dataclass(slots=True)
class StationReport:
    key: SeriesKey
    pack: str
    #: Valid hours / hours elapsed in the year.
    hourly_capture: float
    #: Daily means (µg/m³ or mg/m³) per day of the year, None where invalid.
    daily: list[float | None]
    #: Maximum daily 8-hour means (O3 and CO only), None where invalid.
    max8h: list[float | None] | None
    results: dict[str, list[CheckResult]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        org, site, meter, quantity = self.key
        return {
            "org": org,
            "site": site,
            "meter": meter,
            "quantity": quantity,
            "unit": unit_of(quantity),
            "pack": self.pack,
            "hourly_capture": round(self.hourly_capture, 4),
            "daily_means": self.daily,
            "max_daily_8h": self.max8h,
            "checks": [
                _result_dict(name, r) for name, results in self.results.items() for r in results
            ],
        }


@dataclass(slots=True)
class ComplianceReport:
    territory: str
    year: int
    first_day: str
    #: Epoch ms the assessment runs to (the year's end, or now for the current year).
    until_ms: int
    complete: bool
    offset_ms: int
    stations: list[StationReport] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        hours, minutes = divmod(abs(self.offset_ms) // 60_000, 60)
        sign = "+" if self.offset_ms >= 0 else "-"
        return {
            "territory": self.territory,
            "year": self.year,
            "complete": self.complete,
            "until_ms": self.until_ms,
            "time_base": f"local standard time, UTC{sign}{hours:02d}:{minutes:02d}",
            "first_day": self.first_day,
            "indicative": INDICATIVE,
            "packs": {
                p.name: {
                    "title": p.title,
                    "source": p.source,
                    "notes": list(p.notes),
                    "applies_from": p.applies_from,
                }
                for p in PACKS.values()
            },
            "stations": [s.to_dict() for s in self.stations],
        }

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(
            [
                "year",
                "org",
                "site",
                "meter",
                "quantity",
                "unit",
                "configured_pack",
                "pack",
                "check",
                "kind",
                "averaging",
                "standard",
                "allowed",
                "count",
                "statistic",
                "data_capture",
                "status",
                "verified",
                "source",
                "exceedances",
            ]
        )
        for st in self.stations:
            org, site, meter, quantity = st.key
            for pack, results in st.results.items():
                for r in results:
                    c = r.check
                    writer.writerow(
                        [
                            self.year,
                            org,
                            site,
                            meter,
                            quantity,
                            unit_of(quantity),
                            st.pack,
                            pack,
                            c.id,
                            c.kind,
                            c.averaging,
                            _num(c.value),
                            _num(c.allowed),
                            _num(r.count),
                            _num(r.value),
                            f"{r.data_capture:.4f}",
                            r.status,
                            "yes" if c.verified else "no",
                            c.source,
                            ";".join(f"{e.period}={e.value:.6g}" for e in r.exceedances),
                        ]
                    )
        return buf.getvalue()


def _num(value: float | int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value)


def _result_dict(pack: str, r: CheckResult) -> dict[str, Any]:
    c = r.check
    return {
        "pack": pack,
        "id": c.id,
        "kind": c.kind,
        "averaging": c.averaging,
        "standard": c.value,
        "allowed": c.allowed,
        "consecutive": c.hours,
        "source": c.source,
        "verified": c.verified,
        "note": c.note or None,
        "status": r.status,
        "count": r.count,
        "statistic": r.value,
        "data_capture": round(r.data_capture, 4),
        "capture_ok": r.capture_ok,
        "exceedances": [{"period": e.period, "value": e.value} for e in r.exceedances],
        "episodes": [{"start": e.start, "length": e.length, "peak": e.peak} for e in r.episodes],
    }


def _as_list(row: FloatArray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in row.tolist()]


async def build_report(
    cluster: Cluster,
    store: Store,
    *,
    year: int,
    now_ms: int,
    site: str | None = None,
    meter: str | None = None,
    quantity: str | None = None,
    packs: tuple[str, ...] | None = None,
) -> ComplianceReport:
    """Assess every air-quality series of the cluster (optionally one site, meter or
    pollutant) over `year` (up to `now_ms` if the year is not over) against `packs`
    (default: all). Raises `ValueError` for a year that has not started."""
    tz = ZoneInfo(cluster.territory.timezone)
    offset = standard_offset_ms(tz, year)
    first_hour, end_hour = year_hours(year)
    now_hour = hour_of_ms(now_ms, offset)
    if now_hour <= first_hour:
        raise ValueError(f"year {year} has not started yet in {tz.key} standard time")
    complete = now_hour >= end_hour
    stop_hour = min(end_hour, now_hour)
    report = ComplianceReport(
        cluster.territory.id,
        year,
        date_of_day(first_hour // 24).isoformat(),
        ms_of_hour(stop_hour, offset),
        complete,
        offset,
    )
    names = packs or tuple(PACKS)
    keys = [
        k
        for k in cluster.series
        if k.quantity in AIR_QUANTITIES
        and (site is None or k.site == site)
        and (meter is None or k.meter == meter)
        and (quantity is None or k.quantity == quantity)
    ]
    for q in sorted({k.quantity for k in keys}):
        wanted = [k for k in keys if k.quantity == q]
        grid = await load_grid(cluster, store, wanted, first_hour - LEAD_HOURS, stop_hour, offset)
        report.stations.extend(
            _station_reports(cluster, wanted, grid, names, first_hour, stop_hour, complete)
        )
    return report


async def load_grid(
    cluster: Cluster,
    store: Store,
    keys: list[SeriesKey],
    h0: int,
    end_hour: int,
    offset_ms: int,
    *,
    hour_capture: float = 0.75,
) -> HourGrid:
    """Hourly values of `keys` (one quantity) for hours `[h0, end_hour)`, read from the store."""
    (q,) = {k.quantity for k in keys}
    where: dict[str, str] = {}
    if len({k.site for k in keys}) == 1:
        where["site"] = keys[0].site
    batch = await store.query_range(
        q, ms_of_hour(h0, offset_ms), ms_of_hour(end_hour, offset_ms), where=where or None
    )
    row_of = {k: i for i, k in enumerate(keys)}
    mapped = np.array([row_of.get(SeriesKey(*k), -1) for k in batch.series], np.int64)
    rows = mapped[batch.series_idx] if len(batch) else np.empty(0, np.int64)
    keep = rows >= 0
    rows, ts_ms, values = rows[keep], batch.ts_ms[keep], batch.values[keep]
    order = np.lexsort((ts_ms, rows))
    rows, ts_ms, values = rows[order], ts_ms[order], values[order]
    interval = reporting_interval_ms(rows, ts_ms, len(keys))
    for i, key in enumerate(keys):
        declared = getattr(cluster.meter(key.site, key.meter), "interval", None)
        if declared is not None:
            interval[i] = declared.total_seconds() * 1000
    return hour_grid(
        rows,
        ts_ms,
        values,
        n_series=len(keys),
        h0=h0,
        n_hours=end_hour - h0,
        offset_ms=offset_ms,
        interval_ms=np.minimum(interval, HOUR_MS),
        min_capture=hour_capture,
    )


def _station_reports(
    cluster: Cluster,
    keys: list[SeriesKey],
    grid: HourGrid,
    packs: tuple[str, ...],
    first_hour: int,
    stop_hour: int,
    complete: bool,
) -> list[StationReport]:
    q = keys[0].quantity
    days = daily_means(grid)
    first_day = first_hour // 24 - days.first
    n_days = -(-stop_hour // 24) - first_hour // 24
    max8 = max_daily_8h(grid) if q in ("o3_ugm3", "co_mgm3") else None
    lo = first_hour - grid.h0
    valid_hours = grid.valid[:, lo : stop_hour - grid.h0].sum(axis=1)
    out = [
        StationReport(
            key,
            pack_of(cluster, key.site, key.meter),
            float(valid_hours[i] / max(stop_hour - first_hour, 1)),
            _as_list(days.value[i, first_day : first_day + n_days]),
            None if max8 is None else _as_list(max8.value[i, first_day : first_day + n_days]),
        )
        for i, key in enumerate(keys)
    ]
    for name in packs:
        per_station = assess(PACKS[name], q, grid, first_hour, stop_hour, complete=complete)
        for st, results in zip(out, per_station, strict=True):
            if results:
                st.results[name] = results
    return out
