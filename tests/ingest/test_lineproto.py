from __future__ import annotations

import numpy as np

from ecocluster.core.types import ReadingBatch, SeriesKey
from ecocluster.ingest.stores.lineproto import encode_lines


def test_lines_from_columns() -> None:
    keys = (SeriesKey("o1", "s1", "em-01", "energy_kwh"), SeriesKey("o 1", "s,1", "m=1", "power_w"))
    b = ReadingBatch(
        keys,
        np.array([0, 1, 0]),
        np.array([1, 2, 3]),
        np.array([10.5, 5.0, 1e20]),
        np.array([0.25, np.nan, np.nan]),
    )
    assert encode_lines(b) == [
        "energy_kwh,meter=em-01,org=o1,site=s1 value=10.5,delta=0.25 1",
        "power_w,meter=m\\=1,org=o\\ 1,site=s\\,1 value=5.0 2",
        "energy_kwh,meter=em-01,org=o1,site=s1 value=1e+20 3",
    ]
