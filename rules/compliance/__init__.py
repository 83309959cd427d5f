"""Air-quality compliance: regulatory packs as data, the directives' averaging and
data-capture rules vectorised over stations, exceedance counting, threshold episodes,
and the yearly report. The alerting side is the `compliance` rule type
(`ecocluster.rules.types.compliance`).

    report = await build_report(cluster, store, year=2026, now_ms=now)
"""

from __future__ import annotations

from ecocluster.rules.compliance.assess import CheckResult, Episode, Exceedance, assess
from ecocluster.rules.compliance.averaging import (
    HourGrid,
    Periods,
    daily_means,
    hour_grid,
    max_daily_8h,
    running_8h,
    year_mean,
)
from ecocluster.rules.compliance.packs import DEFAULT_PACK, PACKS, Check, Pack, get_pack
from ecocluster.rules.compliance.report import (
    INDICATIVE,
    ComplianceReport,
    StationReport,
    build_report,
    pack_of,
)
from ecocluster.rules.compliance.timebase import standard_offset_ms

__all__ = [
    "DEFAULT_PACK",
    "INDICATIVE",
    "PACKS",
    "Check",
    "CheckResult",
    "ComplianceReport",
    "Episode",
    "Exceedance",
    "HourGrid",
    "Pack",
    "Periods",
    "StationReport",
    "assess",
    "build_report",
    "daily_means",
    "get_pack",
    "hour_grid",
    "max_daily_8h",
    "pack_of",
    "running_8h",
    "standard_offset_ms",
    "year_mean",
]
