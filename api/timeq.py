"""Times and durations in query parameters, and the territory's calendar.

Accepted times: epoch milliseconds (`1732470000000`), ISO 8601 (`2024-11-24T18:00:00Z`;
without an offset it is the territory's local time), `now`, `today` (local midnight) and
relative offsets from now (`-24h`, `-7d`, `-90m`). Durations: `90s`, `5m`, `1h`, `1h30m`,
`1d`, `1w`. Every malformed value is a `BadParameter` naming the parameter.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from ecocluster.api.errors import BadParameter

__all__ = ["local_midnight_ms", "parse_duration_ms", "parse_time_ms"]

_UNITS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION_RE: Final = re.compile(r"(\d+)(ms|s|m|h|d|w)")
#: Times outside these bounds are refused (year 1970 … 2200).
_MIN_MS: Final = 0
_MAX_MS: Final = 7_258_118_400_000


def parse_duration_ms(text: str, name: str) -> int:
    text = text.strip()
    pos, total = 0, 0
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise BadParameter(
            f"{name}={text!r} is not a duration (use e.g. 90s, 5m, 1h, 1h30m, 1d)", field=name
        )
    if total <= 0:
        raise BadParameter(f"{name} must be longer than zero", field=name)
    if total > 400 * 86_400_000:
        raise BadParameter(f"{name}={text!r} is longer than 400 days", field=name)
    return total


def local_midnight_ms(now_ms: int, tz: ZoneInfo, days_back: int = 0) -> int:
    """Epoch ms of local midnight `days_back` days before the day of `now_ms` (DST-safe)."""
    day = datetime.fromtimestamp(now_ms / 1000, tz).date() - timedelta(days=days_back)
    return day_start_ms(day, tz)


def day_start_ms(day: date, tz: ZoneInfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp() * 1000)


def parse_time_ms(text: str, name: str, *, now_ms: int, tz: ZoneInfo) -> int:
    text = text.strip()
    if text == "now":
        value = now_ms
    elif text == "today":
        value = local_midnight_ms(now_ms, tz)
    elif text[:1] in "+-" and text[1:2].isdigit() and not text[1:].isdigit():
        sign = -1 if text[0] == "-" else 1
        value = now_ms + sign * parse_duration_ms(text[1:], name)
    elif text.lstrip("-").isdigit():
        if len(text) > 16:
            raise BadParameter(f"{name}={text[:20]!r}… is out of range", field=name)
        value = int(text)
    else:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise BadParameter(
                f"{name}={text[:40]!r} is not a time (use epoch ms, ISO 8601, now, today or -24h)",
                field=name,
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=tz)
        try:
            value = int(parsed.astimezone(UTC).timestamp() * 1000)
        except (OverflowError, ValueError):
            raise BadParameter(f"{name}={text[:40]!r} is out of range", field=name) from None
    if not _MIN_MS <= value <= _MAX_MS:
        raise BadParameter(f"{name} must fall between 1970 and 2200", field=name)
    return value
