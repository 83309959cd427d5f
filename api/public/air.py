"""The public air figures of each station: the EAQI now, a 48-hour hourly chart, and the
compliance pack's limits and information/alert thresholds exceeded now.

    air = await load_air(cluster, store, stations, now_ms=now, hours=48)
    air.eaqi(site), air.chart(site), air.exceedances(site)

Every figure is computed from the compliance packs' own averages: hourly means with the
directive's data-capture rule (`report.load_grid` → `averaging.hour_grid`, ≥ 75 % of the
hour), daily and maximum daily 8-hour means (`assess.period_values`), in local standard
time. "Now" is the last complete hour; an hour without enough data has no value (null).

Exceedances "now" (strictly above the standard, as `assess.py` counts them):
- an hourly limit or threshold: the last complete hour is above it, for a threshold
  "over N consecutive hours" the run of valid hours above it ending then is ≥ N long;
- a daily (or maximum daily 8-hour) standard: the last complete standard-time day.
Counted standards of other kinds (targets, long-term objectives, WHO guidelines) and annual
means are not "now" figures and are left to the compliance report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np

from ecocluster.core.cluster import Site
from ecocluster.core.registry import Cluster
from ecocluster.core.types import AIR_QUANTITIES, SeriesKey
from ecocluster.ingest.stores.base import Store
from ecocluster.rules.compliance.assess import period_values
from ecocluster.rules.compliance.averaging import HourGrid
from ecocluster.rules.compliance.eaqi import (
    EAQI_POLLUTANTS,
    POLLUTANT_KEYS,
    band_of,
    station_index,
)
from ecocluster.rules.compliance.packs import PACKS, Check
from ecocluster.rules.compliance.report import load_grid, pack_of, unit_of
from ecocluster.rules.compliance.timebase import DAY_H, HOUR_MS, ms_of_hour, standard_offset_ms

__all__ = ["AirFigures", "hourly_rows", "iso_ms", "load_air", "pollutant_key"]

CHART_HOURS: Final = 48
#: Pack kinds shown as "exceeded now", with their public names.
_KINDS: Final = {
    "limit": "limit_value",
    "information": "information_threshold",
    "alert": "alert_threshold",
}
_AVERAGING: Final = {"hour": "1h", "day": "24h", "max8h": "max daily 8h"}
#: Hourly means need this share of the hour in every pack (2008/50/EC Annex XI A).
_HOUR_CAPTURE: Final = 0.75


def iso_ms(ts_ms: int | None) -> str | None:
    if ts_ms is None:
        return None
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pollutant_key(quantity: str) -> str:
    """The public name of an air quantity: pm2_5, pm10, no2, o3, so2, co."""
    return POLLUTANT_KEYS.get(quantity, quantity.split("_", 1)[0])


def _num(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 3)


@dataclass(slots=True)
class AirFigures:
    """Hourly grids of every air quantity for the stations, `[h0, end_hour)` standard time."""

    cluster: Cluster
    offset_ms: int
    h0: int
    end_hour: int
    #: quantity → (station site id → row, grid)
    grids: dict[str, tuple[dict[str, int], HourGrid]] = field(default_factory=dict)
    #: station → quantity → the meter measuring it (the first one in the file)
    meters: dict[str, dict[str, str]] = field(default_factory=dict)

    def hourly(self, site: str, quantity: str, hour: int) -> float:
        """The valid hourly mean of `hour` (NaN when not valid or not measured)."""
        rows, grid = self.grids.get(quantity, ({}, None))
        if grid is None or site not in rows or not self.h0 <= hour < self.end_hour:
            return math.nan
        return float(grid.mean[rows[site], hour - grid.h0])

    def eaqi(self, site: Site) -> dict[str, Any]:
        """The station's EAQI for the last complete hour (contract `eaqi` object)."""
        hour = self.end_hour - 1
        measured = [q for q in EAQI_POLLUTANTS if q in self.meters.get(site.id, {})]
        values = {q: self.hourly(site.id, q, hour) for q in measured}
        index = station_index(
            {q: (None if math.isnan(v) else v) for q, v in values.items()},
            getattr(site, "station_type", "background"),
        )
        pollutants = []
        for q in measured:
            v = values[q]
            band = int(band_of(q, v)[0]) or None
            pollutants.append(
                {
                    "pollutant": pollutant_key(q),
                    "value": _num(v),
                    "unit": unit_of(q),
                    "averaging": "1h",
                    "band": band,
                    "captured": not math.isnan(v),
                }
            )
        return {
            "band": index.band,
            "level": index.level,
            "pollutant": None if index.pollutant is None else pollutant_key(index.pollutant),
            "at": iso_ms(ms_of_hour(hour, self.offset_ms)) if measured else None,
            "missing": [
                "|".join(pollutant_key(q) for q in group.split("|")) for group in index.missing
            ],
            "pollutants": pollutants,
        }

    def chart(self, site: Site, hours: int = CHART_HOURS) -> dict[str, Any]:
        first = self.end_hour - hours
        series = []
        for q in EAQI_POLLUTANTS:
            if q not in self.meters.get(site.id, {}):
                continue
            points = [
                [iso_ms(ms_of_hour(h, self.offset_ms)), _num(self.hourly(site.id, q, h))]
                for h in range(first, self.end_hour)
            ]
            series.append({"pollutant": pollutant_key(q), "unit": unit_of(q), "points": points})
        return {
            "from": iso_ms(ms_of_hour(first, self.offset_ms)),
            "to": iso_ms(ms_of_hour(self.end_hour, self.offset_ms)),
            "step_s": 3600,
            "series": series,
        }

    def exceedances(self, site: Site) -> list[dict[str, Any]]:
        """The pack's limits and thresholds exceeded now at the station (see module doc)."""
        out: list[dict[str, Any]] = []
        for q, meter in self.meters.get(site.id, {}).items():
            rows, grid = self.grids[q]
            pack = PACKS[pack_of(self.cluster, site.id, meter)]
            for check in pack.checks_for(q):
                if check.kind not in _KINDS or check.averaging == "year":
                    continue
                found = self._exceeded(check, pack, grid, rows[site.id])
                if found is not None:
                    value, since_ms = found
                    out.append(
                        {
                            "pollutant": pollutant_key(q),
                            "kind": _KINDS[check.kind],
                            "value": round(value, 3),
                            "limit": check.value,
                            "averaging": _AVERAGING[check.averaging],
                            "since": iso_ms(since_ms),
                        }
                    )
        return out

    def _exceeded(self, check: Check, pack: Any, grid: HourGrid, row: int) -> Any:
        periods = period_values(grid, check, pack)
        values = periods.value[row]
        if check.averaging == "hour":
            last = self.end_hour - 1 - periods.first
            run = 0
            while last - run >= 0 and not math.isnan(values[last - run]):
                if not values[last - run] > check.value:
                    break
                run += 1
            if run < max(check.hours, 1):
                return None
            return float(values[last]), ms_of_hour(self.end_hour - run, self.offset_ms)
        day = self.end_hour // DAY_H - 1
        col = day - periods.first
        if not 0 <= col < values.shape[0]:
            return None
        value = float(values[col])
        if math.isnan(value) or not value > check.value:
            return None
        return value, ms_of_hour(day * DAY_H, self.offset_ms)


