"""Territory indicators in the style of EMAS Annex IV core indicators (Reg. (EC) 1221/2009
as amended by Reg. (EU) 2018/2026): Figure A (total annual energy and water use, CO2e),
Figure B (a reference value per organisation: employees, bed-nights, m², litres of milk…),
Figure R = A / B; plus the territory total, its trend against the previous year, each
organisation's share, and the breakdown per site, month and day.

    report = await territory_indicators(cluster, store, year=2026, now_ms=now)
    report.to_dict(); report.to_csv()

Consumption is the sum of the register deltas the ingest stage booked (resets counted from
zero, implausible jumps left out: domain reference §4.1), read through the store port:
`consumption` for the totals, `query_aggregate` (hourly sums of `delta`) for the months and
days, grouped on the territory's civil calendar.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np

from ecocluster.core.registry import Cluster
from ecocluster.ingest.stores.base import Store
from ecocluster.rules.indicators.factors import EmissionFactor, factor_for

__all__ = ["QUANTITIES", "IndicatorReport", "QuantityIndicators", "territory_indicators"]

QUANTITIES: Final = ("energy_kwh", "water_m3")
UNITS: Final = {"energy_kwh": "kWh", "water_m3": "m³"}
_HOUR_MS: Final = 3_600_000


@dataclass(slots=True)
class QuantityIndicators:
    quantity: str
    unit: str
    total: float
    previous_total: float
    by_org: dict[str, float]
    previous_by_org: dict[str, float]
    by_site: dict[str, float]
    by_month: dict[str, dict[str, float]]  # org → "2026-01" → value
    by_day: dict[str, dict[str, float]]  # site → "2026-01-14" → value
    factor: EmissionFactor | None

    @property
    def trend(self) -> float | None:
        """Change against the previous year, as a fraction (−0.05 = 5 % less)."""
        if self.previous_total <= 0:
            return None
        return (self.total - self.previous_total) / self.previous_total

    def share(self, org: str) -> float | None:
        return self.by_org.get(org, 0.0) / self.total if self.total > 0 else None

    def co2e_kg(self, value: float) -> float | None:
        return None if self.factor is None else value * self.factor.kg_per_unit


@dataclass(slots=True)
class IndicatorReport:
    territory: str
    year: int
    start_ms: int
    end_ms: int
    complete: bool
    organisations: dict[str, str]
    attributes: dict[str, dict[str, float]]
    quantities: dict[str, QuantityIndicators] = field(default_factory=dict)

    def org_rows(self) -> list[dict[str, Any]]:
        """One row per organisation and quantity: A, share, trend, CO2e and every ratio R."""
        rows = []
        for q, ind in self.quantities.items():
            for org, name in self.organisations.items():
                value = ind.by_org.get(org, 0.0)
                prev = ind.previous_by_org.get(org, 0.0)
                ratios = {
                    attr: value / b for attr, b in self.attributes.get(org, {}).items() if b > 0
                }
                rows.append(
                    {
                        "org": org,
                        "name": name,
                        "quantity": q,
                        "unit": ind.unit,
                        "value": value,
                        "previous": prev,
                        "trend": (value - prev) / prev if prev > 0 else None,
                        "share": ind.share(org),
                        "co2e_kg": ind.co2e_kg(value),
                        "ratios": ratios,
                    }
                )
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "territory": self.territory,
            "year": self.year,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "complete": self.complete,
            "basis": "EMAS Annex IV (Reg. (EU) 2018/2026): A total, B reference, R = A/B",
            "quantities": {
                q: {
                    "unit": ind.unit,
                    "total": ind.total,
                    "previous_total": ind.previous_total,
                    "trend": ind.trend,
                    "co2e_kg": ind.co2e_kg(ind.total),
                    "emission_factor": None
                    if ind.factor is None
                    else {
                        "kg_per_unit": ind.factor.kg_per_unit,
                        "unit": ind.factor.unit,
                        "year": ind.factor.year,
                        "source": ind.factor.source,
                    },
                    "by_site": ind.by_site,
                    "by_month": ind.by_month,
                    "by_day": ind.by_day,
                }
                for q, ind in self.quantities.items()
            },
            "organisations": self.org_rows(),
        }

    def to_csv(self) -> str:
        buf = io.StringIO()
        attrs = sorted({a for per in self.attributes.values() for a in per})
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(
            [
                "year",
                "org",
                "quantity",
                "unit",
                "value",
                "previous",
                "trend",
                "share",
                "co2e_kg",
                *(f"per_{a}" for a in attrs),
            ]
        )
        for row in self.org_rows():
            writer.writerow(
                [
                    self.year,
                    row["org"],
                    row["quantity"],
                    row["unit"],
                    _num(row["value"]),
                    _num(row["previous"]),
                    _num(row["trend"]),
                    _num(row["share"]),
                    _num(row["co2e_kg"]),
                    *(_num(row["ratios"].get(a)) for a in attrs),
                ]
            )
        return buf.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else repr(round(value, 9))


def _year_ms(year: int, tz: ZoneInfo) -> tuple[int, int]:
    lo = datetime(year, 1, 1, tzinfo=tz).timestamp()
    hi = datetime(year + 1, 1, 1, tzinfo=tz).timestamp()
    return int(lo * 1000), int(hi * 1000)


async def territory_indicators(
    cluster: Cluster,
    store: Store,
    *,
    year: int,
    now_ms: int,
    orgs: frozenset[str] | None = None,
) -> IndicatorReport:
    """Indicators of `year` (civil calendar of the territory; up to `now_ms` when the year
    is still running, and the previous year over the same span for a fair trend). `orgs`
    narrows the organisations shown; the territory total always covers everyone."""
    tz = ZoneInfo(cluster.territory.timezone)
    start_ms, end_ms = _year_ms(year, tz)
    if now_ms <= start_ms:
        raise ValueError(f"year {year} has not started yet")
    complete = now_ms >= end_ms
    stop_ms = min(end_ms, now_ms)
    prev_start, prev_end = _year_ms(year - 1, tz)
    prev_stop = prev_start + (stop_ms - start_ms) if not complete else prev_end
    shown = {o.id: o.name for o in cluster.organisations if orgs is None or o.id in orgs}
    report = IndicatorReport(
        cluster.territory.id,
        year,
        start_ms,
        stop_ms,
        complete,
        shown,
        {
            o.id: dict(getattr(o, "attributes", {}) or {})
            for o in cluster.organisations
            if o.id in shown
        },
    )
    for q in QUANTITIES:
        if not any(k.quantity == q for k in cluster.series):
            continue
        by_org = await store.consumption(q, start_ms, stop_ms, by="org")
        previous = await store.consumption(q, prev_start, prev_stop, by="org")
        by_site = await store.consumption(q, start_ms, stop_ms, by="site")
        months, days = await _calendar(store, q, start_ms, stop_ms, tz)
        site_org = {s.id: s.org for s in cluster.sites}
        report.quantities[q] = QuantityIndicators(
            q,
            UNITS[q],
            float(sum(by_org.values())),
            float(sum(previous.values())),
            {o: v for o, v in by_org.items() if o in shown},
            {o: v for o, v in previous.items() if o in shown},
            {s: v for s, v in by_site.items() if site_org.get(s) in shown},
            {o: m for o, m in months.items() if o in shown},
            {s: d for s, d in days.items() if site_org.get(s) in shown},
            factor_for(cluster, q),
        )
    return report


async def _calendar(
    store: Store, quantity: str, start_ms: int, end_ms: int, tz: ZoneInfo
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Consumption per org and civil month, per site and civil day, from hourly delta sums."""
    batch = await store.query_aggregate(quantity, start_ms, end_ms, every_ms=_HOUR_MS, fn="sum")
    months: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    days: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    if len(batch) == 0:
        return {}, {}
    keep = ~np.isnan(batch.deltas)
    hours = batch.ts_ms[keep] // _HOUR_MS
    deltas = batch.deltas[keep]
    sidx = batch.series_idx[keep]
    uniq, inverse = np.unique(hours, return_inverse=True)
    ordinal = np.array(
        [datetime.fromtimestamp(h * 3600, tz).date().toordinal() for h in uniq.tolist()],
        np.int64,
    )
    # One sum per (series, civil day), vectorised; the loop below runs per series-day.
    day_ord = ordinal[inverse]
    combo, where = np.unique(sidx * 1_000_000 + day_ord, return_inverse=True)
    sums = np.bincount(where, weights=deltas)
    for code, value in zip(combo.tolist(), sums.tolist(), strict=True):
        key = batch.series[code // 1_000_000]
        day = date.fromordinal(code % 1_000_000)
        months[key.org][day.strftime("%Y-%m")] += value
        days[key.site][day.isoformat()] += value
    return (
        {o: dict(sorted(m.items())) for o, m in months.items()},
        {s: dict(sorted(d.items())) for s, d in days.items()},
    )
