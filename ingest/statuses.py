"""Device statuses as state changes: a status that repeats the device's known state (a
QoS 1 redelivery, the retained copy replayed at every reconnect, a device re-announcing
`online`) is not written again, so the status history holds transitions only and a chatty
or reconnecting device adds no rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ecocluster.core.types import DeviceStatus

__all__ = ["StatusLatch"]


class StatusLatch:
    """Usage: `latch.seed(await store.device_statuses())`, then
    `await store.write_statuses(latch.changes(statuses))`."""

    def __init__(self, max_devices: int = 1_000_000) -> None:
        self._state: dict[tuple[str, str], tuple[int, bool]] = {}
        self.max_devices = max_devices
        self.repeats = 0

    def seed(self, known: Iterable[DeviceStatus]) -> None:
        for s in known:
            self._remember(s)

    def changes(self, statuses: Sequence[DeviceStatus]) -> list[DeviceStatus]:
        """The statuses that change their device's state, in time order; remembers them."""
        out = []
        for s in sorted(statuses, key=lambda s: s.ts_ms):
            known = self._state.get((s.site, s.meter))
            if known is not None and (known[1] == s.online or s.ts_ms < known[0]):
                self.repeats += 1
                continue
            self._remember(s)
            out.append(s)
        return out

    def forget(self, statuses: Iterable[DeviceStatus]) -> None:
        """These were not stored after all (the store refused them): their next copy counts."""
        for s in statuses:
            self._state.pop((s.site, s.meter), None)

    def _remember(self, s: DeviceStatus) -> None:
        if len(self._state) >= self.max_devices and (s.site, s.meter) not in self._state:
            self._state.clear()  # bounded: forgetting only costs a repeated row
        self._state[(s.site, s.meter)] = (s.ts_ms, s.online)
