"""The engine's series table: row order of every array, label codes for fast matching.

Rows are appended, never reordered, so a reload that adds meters keeps every existing
row (and the state of unchanged rules) where it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ecocluster.core.registry import Cluster
from ecocluster.core.types import QUANTITIES, BoolArray, IntArray, SeriesKey

__all__ = ["SCOPE_LABELS", "SeriesTable"]

#: Labels a rule may match series on.
SCOPE_LABELS = ("org", "site", "meter", "category", "quantity")


class SeriesTable:
    """Series keys in row order plus, per label, an int code per row (−1 = unknown)."""

    def __init__(self) -> None:
        self.keys: list[SeriesKey] = []
        self.index: dict[SeriesKey, int] = {}
        self.labels: list[dict[str, str]] = []
        self._codes: dict[str, dict[str, int]] = {name: {} for name in SCOPE_LABELS}
        self._code_arrays: dict[str, IntArray] = {
            name: np.empty(0, np.int64) for name in SCOPE_LABELS
        }
        self._meter_rows: dict[tuple[str, str], list[int]] = {}
        self._by_site_meter_quantity: dict[tuple[str, str, str], int] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def sync(self, cluster: Cluster) -> int:
        """Append the cluster's new series and refresh every row's labels; return the length.

        The first sync orders rows by quantity, then registry order: a rule on one
        quantity then reads one contiguous block of every array (copies, not gathers).
        """
        new = [k for k in cluster.series if k not in self.index]
        if not self.keys:
            rank = {q: i for i, q in enumerate(QUANTITIES)}
            new.sort(key=lambda k: rank.get(k.quantity, len(rank)))
        self._append(new, cluster)
        for row, key in enumerate(self.keys):
            self.labels[row] = _labels(cluster, key)
        self._rebuild_codes()
        return len(self.keys)

    def add_unknown(self, keys: Iterable[SeriesKey], cluster: Cluster) -> None:
        self._append([k for k in keys if k not in self.index], cluster)
        self._rebuild_codes()

    def _append(self, keys: Sequence[SeriesKey], cluster: Cluster) -> None:
        for key in keys:
            row = len(self.keys)
            self.keys.append(key)
            self.index[key] = row
            self.labels.append(_labels(cluster, key))
            self._meter_rows.setdefault((key.site, key.meter), []).append(row)
            self._by_site_meter_quantity[(key.site, key.meter, key.quantity)] = row

    def _rebuild_codes(self) -> None:
        for name in SCOPE_LABELS:
            codes = self._codes[name]
            arr = np.empty(len(self.keys), np.int64)
            for row, labels in enumerate(self.labels):
                arr[row] = codes.setdefault(labels.get(name, ""), len(codes))
            self._code_arrays[name] = arr

    def rows_of_meter(self, site: str, meter: str) -> IntArray:
        return np.asarray(self._meter_rows.get((site, meter), []), np.int64)

    def row_of(self, site: str, meter: str, quantity: str) -> int | None:
        return self._by_site_meter_quantity.get((site, meter, quantity))

    def codes(self, label: str) -> IntArray:
        """Per-row code of `label` (n_series,); equal codes = equal label values."""
        return self._code_arrays[label]

    def select(self, match: Mapping[str, str], quantity: str | None) -> IntArray:
        """Rows whose labels equal every matcher (and the quantity, if given), ascending."""
        keep: BoolArray = np.ones(len(self.keys), np.bool_)
        wanted = dict(match)
        if quantity is not None:
            wanted["quantity"] = quantity
        for label, value in wanted.items():
            code = self._codes[label].get(value)
            if code is None:
                return np.empty(0, np.int64)
            keep &= self._code_arrays[label] == code
        return np.flatnonzero(keep)


def _labels(cluster: Cluster, key: SeriesKey) -> dict[str, str]:
    site = cluster.site_by_id.get(key.site)
    labels = {"org": key.org, "site": key.site, "meter": key.meter, "quantity": key.quantity}
    if site is not None:
        labels["category"] = site.category
    return labels
