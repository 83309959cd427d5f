"""The territory's energy and water use, publicly: this month so far against the same days
of last year, and monthly totals for the open data.

    rows = await month_to_date(cluster, store, now_ms=now)

Figures are sums of the store's register deltas (`Store.consumption`, the same basis as the
indicators report), in the territory's civil calendar. Month to date runs from local
midnight on the 1st to now; last year's figure covers the same span of the same month
(1 December 00:00 → 2 December 04:05 compares with 1–2 December last year up to 04:05).

Honest nulls: a figure is null when the store holds no register data for the span (not
zero: "no data" and "nothing used" differ), and the change is null unless last year's
figure comes from the same meters as this year's (`comparable`): a meter installed in
the meantime would otherwise read as growth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from ecocluster.api.public.policy import PublicPolicy
from ecocluster.core.registry import Cluster
from ecocluster.ingest.stores.base import Store

__all__ = ["Month", "month_span", "month_to_date", "monthly_rows", "months_between"]

UNITS: Final = {"energy_kwh": "kWh", "water_m3": "m³"}


@dataclass(frozen=True, slots=True)
class Month:
    year: int
    month: int

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    @classmethod
    def parse(cls, text: str) -> Month:
        """`2026-12` → Month(2026, 12); ValueError otherwise."""
        year, sep, month = text.partition("-")
        if not sep or len(year) != 4 or len(month) != 2 or not (year + month).isdigit():
            raise ValueError(f"{text!r} is not a month (YYYY-MM)")
        m = Month(int(year), int(month))
        if not 1 <= m.month <= 12 or m.year < 1970:
            raise ValueError(f"{text!r} is not a month (YYYY-MM)")
        return m

    @classmethod
    def of_ms(cls, ts_ms: int, tz: ZoneInfo) -> Month:
        local = datetime.fromtimestamp(ts_ms / 1000, tz)
        return cls(local.year, local.month)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def month_span(month: Month, tz: ZoneInfo) -> tuple[int, int]:
    nxt = month.next()
    return (
        _ms(datetime(month.year, month.month, 1, tzinfo=tz)),
        _ms(datetime(nxt.year, nxt.month, 1, tzinfo=tz)),
    )


def months_between(first: Month, last: Month) -> list[Month]:
    out, m = [], first
    while (m.year, m.month) <= (last.year, last.month):
        out.append(m)
        m = m.next()
    return out


def _same_moment_last_year(now: datetime) -> datetime:
    day = now.day
    while True:  # 29 February → 28 February
        try:
            return now.replace(year=now.year - 1, day=day)
        except ValueError:
            day -= 1


def _total(by_meter: dict[str, float]) -> float | None:
    return float(sum(by_meter.values())) if by_meter else None


async def month_to_date(cluster: Cluster, store: Store, *, now_ms: int) -> list[dict[str, Any]]:
    """One row per register quantity the territory measures (contract `consumption`)."""
    tz = ZoneInfo(cluster.territory.timezone)
    now = datetime.fromtimestamp(now_ms / 1000, tz)
    month = Month(now.year, now.month)
    start, _ = month_span(month, tz)
    last = _same_moment_last_year(now)
    last_start, _ = month_span(Month(last.year, last.month), tz)
    measured = {k.quantity for k in cluster.series}
    out = []
    for q, unit in UNITS.items():
        if q not in measured:
            continue
        this = await store.consumption(q, start, now_ms, by="meter")
        before = await store.consumption(q, last_start, _ms(last), by="meter")
        this_total, before_total = _total(this), _total(before)
        comparable = bool(this) and set(this) == set(before)
        change = None
        if comparable and before_total and this_total is not None:
            change = round((this_total - before_total) / before_total * 100, 2)
        out.append(
            {
                "quantity": q,
                "unit": unit,
                "month": str(month),
                "this_month": None if this_total is None else round(this_total, 3),
                "same_month_last_year": None if before_total is None else round(before_total, 3),
                "change_pct": change,
                "comparable": comparable,
                "to_date": True,
            }
        )
    return out


async def monthly_rows(
    cluster: Cluster, store: Store, policy: PublicPolicy, months: list[Month], *, now_ms: int
) -> list[dict[str, Any]]:
    """Open-data rows per month and quantity: the territory, each public organisation, the
    private organisations together, and each meter the cluster file marks public."""
    tz = ZoneInfo(cluster.territory.timezone)
    names = {o.id: o.name for o in cluster.organisations}
    measured = {k.quantity for k in cluster.series}
    out: list[dict[str, Any]] = []
    for month in months:
        start, end = month_span(month, tz)
        if start >= now_ms:
            continue
        stop = min(end, now_ms)
        for q, unit in UNITS.items():
            if q not in measured:
                continue
            by_org = await store.consumption(q, start, stop, by="org")
            by_meter = await store.consumption(q, start, stop, by="meter")

            base = {"month": str(month), "to_date": end > now_ms, "quantity": q, "unit": unit}

            def row(
                scope: str, value: float | None, base: dict[str, Any] = base, **ids: str | None
            ) -> dict[str, Any]:
                return {
                    **base,
                    "scope": scope,
                    "org": ids.get("org"),
                    "name": ids.get("name"),
                    "site": ids.get("site"),
                    "meter": ids.get("meter"),
                    "value": None if value is None else round(value, 3),
                }

            out.append(row("territory", _total(by_org), name=cluster.territory.name))
            for org in sorted(policy.public_orgs):
                if org in by_org:
                    out.append(row("organisation", by_org[org], org=org, name=names[org]))
            private = [v for o, v in by_org.items() if o not in policy.public_orgs]
            out.append(row("private_organisations", float(sum(private)) if private else None))
            for site, meter in sorted(policy.public_meters):
                value = by_meter.get(f"{site}/{meter}")
                if value is not None:
                    out.append(row("meter", value, site=site, meter=meter))
    return out
