"""Durations as people write them in config: `90s`, `2m`, `1h30m`, `7d`, `500ms`.

Every failure is a `ValueError` with a one-line message (pydantic turns it into a field
error with file and line): absurd values such as `99999999999999d`, `1e300` or `.nan` are
refused here, before `timedelta` would overflow with a traceback.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

__all__ = ["MAX_DURATION", "Duration", "format_duration", "parse_duration"]

_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PART = re.compile(r"(\d{1,30}(?:\.\d{1,30})?)(ms|s|m|h|d|w)")
#: The longest duration anything here means (retention, history, a backtest's reach).
MAX_DURATION = timedelta(days=3650)
_MAX_MS = MAX_DURATION.total_seconds() * 1000
_MAX_TEXT = 64
_HINT = "use e.g. '90s', '2m', '1h30m', '7d'"


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse `1h30m`-style text; a bare number counts as seconds. At most `MAX_DURATION`."""
    if isinstance(text, timedelta):
        return _bounded(text.total_seconds() * 1000, str(text))
    if isinstance(text, bool):
        raise ValueError("a duration must be text like '90s', '2m' or '1h30m', not a boolean")
    if isinstance(text, int | float):
        return _bounded(float(text) * 1000, str(text))
    raw = str(text).strip()
    if len(raw) > _MAX_TEXT:
        raise ValueError(f"invalid duration ({len(raw)} characters): {_HINT}")
    pos, total_ms = 0, 0.0
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        total_ms += float(match.group(1)) * _UNIT_MS[match.group(2)]
        pos = match.end()
    if pos != len(raw) or not raw:
        raise ValueError(f"invalid duration {raw!r}: {_HINT}")
    return _bounded(total_ms, raw)


def _bounded(total_ms: float, shown: str) -> timedelta:
    if math.isnan(total_ms):
        raise ValueError(f"invalid duration {shown!r}: not a number")
    if total_ms < 0:
        raise ValueError(f"duration must not be negative, got {shown!r}")
    if total_ms > _MAX_MS:
        limit = format_duration(MAX_DURATION)
        raise ValueError(f"duration {shown!r} is out of range (at most {limit})")
    return timedelta(milliseconds=total_ms)


def format_duration(value: timedelta) -> str:
    ms = int(value.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        n, ms = divmod(ms, _UNIT_MS[unit])
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


def _to_timedelta(value: Any) -> timedelta:
    return parse_duration(value)


#: A pydantic field type: accepts '2m', 120, or a timedelta; dumps back as '2m'.
Duration = Annotated[
    timedelta, BeforeValidator(_to_timedelta), PlainSerializer(format_duration, return_type=str)
]
