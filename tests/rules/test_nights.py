from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from ecocluster.rules.nights import NightTracker, last_complete_night, night_of

ROME = ZoneInfo("Europe/Rome")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


@pytest.mark.parametrize(
    ("when", "start", "end", "night_date"),
    [
        ("2026-01-13T03:00+01:00", time(0), time(6), "2026-01-13"),
        ("2026-01-13T07:00+01:00", time(0), time(6), None),
        ("2026-01-12T23:30+01:00", time(22), time(6), "2026-01-13"),  # crosses midnight
        ("2026-01-13T05:59+01:00", time(22), time(6), "2026-01-13"),
        ("2026-01-13T02:30Z", time(0), time(6), "2026-01-13"),  # 03:30 in Rome
    ],
)
def test_night_of_numbers_nights_by_their_end_date(
    when: str, start: time, end: time, night_date: str | None
) -> None:
    expected = None if night_date is None else datetime.fromisoformat(night_date).date().toordinal()
    assert night_of(ms(when), start, end, ROME) == expected


def test_last_complete_night_waits_for_the_lag() -> None:
    day = datetime.fromisoformat("2026-01-13").date().toordinal()
    assert last_complete_night(ms("2026-01-13T06:10+01:00"), time(6), ROME, 30 * 60_000) == day - 1
    assert last_complete_night(ms("2026-01-13T06:31+01:00"), time(6), ROME, 30 * 60_000) == day


def test_tracker_keeps_per_night_minima_and_forgets_old_nights() -> None:
    tracker = NightTracker(2, start=time(0), end=time(6), n_nights=2)
    rows = np.array([0, 1])
    for night, values in (
        ("2026-01-13", [3.0, 1.0]),
        ("2026-01-14", [2.0, 8.0]),
        ("2026-01-15", [4.0, 5.0]),
    ):
        for hour, scale in ((1, 1.0), (2, 2.0)):
            tracker.add_bucket(ms(f"{night}T0{hour}:00+00:00"), rows, np.array(values) * scale, UTC)
    tracker.add_bucket(
        ms("2026-01-15T12:00+00:00"), rows, np.array([0.0, 0.0]), UTC
    )  # daytime: ignored
    last = datetime.fromisoformat("2026-01-15").date().toordinal()
    minima, counts = tracker.nights(rows, last, 3)
    np.testing.assert_array_equal(minima, [[np.nan, 2.0, 4.0], [np.nan, 8.0, 5.0]])
    np.testing.assert_array_equal(counts, [[0, 2, 2], [0, 2, 2]])
