"""Time for the alert service: the wall clock, or a hand-driven one for timeline tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "FunctionClock", "ManualClock", "SystemClock", "as_clock"]


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """Usage: `clock = ManualClock(start_ms); clock.advance(30_000)`."""

    def __init__(self, start_ms: int) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> int:
        self._now += ms
        return self._now

    def set(self, ms: int) -> None:
        self._now = ms


class FunctionClock:
    """A `Clock` over a `() -> epoch ms` function (the node's shared clock, a simulation's)."""

    def __init__(self, fn: Callable[[], int]) -> None:
        self._fn = fn

    def now_ms(self) -> int:
        return int(self._fn())


def as_clock(clock: Clock | Callable[[], int] | None) -> Clock:
    if clock is None:
        return SystemClock()
    if hasattr(clock, "now_ms"):
        return clock
    return FunctionClock(clock)
