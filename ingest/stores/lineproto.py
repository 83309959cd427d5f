"""InfluxDB line protocol built from a batch's columns, not from per-point objects.

Each series' `measurement,meter=…,org=…,site=… ` prefix is formatted once; values, deltas
and timestamps are turned to text by numpy in one call each and joined with object-array
string concatenation (a C loop). Tags are in key order, as InfluxDB prefers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from ecocluster.core.types import ReadingBatch, SeriesKey

__all__ = ["encode_lines", "escape_tag", "series_prefix"]

ObjArray = npt.NDArray[np.object_]
_TAG_ESCAPES: Final = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": ""})
_MEASUREMENT_ESCAPES: Final = str.maketrans({",": r"\,", " ": r"\ ", "\n": ""})


def escape_tag(text: str) -> str:
    """Ids are validated upstream; escaping anyway keeps a bad id from breaking a batch."""
    return text.translate(_TAG_ESCAPES)


def series_prefix(key: SeriesKey) -> str:
    return (
        f"{key.quantity.translate(_MEASUREMENT_ESCAPES)},meter={escape_tag(key.meter)},"
        f"org={escape_tag(key.org)},site={escape_tag(key.site)} value="
    )


def _prefixes(series: Sequence[SeriesKey], used_idx: npt.NDArray[np.int64]) -> ObjArray:
    table = np.empty(len(series), object)
    for i in np.unique(used_idx).tolist():
        table[i] = series_prefix(series[i])
    return table


def _floats_as_text(values: npt.NDArray[np.float64]) -> ObjArray:
    # numpy's str() of a float64 is the shortest round-trip repr ("5.0", "1e+20"), which
    # InfluxDB parses as a float field.
    return values.astype(str).astype(object)


def encode_lines(batch: ReadingBatch) -> list[str]:
    """One line per reading; `delta` is written only where it is not NaN."""
    if len(batch) == 0:
        return []
    prefixes = _prefixes(batch.series, batch.series_idx)[batch.series_idx]
    body = prefixes + _floats_as_text(batch.values)
    has_delta = ~np.isnan(batch.deltas)
    if has_delta.any():
        body[has_delta] = body[has_delta] + (",delta=" + _floats_as_text(batch.deltas[has_delta]))
    stamps = " " + batch.ts_ms.astype(str).astype(object)
    lines: list[str] = (body + stamps).tolist()
    return lines
