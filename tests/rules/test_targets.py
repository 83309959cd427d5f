from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from ecocluster.core.registry import Cluster
from ecocluster.rules.series import SeriesTable
from ecocluster.rules.targets import build_targets


@pytest.fixture
def table(make_cluster: Callable[..., Cluster]) -> SeriesTable:
    t = SeriesTable()
    t.sync(make_cluster([]))
    return t


def test_rows_are_quantity_major_and_selectable_by_labels(table: SeriesTable) -> None:
    assert ["/".join(k[1:]) for k in table.keys] == [
        "s1/m1/power_w",
        "s2/m2/power_w",
        "s3/m3/power_w",
        "s1/m1/flow_lpm",
        "s3/m3/flow_lpm",
    ]
    assert table.select({}, "power_w").tolist() == [0, 1, 2]
    assert table.select({"org": "o1"}, None).tolist() == [0, 1, 3]
    assert table.select({"category": "hotel"}, "flow_lpm").tolist() == [3]
    assert table.select({"site": "nowhere"}, None).tolist() == []
    assert table.rows_of_meter("s3", "m3").tolist() == [2, 4]


@pytest.mark.parametrize(
    ("scope", "how", "keys", "expected"),
    [
        ("series", "sum", ["s1/m1/power_w", "s2/m2/power_w", "s3/m3/power_w"], [1.0, 2.0, np.nan]),
        (
            "site",
            "sum",
            [
                "site:o1/s1/hotel/power_w",
                "site:o1/s2/school/power_w",
                "site:o2/s3/town_hall/power_w",
            ],
            [1.0, 2.0, np.nan],
        ),
        ("org", "sum", ["org:o1/power_w", "org:o2/power_w"], [3.0, np.nan]),
        ("org", "mean", ["org:o1/power_w", "org:o2/power_w"], [1.5, np.nan]),
        ("territory", "max", ["territory:power_w"], [2.0]),
        ("territory", "min", ["territory:power_w"], [1.0]),
    ],
)
def test_reduce_per_scope_skips_missing_values(
    table: SeriesTable, scope: str, how: str, keys: list[str], expected: list[float]
) -> None:
    targets = build_targets(table, table.select({}, "power_w"), scope)
    assert list(targets.keys) == keys
    np.testing.assert_array_equal(targets.reduce(np.array([1.0, 2.0, np.nan]), how), expected)
