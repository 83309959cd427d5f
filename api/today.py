"""Today's consumption per meter (kWh, m³ since local midnight), cached for a few seconds.

The live endpoints answer from memory; today's totals come from the store's register
deltas (one `consumption(by="meter")` query per register quantity for the whole territory),
refreshed at most every `ttl_s` and shared by every request, whatever its scope. While a
refresh runs, callers get the previous answer; the first caller waits for the first one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from ecocluster.api.timeq import local_midnight_ms
from ecocluster.core.types import CUMULATIVE_QUANTITIES
from ecocluster.ingest.stores.base import Store

__all__ = ["TodayCache", "TodayTotals"]


@dataclass(frozen=True, slots=True)
class TodayTotals:
    since_ms: int
    #: quantity → "site/meter" → consumption since local midnight
    by_meter: dict[str, dict[str, float]] = field(default_factory=dict)
    #: quantity → site → the sum of its meters (computed once per refresh)
    by_site: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def of(cls, since_ms: int, by_meter: dict[str, dict[str, float]]) -> TodayTotals:
        by_site: dict[str, dict[str, float]] = {}
        for quantity, meters in by_meter.items():
            sums = by_site.setdefault(quantity, {})
            for key, value in meters.items():
                site = key.partition("/")[0]
                sums[site] = sums.get(site, 0.0) + value
        return cls(since_ms, by_meter, by_site)

    def site_total(self, quantity: str, site: str) -> float | None:
        return self.by_site.get(quantity, {}).get(site)


class TodayCache:
    def __init__(
        self, store: Store, tz: ZoneInfo, clock: Callable[[], int], ttl_s: float = 10.0
    ) -> None:
        self.store, self.tz, self.clock, self.ttl_s = store, tz, clock, ttl_s
        self._value: TodayTotals | None = None
        self._at = -1e18
        self._lock = asyncio.Lock()

    async def get(self) -> TodayTotals:
        fresh = time.monotonic() - self._at < self.ttl_s
        if self._value is not None and (fresh or self._lock.locked()):
            return self._value
        async with self._lock:
            if self._value is None or time.monotonic() - self._at >= self.ttl_s:
                self._value = await self._load()
                self._at = time.monotonic()
        return self._value

    async def _load(self) -> TodayTotals:
        now = self.clock()
        since = local_midnight_ms(now, self.tz)
        by_meter = {}
        for quantity in sorted(CUMULATIVE_QUANTITIES):
            by_meter[quantity] = await self.store.consumption(quantity, since, now + 1, by="meter")
        return TodayTotals.of(since, by_meter)

    def invalidate(self) -> None:
        self._at = -1e18
