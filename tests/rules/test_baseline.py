"""The seasonal baseline: slots of the territory's week, robust updates, honest counts."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import numpy as np

from ecocluster.rules.baseline import N_SLOTS, BaselineTable, Calendar, easter_sunday

ROME = ZoneInfo("Europe/Rome")


def test_slots_are_local_quarter_hours_by_day_type() -> None:
    cal = Calendar(ROME)
    # 2024-11-25 is a Monday; 00:30 in Rome is 23:30 UTC on Sunday the 24th
    assert cal.slot(1_732_491_000_000) == 2  # working day, 00:30 → third quarter hour
    assert Calendar(ZoneInfo("UTC")).slot(1_732_491_000_000) == 2 * 96 + 23 * 4 + 2  # Sunday
    # Saturday 2024-11-23 12:00 Rome
    assert cal.slot(1_732_359_600_000) == 96 + 48


def test_territory_holidays_are_sundays() -> None:
    cal = Calendar(ROME)
    assert easter_sunday(2026) == date(2026, 4, 5)
    assert cal.is_holiday(date(2026, 4, 6))  # Easter Monday
    assert cal.is_holiday(date(2026, 6, 2)) and not cal.is_holiday(date(2026, 6, 3))
    # 2 June 2026 (a Tuesday, Festa della Repubblica) 10:00 Rome = 08:00 UTC
    assert cal.slot(1_780_387_200_000) == 2 * 96 + 40
    assert not Calendar(ZoneInfo("UTC")).is_holiday(date(2026, 6, 2))


def test_level_and_spread_of_a_short_history_are_plain_averages() -> None:
    table = BaselineTable(2)
    for x in ([10.0, 20.0], [14.0, 20.0], [12.0, 20.0]):
        table.update(np.array([0, 1]), 5, np.array(x), 1000)
    np.testing.assert_allclose(table.level[:, 5], [12.0, 20.0])
    assert table.n[:, 5].tolist() == [3, 3]
    assert table.spread[1, 5] == 0.0 and table.spread[0, 5] > 0.0
    assert table.n[:, 4].tolist() == [0, 0]
    assert table.first_ms.tolist() == [1000, 1000]


def test_an_outlier_barely_moves_an_established_baseline() -> None:
    table = BaselineTable(1)
    for x in [10.0, 11.0, 9.0, 10.0, 10.0, 11.0, 9.0, 10.0]:
        table.update(np.array([0]), 0, np.array([x]), 0)
    before = float(table.level[0, 0])
    table.update(np.array([0]), 0, np.array([10_000.0]), 0)
    assert abs(float(table.level[0, 0]) - before) < 1.0


def test_expectation_weights_each_slot_by_where_the_data_lies() -> None:
    table = BaselineTable(2)
    for _ in range(4):
        table.update(np.array([0, 1]), 7, np.array([100.0, np.nan]), 0)
        table.update(np.array([0, 1]), 8, np.array([200.0, 5.0]), 0)
    weights = np.array([[10.0, 0.0], [5.0, 3.0]])  # row 1 has data in slot 8 only
    exp = table.expect(np.array([0, 1]), np.array([7, 8]), weights)
    np.testing.assert_allclose(exp.level, [(10 * 100 + 5 * 200) / 15, 5.0])
    assert exp.samples.tolist() == [4, 4]  # row 1's empty slot 7 does not count against it
    assert table.n.shape == (2, N_SLOTS) and table.n.dtype == np.uint8