async def load_air(
    cluster: Cluster,
    store: Store,
    stations: tuple[Site, ...],
    *,
    now_ms: int,
    hours: int = CHART_HOURS,
    span: tuple[int, int] | None = None,
) -> AirFigures:
    """Hourly grids for the stations' air quantities, ending with the last complete hour,
    long enough for the chart and for the last complete day's 24 h and 8 h windows; or,
    with `span` (epoch ms, half-open), the whole hours it covers (ended ones only)."""
    tz = ZoneInfo(cluster.territory.timezone)
    offset = standard_offset_ms(tz)
    end_hour = (now_ms + offset) // HOUR_MS
    h0 = min(end_hour - hours, (end_hour // DAY_H - 1) * DAY_H - 7)
    if span is not None:
        h0 = (span[0] + offset) // HOUR_MS
        end_hour = max(h0, min(end_hour, -(-(span[1] + offset) // HOUR_MS)))
    figures = AirFigures(cluster, offset, h0, end_hour)
    for site in stations:
        chosen: dict[str, str] = {}
        for m in cluster.meters_of(site.id):
            for measured in m.quantities:
                if measured in AIR_QUANTITIES:
                    chosen.setdefault(measured, m.id)
        figures.meters[site.id] = chosen
    for q in sorted(AIR_QUANTITIES):
        at = [s for s in stations if q in figures.meters[s.id]]
        if not at:
            continue
        keys = [SeriesKey(s.org, s.id, figures.meters[s.id][q], q) for s in at]
        grid = await load_grid(
            cluster, store, keys, h0, end_hour, offset, hour_capture=_HOUR_CAPTURE
        )
        figures.grids[q] = ({s.id: i for i, s in enumerate(at)}, grid)
    return figures


def hourly_rows(figures: AirFigures, first_hour: int, end_hour: int) -> list[dict[str, Any]]:
    """Open-data rows: one per station, pollutant and hour, with capture and validity."""
    out = []
    for q, (rows, grid) in sorted(figures.grids.items()):
        lo, hi = max(first_hour, grid.h0), min(end_hour, grid.h0 + grid.n_hours)
        for site, row in rows.items():
            for h in range(lo, hi):
                col = h - grid.h0
                value = float(grid.mean[row, col])
                out.append(
                    {
                        "station": site,
                        "pollutant": pollutant_key(q),
                        "hour_start": iso_ms(ms_of_hour(h, figures.offset_ms)),
                        "value": _num(value),
                        "unit": unit_of(q),
                        "data_capture": round(float(np.clip(grid.capture[row, col], 0, 1)), 4),
                        "valid": not math.isnan(value),
                    }
                )
    return out
