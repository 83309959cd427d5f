"""The InfluxDB database and its retention policies, made idempotently at node start, and
the maintenance task that keeps the downsampled aggregates current.

Three retention policies on the database (InfluxDB 1.x):

- raw readings: `influx_rp`, else the database's default policy; kept
  `influx_retention_raw` (30d);
- `influx_rp_15m` (`agg_15m`): 15-minute mean/min/max/count/last/delta; kept
  `influx_retention_15m` (2 years);
- `influx_rp_1d` (`agg_1d`): the same per local day; kept `influx_retention_1d` (for ever).

InfluxDB 2.x and 3.x refuse `CREATE DATABASE` and retention statements (buckets, DBRP
mappings and databases are made with their own tools: deploy/README.md, "InfluxDB"): a
refusal is logged once with the setting that silences it, never fatal.

    async with influx_maintenance(settings, timezone="Europe/Rome"):
        ...   # the node runs; schema ensured, aggregates refreshed in the background
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ecocluster.core.errors import FatalError, TransientError, describe
from ecocluster.core.settings import Settings
from ecocluster.deploy.influx_http import InfluxHttp, InfluxRefused, ident

if TYPE_CHECKING:
    from ecocluster.deploy.downsample import Downsampler

__all__ = ["SchemaReport", "ensure_schema", "influx_maintenance", "shard_duration"]

_log = logging.getLogger(__name__)
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns)")
_GO_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


@dataclass
class SchemaReport:
    """What `ensure_schema` did: statements run, and what the server refused."""

    executed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    raw_rp: str | None = None


def influx_duration(value: timedelta) -> str:
    """`30d`, `1h`, or `INF` for 0 (kept for ever)."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "INF"
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{max(seconds // 60, 60)}m"


def shard_duration(value: timedelta) -> str:
    """InfluxDB's own rule: < 2 days → 1h, ≤ 6 months → 1d, longer or INF → 7d."""
    seconds = value.total_seconds()
    if seconds == 0 or seconds > 182 * 86400:
        return "7d"
    return "1d" if seconds >= 2 * 86400 else "1h"


def _go_seconds(text: str) -> float:
    """`720h0m0s` (SHOW RETENTION POLICIES) → seconds; `0s` = infinite."""
    return sum(float(n) * _GO_UNIT_S[u] for n, u in _GO_PART.findall(text))


async def _existing_policies(influx: InfluxHttp) -> dict[str, tuple[float, bool]]:
    series = await influx.query(f"SHOW RETENTION POLICIES ON {ident(influx.db)}")
    found = {}
    for s in series:
        for row in s.rows():
            found[str(row["name"])] = (_go_seconds(str(row["duration"])), bool(row.get("default")))
    return found


async def ensure_schema(influx: InfluxHttp, settings: Settings) -> SchemaReport:
    """Create the database and the three retention policies, or bring their durations to
    the settings. Idempotent: a second call executes nothing. Raises `InfluxUnavailable`
    when the server is away; a refused statement (2.x/3.x) is reported, not raised."""
    report = SchemaReport()
    db = ident(influx.db)
    if settings.influx_create_db:
        await _run(influx, f"CREATE DATABASE {db}", report)
    if not settings.influx_manage_retention:
        return report
    try:
        existing = await _existing_policies(influx)
    except InfluxRefused as exc:
        report.refused.append(f"SHOW RETENTION POLICIES: {exc}")
        return report
    default = next((name for name, (_, is_default) in existing.items() if is_default), None)
    raw = settings.influx_rp or default or "autogen"
    report.raw_rp = raw
    wanted = [
        (raw, settings.influx_retention_raw),
        (settings.influx_rp_15m, settings.influx_retention_15m),
        (settings.influx_rp_1d, settings.influx_retention_1d),
    ]
    for name, keep in wanted:
        await _ensure_policy(influx, existing, name, keep, report)
    return report


async def _ensure_policy(
    influx: InfluxHttp,
    existing: dict[str, tuple[float, bool]],
    name: str,
    keep: timedelta,
    report: SchemaReport,
) -> None:
    duration, shard = influx_duration(keep), shard_duration(keep)
    where = f"{ident(name)} ON {ident(influx.db)}"
    if name not in existing:
        statement = f"CREATE RETENTION POLICY {where} DURATION {duration} REPLICATION 1"
        await _run(influx, f"{statement} SHARD DURATION {shard}", report)
        return
    current_s, _ = existing[name]
    if abs(current_s - keep.total_seconds()) < 1:
        return
    if keep.total_seconds() and (current_s == 0 or current_s > keep.total_seconds()):
        _log.warning("retention of %r shortened to %s: older data there is deleted", name, duration)
    await _run(
        influx, f"ALTER RETENTION POLICY {where} DURATION {duration} SHARD DURATION {shard}", report
    )


async def _run(influx: InfluxHttp, statement: str, report: SchemaReport) -> None:
    try:
        await influx.query(statement, write=True)
    except InfluxRefused as exc:
        report.refused.append(str(exc))
    else:
        report.executed.append(statement)


def _log_refusals(report: SchemaReport) -> None:
    if report.refused:
        _log.warning(
            "influxdb refused %d schema statement(s) (InfluxDB 2.x/3.x manage databases and"
            " retention themselves: set ECOCLUSTER_INFLUX_CREATE_DB=false and"
            " ECOCLUSTER_INFLUX_MANAGE_RETENTION=false, see deploy/README.md); first: %s",
            len(report.refused),
            report.refused[0],
        )


@contextlib.asynccontextmanager
async def influx_maintenance(
    settings: Settings, *, timezone: str, state_dir: Path | None = None
) -> AsyncIterator[asyncio.Task[None]]:
    """Ensure the schema and keep the aggregates current in a background task, for as long
    as the block runs. Never fails the node at start: an absent server is retried."""
    from ecocluster.deploy.downsample import Downsampler

    async with InfluxHttp.from_settings(settings) as influx:
        sampler = None
        if settings.influx_downsample:
            path = (state_dir or settings.data_dir) / "influx-downsample.json"
            sampler = Downsampler(influx, settings, timezone=timezone, state_path=path)
        task = asyncio.create_task(_maintain(influx, settings, sampler), name="influx.maintenance")
        try:
            yield task
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _maintain(influx: InfluxHttp, settings: Settings, sampler: Downsampler | None) -> None:
    schema_done = False
    while True:
        try:
            if not schema_done:
                report = await ensure_schema(influx, settings)
                _log_refusals(report)
                schema_done = True
            if sampler is not None:
                await sampler.run_once()
        except TransientError as exc:
            _log.warning("influx maintenance: %s; retrying", describe(exc))
        except (FatalError, InfluxRefused) as exc:
            _log.error("influx maintenance stopped: %s", describe(exc))
            return
        await asyncio.sleep(settings.influx_downsample_every_s if schema_done else 10.0)
