"""What a rule evaluates: its series rows and, for aggregate scopes, how rows group.

A target is one alert subject: a series (scope `series`), a meter, a site, an
organisation or the whole territory. `reduce` turns per-row numbers into per-target ones
with `np.bincount` / `np.fmax.at`, so a site's total power is one vectorised step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ecocluster.core.types import FloatArray, IntArray
from ecocluster.rules.series import SeriesTable

__all__ = ["Targets", "build_targets"]

_SCOPE_LABELS = {
    "series": ("org", "site", "meter", "category", "quantity"),
    "meter": ("org", "site", "meter", "category"),
    "site": ("org", "site", "category", "quantity"),
    "org": ("org", "quantity"),
    "territory": ("quantity",),
}


@dataclass(frozen=True, slots=True)
class Targets:
    """`rows` (n_rows,) engine rows; `group_idx` (n_rows,) their target in `[0, n)`."""

    scope: str
    rows: IntArray
    group_idx: IntArray
    labels: tuple[dict[str, str], ...]
    keys: tuple[str, ...]

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def is_identity(self) -> bool:
        return self.scope == "series"

    def reduce(self, values: FloatArray, how: str) -> FloatArray:
        """Per-row `values` (n_rows,) → per-target (n,); NaN rows are skipped, an all-NaN
        target is NaN."""
        if self.is_identity:
            return values
        is_known = ~np.isnan(values)
        idx = self.group_idx[is_known]
        known = values[is_known]
        count = np.bincount(idx, minlength=self.n)
        total: FloatArray
        if how in ("sum", "mean"):
            total = np.bincount(idx, weights=known, minlength=self.n).astype(np.float64)
            if how == "mean":
                total = total / np.maximum(count, 1)
        elif how == "max":
            total = np.full(self.n, -np.inf)
            np.maximum.at(total, idx, known)
        elif how == "min":
            total = np.full(self.n, np.inf)
            np.minimum.at(total, idx, known)
        else:
            raise ValueError(f"unknown aggregate {how!r}")
        return np.where(count > 0, total, np.nan)


def build_targets(table: SeriesTable, rows: IntArray, scope: str) -> Targets:
    """Group `rows` by the labels of `scope`; targets in order of first appearance."""
    names = _SCOPE_LABELS[scope]
    if scope == "series":
        labels = tuple({n: table.labels[r].get(n, "") for n in names} for r in rows)
        keys = tuple("/".join(table.keys[r][1:]) for r in rows)
        return Targets(scope, rows, np.arange(rows.shape[0]), labels, keys)
    group_of: dict[tuple[str, ...], int] = {}
    group_idx = np.empty(rows.shape[0], np.int64)
    out_labels: list[dict[str, str]] = []
    for i, row in enumerate(rows.tolist()):
        row_labels = table.labels[row]
        key = tuple(row_labels.get(n, "") for n in names)
        if key not in group_of:
            group_of[key] = len(out_labels)
            out_labels.append(dict(zip(names, key, strict=True)))
        group_idx[i] = group_of[key]
    keys = tuple(f"{scope}:" + "/".join(k) for k in group_of)
    return Targets(scope, rows, group_idx, tuple(out_labels), keys)
