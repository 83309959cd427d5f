"""The live view: the newest value of every series, read without touching the store.

In a node the rule engine's hot window already holds it (`HotWindowLive`: a read-only view
of `RuleEngine.table` and `RuleEngine.window`, nothing copied). When the API runs alone
(`--only api`), `LatestTable` keeps the same columns, seeded from the store's `latest()`
and fed by an MQTT subscription (`mqtt_live.py`). Both answer through `LiveView`, and
`SeriesIndex` turns an organisation, a site or a meter into row arrays once per table shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ecocluster.core.types import BoolArray, FloatArray, IntArray, ReadingBatch, SeriesKey

__all__ = ["HotWindowLive", "LatestTable", "LiveColumns", "LiveView", "SeriesIndex"]

_NEVER = -1


@dataclass(frozen=True, slots=True)
class LiveColumns:
    """The newest reading per row: `ts_ms` (−1 = never seen), `values`, `offline`."""

    keys: Sequence[SeriesKey]
    ts_ms: IntArray
    values: FloatArray
    offline: BoolArray


class LiveView(Protocol):
    def columns(self) -> LiveColumns:
        """A consistent read of every row (arrays may be the live ones: read, never write)."""

    def now_ms(self) -> int:
        """Event time of the newest reading seen (−1 before any)."""


class HotWindowLive:
    """The rule engine's hot window as a `LiveView` (the node's default).

    `engine` is an `ecocluster.rules.engine.RuleEngine`; its arrays are re-read on every
    call because growing the window replaces them.
    """

    def __init__(self, engine: object) -> None:
        self.engine = engine

    def columns(self) -> LiveColumns:
        window = self.engine.window  # type: ignore[attr-defined]
        keys = self.engine.table.keys  # type: ignore[attr-defined]
        n = min(len(keys), window.last_ts.shape[0])
        return LiveColumns(keys, window.last_ts[:n], window.last_value[:n], window.is_offline[:n])

    def now_ms(self) -> int:
        return int(self.engine.window.now_ms)  # type: ignore[attr-defined]


class LatestTable:
    """Newest value per series, appended as series appear (the `--only api` live view)."""

    def __init__(self, keys: Sequence[SeriesKey] = ()) -> None:
        self.keys: list[SeriesKey] = []
        self.index: dict[SeriesKey, int] = {}
        self.last_ts = np.empty(0, np.int64)
        self.last_value = np.empty(0, np.float64)
        self.is_offline = np.empty(0, np.bool_)
        self._now_ms = _NEVER
        self._add(keys)

    def _add(self, keys: Sequence[SeriesKey]) -> None:
        new = [SeriesKey(*k) for k in keys if k not in self.index]
        if not new:
            return
        for key in new:
            self.index[key] = len(self.keys)
            self.keys.append(key)
        n = len(new)
        self.last_ts = np.concatenate([self.last_ts, np.full(n, _NEVER, np.int64)])
        self.last_value = np.concatenate([self.last_value, np.full(n, np.nan)])
        self.is_offline = np.concatenate([self.is_offline, np.zeros(n, np.bool_)])

    def update(self, batch: ReadingBatch) -> None:
        """Keep the newest of each series (a late reading never replaces a newer one)."""
        if len(batch) == 0:
            return
        self._add(batch.series)
        table_rows = np.fromiter(
            (self.index[SeriesKey(*k)] for k in batch.series), np.int64, len(batch.series)
        )
        rows = table_rows[batch.series_idx]
        keep = np.isfinite(batch.values)
        rows, ts, values = rows[keep], batch.ts_ms[keep], batch.values[keep]
        if rows.shape[0] == 0:
            return
        np.maximum.at(self.last_ts, rows, ts)
        is_newest = ts == self.last_ts[rows]
        self.last_value[rows[is_newest]] = values[is_newest]
        self.is_offline[rows] = False
        self._now_ms = max(self._now_ms, int(ts.max()))

    def set_offline(self, site: str, meter: str, offline: bool) -> None:
        for key, row in self.index.items():
            if key.site == site and key.meter == meter:
                self.is_offline[row] = offline

    def columns(self) -> LiveColumns:
        return LiveColumns(self.keys, self.last_ts, self.last_value, self.is_offline)

    def now_ms(self) -> int:
        return self._now_ms


class SeriesIndex:
    """Row arrays per organisation, site, meter and quantity of a series table.

    Rebuilt only when the table grows (rows are appended, never reordered)."""

    def __init__(self) -> None:
        self._n = -1
        self._keys: Sequence[SeriesKey] | None = None
        self.by_org: dict[str, IntArray] = {}
        self.by_site: dict[str, IntArray] = {}
        self.by_quantity: dict[str, IntArray] = {}
        self.org_code: IntArray = np.empty(0, np.int64)
        self.site_code: IntArray = np.empty(0, np.int64)
        self.orgs: list[str] = []
        self.sites: list[str] = []
        self.site_pos: dict[str, int] = {}

    def refresh(self, keys: Sequence[SeriesKey]) -> None:
        if keys is self._keys and len(keys) == self._n:
            return
        self._keys, self._n = keys, len(keys)
        orgs: dict[str, list[int]] = {}
        sites: dict[str, list[int]] = {}
        quantities: dict[str, list[int]] = {}
        for row, key in enumerate(keys):
            orgs.setdefault(key.org, []).append(row)
            sites.setdefault(key.site, []).append(row)
            quantities.setdefault(key.quantity, []).append(row)
        self.by_org = {k: np.asarray(v, np.int64) for k, v in orgs.items()}
        self.by_site = {k: np.asarray(v, np.int64) for k, v in sites.items()}
        self.by_quantity = {k: np.asarray(v, np.int64) for k, v in quantities.items()}
        self.orgs, self.sites = list(orgs), list(sites)
        org_pos = {o: i for i, o in enumerate(self.orgs)}
        site_pos = self.site_pos = {s: i for i, s in enumerate(self.sites)}
        self.org_code = np.fromiter((org_pos[k.org] for k in keys), np.int64, len(keys))
        self.site_code = np.fromiter((site_pos[k.site] for k in keys), np.int64, len(keys))

    def within(self, rows: IntArray, others: IntArray) -> IntArray:
        """The rows of `others` that are also in `rows` (both ascending), by a mask: O(n),
        unlike `np.intersect1d`'s sort or hash."""
        if rows.shape[0] == self._n:
            return others
        mask = np.zeros(self._n, np.bool_)
        mask[rows] = True
        return others[mask[others]]

    def rows(
        self,
        *,
        orgs: frozenset[str] | None,
        org: str | None = None,
        site: str | None = None,
        quantity: str | None = None,
    ) -> IntArray:
        """Rows inside `orgs` (None = all) and the optional filters, ascending."""
        if site is not None:
            rows = self.by_site.get(site, np.empty(0, np.int64))
        elif org is not None:
            rows = self.by_org.get(org, np.empty(0, np.int64))
        elif orgs is not None:
            parts = [self.by_org[o] for o in orgs if o in self.by_org]
            rows = np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)
        else:
            rows = np.arange(self._n, dtype=np.int64)
        if quantity is not None:
            rows = self.within(rows, self.by_quantity.get(quantity, np.empty(0, np.int64)))
        if orgs is not None and (site is not None or org is not None) and rows.shape[0]:
            codes = [i for i, o in enumerate(self.orgs) if o in orgs]
            rows = rows[np.isin(self.org_code[rows], codes)]
        return rows
