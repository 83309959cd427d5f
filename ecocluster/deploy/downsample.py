"""Downsampling by the project's own periodic task, not InfluxDB continuous queries.

Why our own task:
- it runs the same on every server ecocluster supports: continuous queries exist only in
  InfluxDB 1.x (2.x has Flux tasks, 3.x neither), and `SELECT … INTO` is refused by the
  v1-compatibility APIs of 2.x and 3.x; a plain `SELECT` plus a `/write` works on all three;
- it backfills: a CQ covers only its own last interval (or `RESAMPLE FOR`), so an outage of
  influxd, or readings spooled for hours by ingest, leave holes for ever; this task keeps a
  watermark and recomputes the recent windows (`REAGGREGATE`) at every pass;
- daily aggregates follow the territory's local day (23 or 25 hours across DST), which
  `GROUP BY time(1d)` (UTC) cannot;
- it is testable and observable like the rest of the node.
Its cost: one more task in the node (enable it on one node: `ECOCLUSTER_INFLUX_DOWNSAMPLE`).

Each aggregate point: measurement = quantity, the raw point's tags, fields `mean`, `min`,
`max`, `count` (integer), `last`, and `delta` (the consumption in the window) for registers;
timestamp = the window's start. A point's identity is series + time, so recomputing a
window overwrites it: passes are idempotent.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ecocluster.core.settings import Settings
from ecocluster.core.types import QUANTITIES
from ecocluster.deploy.credentials import write_private
from ecocluster.deploy.influx_http import InfluxHttp, Series, ident

__all__ = ["WINDOW_MS", "Downsampler", "aggregate_lines"]

_log = logging.getLogger(__name__)
WINDOW_MS = 15 * 60_000
#: Readings of a window may still be arriving for this long after it ends.
SETTLE_MS = 2 * 60_000
#: Every pass recomputes this much before the watermark (late and spooled readings).
REAGGREGATE_MS = 2 * 3_600_000
#: A first pass backfills at most this far back (bounded by the raw retention).
FIRST_LOOKBACK_MS = 30 * 86_400_000
_CHUNK_MS = 86_400_000
_SELECT = (
    'mean("value") AS "mean", min("value") AS "min", max("value") AS "max",'
    ' count("value") AS "count", last("value") AS "last", sum("delta") AS "delta"'
)
_FLOAT_FIELDS = ("mean", "min", "max", "last", "delta")
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": ""})


def _rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def aggregate_lines(series: list[Series], *, at_ms: int | None = None) -> list[str]:
    """Line protocol for query rows; `at_ms` stamps every row (a whole day's aggregate)."""
    lines = []
    for s in series:
        tags = "".join(
            f",{k.translate(_TAG_ESCAPES)}={v.translate(_TAG_ESCAPES)}"
            for k, v in sorted(s.tags.items())
            if v
        )
        for row in s.rows():
            count = row.get("count")
            if not count:
                continue
            fields = [f"count={int(count)}i"]
            fields += [f"{f}={float(row[f])!r}" for f in _FLOAT_FIELDS if row.get(f) is not None]
            ts = at_ms if at_ms is not None else int(row["time"])
            lines.append(f"{s.name}{tags} {','.join(fields)} {ts}")
    return lines


class Downsampler:
    """Raw → 15-minute and daily aggregates. `run_once()` is one pass; the node's
    maintenance task calls it every `influx_downsample_every_s`."""

    def __init__(
        self,
        influx: InfluxHttp,
        settings: Settings,
        *,
        timezone: str,
        state_path: Path,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.influx = influx
        self.raw_rp = settings.influx_rp
        self.rp_15m, self.rp_1d = settings.influx_rp_15m, settings.influx_rp_1d
        self.raw_keep_ms = int(settings.influx_retention_raw.total_seconds() * 1000)
        self.tz = ZoneInfo(timezone)
        self.state_path = state_path
        self._clock = clock_ms or (lambda: time.time_ns() // 1_000_000)

    def _sources(self) -> str:
        """Every quantity in one FROM (one query per chunk; series come back by name). The
        database is the request's `db`; no policy named: the database's default."""
        rp = f"{ident(self.raw_rp)}." if self.raw_rp else ""
        return ", ".join(f"{rp}{ident(q)}" for q in QUANTITIES)

    def _watermark(self) -> int | None:
        try:
            return int(json.loads(self.state_path.read_text())["done_15m_ms"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _save(self, done_ms: int) -> None:
        write_private(self.state_path, json.dumps({"done_15m_ms": done_ms}) + "\n", 0o644)

    async def run_once(self) -> tuple[int, int]:
        """One pass; returns (15-minute points, daily points) written."""
        now = self._clock()
        end = (now - SETTLE_MS) // WINDOW_MS * WINDOW_MS
        lookback = min(FIRST_LOOKBACK_MS, self.raw_keep_ms or FIRST_LOOKBACK_MS)
        watermark = self._watermark()
        start = end - lookback if watermark is None else watermark - REAGGREGATE_MS
        start = max(start, now - lookback) // WINDOW_MS * WINDOW_MS
        if start >= end:
            return 0, 0
        quarter = await self._quarters(start, end)
        daily = await self._days(start, end)
        self._save(end)
        if quarter or daily:
            _log.info("downsampled %d 15-minute and %d daily point(s)", quarter, daily)
        return quarter, daily

    async def _quarters(self, start: int, end: int) -> int:
        written = 0
        for lo in range(start, end, _CHUNK_MS):
            hi = min(lo + _CHUNK_MS, end)
            series = await self.influx.query(
                f"SELECT {_SELECT} FROM {self._sources()}"
                f" WHERE time >= '{_rfc3339(lo)}' AND time < '{_rfc3339(hi)}'"
                " GROUP BY time(15m), * fill(none)"
            )
            lines = aggregate_lines(series)
            await self.influx.write(lines, rp=self.rp_15m)
            written += len(lines)
        return written

    def local_days(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """(start_ms, end_ms) of each complete local day overlapping [start, end)."""
        day = datetime.fromtimestamp(start / 1000, self.tz).date()
        while True:
            lo = datetime(day.year, day.month, day.day, tzinfo=self.tz)
            nxt = day + timedelta(days=1)
            hi = datetime(nxt.year, nxt.month, nxt.day, tzinfo=self.tz)
            lo_ms, hi_ms = int(lo.timestamp() * 1000), int(hi.timestamp() * 1000)
            if hi_ms > end:
                return
            yield lo_ms, hi_ms
            day = nxt

    async def _days(self, start: int, end: int) -> int:
        written = 0
        for lo, hi in self.local_days(start, end):
            series = await self.influx.query(
                f"SELECT {_SELECT} FROM {self._sources()}"
                f" WHERE time >= '{_rfc3339(lo)}' AND time < '{_rfc3339(hi)}' GROUP BY *"
            )
            lines = aggregate_lines(series, at_ms=lo)
            await self.influx.write(lines, rp=self.rp_1d)
            written += len(lines)
        return written
