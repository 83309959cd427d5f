from __future__ import annotations

from zoneinfo import ZoneInfo

import numpy as np

from ecocluster.rules.baseline import BaselineTable, hour_of_week


def test_hour_of_week_is_local_monday_based() -> None:
    # 2024-11-25 is a Monday; 00:30 in Rome is 23:30 UTC on Sunday the 24th
    assert hour_of_week(1_732_491_000_000, ZoneInfo("Europe/Rome")) == 0
    assert hour_of_week(1_732_491_000_000, ZoneInfo("UTC")) == 6 * 24 + 23


def test_mean_and_spread_of_a_short_history_are_plain_averages() -> None:
    table = BaselineTable(2)
    for x in ([10.0, 20.0], [14.0, 20.0], [12.0, 20.0]):
        table.update(np.array([0, 1]), 5, np.array(x))
    np.testing.assert_allclose(table.mean[:, 5], [12.0, 20.0])
    assert table.n[:, 5].tolist() == [3, 3]
    assert table.spread[1, 5] == 0.0 and table.spread[0, 5] > 0.0
    assert table.n[:, 4].tolist() == [0, 0]


def test_an_outlier_barely_moves_an_established_baseline() -> None:
    table = BaselineTable(1)
    for x in [10.0, 11.0, 9.0, 10.0, 10.0, 11.0, 9.0, 10.0]:
        table.update(np.array([0]), 0, np.array([x]))
    before = float(table.mean[0, 0])
    table.update(np.array([0]), 0, np.array([10_000.0]))
    assert abs(float(table.mean[0, 0]) - before) < 1.0


def test_zscore_uses_the_floored_spread_and_ignores_nan() -> None:
    table = BaselineTable(2)
    for _ in range(4):
        table.update(np.array([0, 1]), 0, np.array([100.0, np.nan]))
    z, expected, n = table.zscore(
        np.array([0, 1]), 0, np.array([120.0, 1.0]), rel_floor=0.05, abs_floor=0.0
    )
    assert z[0] == 4.0  # spread 0 → floored at 5 % of 100
    assert expected[0] == 100.0 and n.tolist() == [4, 0]
