from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ecocluster.rules.cli import parse_time

ROME = ZoneInfo("Europe/Rome")
NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("2026-01-12", datetime(2026, 1, 12, tzinfo=ROME)),
        ("2026-01-12T06:00+00:00", datetime(2026, 1, 12, 6, tzinfo=UTC)),
        ("30d", datetime(2026, 1, 2, 12, 0, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text, ROME, now=NOW) == expected


def test_a_duration_counts_back_from_the_end() -> None:
    end = datetime(2026, 1, 31, tzinfo=UTC)
    assert parse_time("1d", ROME, now=NOW, before=end) == datetime(2026, 1, 30, tzinfo=UTC)


def test_nonsense_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="use an ISO date/time"):
        parse_time("yesterday-ish", ROME, now=NOW)


def test_an_absurd_duration_says_it_is_out_of_range() -> None:
    with pytest.raises(ValueError, match="'999999d' is out of range"):
        parse_time("999999d", ROME, now=NOW)
    with pytest.raises(ValueError, match="before the year 1"):
        parse_time("3000d", ROME, now=datetime(1, 6, 1, tzinfo=UTC))
