"""Durations as people write them in config: `90s`, `2m`, `1h30m`, `7d`, `500ms`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse `1h30m`-style text; a bare number counts as seconds."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, bool):
        raise ValueError("a duration must be text like '90s', '2m' or '1h30m', not a boolean")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"duration must not be negative, got {text}")
        return timedelta(seconds=text)
    raw = str(text).strip()
    pos, total_ms = 0, 0.0
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        total_ms += float(match.group(1)) * _UNIT_MS[match.group(2)]
        pos = match.end()
    if pos != len(raw) or not raw:
        raise ValueError(f"invalid duration {raw!r}: use e.g. '90s', '2m', '1h30m', '7d'")
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
