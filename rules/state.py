"""The alert state machine of one rule over all its targets, as arrays.

`step()` takes the kernel's verdict per target (`level`: −1 unknown, 0 false, 1..3 true
at info/warning/critical) and moves every target at once; it returns the indices of the
targets that changed, per event kind. Unknown (no data) holds the state as it is: after a
restart, a `for` that was pending keeps counting from its original start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ecocluster.core.types import BoolArray, FloatArray, IntArray

__all__ = ["FIRING", "OK", "PENDING", "Events", "RuleState"]

OK, PENDING, FIRING = 0, 1, 2
_STATE_NAMES = ("ok", "pending", "firing")


@dataclass(slots=True)
class Events:
    """Target indices per event; `previous` (n,) is the state code before `firing`."""

    pending: IntArray
    inactive: IntArray
    firing: IntArray
    firing_previous: IntArray
    resolved: IntArray

    def __len__(self) -> int:
        return int(self.pending.size + self.inactive.size + self.firing.size + self.resolved.size)


_EMPTY = np.empty(0, np.int64)
_NO_EVENTS = Events(_EMPTY, _EMPTY, _EMPTY, _EMPTY, _EMPTY)


@dataclass(slots=True)
class RuleState:
    """Per target: state, severity level, episode start, last time true, recent firings."""

    n: int
    state: IntArray = field(init=False)
    level: IntArray = field(init=False)
    since_ms: IntArray = field(init=False)
    last_true_ms: IntArray = field(init=False)
    fire_times_ms: IntArray = field(init=False)
    fire_count: IntArray = field(init=False)
    is_flapping: BoolArray = field(init=False)
    value: FloatArray = field(init=False)
    threshold: FloatArray = field(init=False)

    def __post_init__(self) -> None:
        n = self.n
        self.state = np.zeros(n, np.int8)
        self.level = np.zeros(n, np.int8)
        self.since_ms = np.zeros(n, np.int64)
        self.last_true_ms = np.zeros(n, np.int64)
        self.fire_times_ms = np.zeros((n, 0), np.int64)
        self.fire_count = np.zeros(n, np.int64)
        self.is_flapping = np.zeros(n, np.bool_)
        self.value = np.full(n, np.nan)
        self.threshold = np.full(n, np.nan)

    @property
    def is_firing(self) -> BoolArray:
        return self.state == FIRING

    def step(
        self,
        level: npt.NDArray[np.int8],
        value: FloatArray,
        threshold: FloatArray,
        now_ms: int,
        *,
        for_ms: int,
        keep_firing_ms: int,
        flap_count: int,
        flap_window_ms: int,
        flap_hold_ms: int,
    ) -> Events:
        """Advance every target to `now_ms`; `level`, `value`, `threshold` are (n,)."""
        state = self.state
        if self.n == 0 or (level.max() <= 0 and state.max() == OK):
            return _NO_EVENTS  # all quiet: the common case, nothing to move
        is_true = level > 0
        is_false = level == 0
        self.value = np.where(level >= 0, value, self.value)
        self.threshold = np.where(level >= 0, threshold, self.threshold)

        is_start = (state == OK) & is_true
        self.since_ms[is_start] = now_ms
        self.last_true_ms[is_true] = now_ms
        is_waiting = (state == PENDING) | is_start
        to_fire = is_waiting & is_true & (now_ms - self.since_ms >= for_ms)
        to_pending = is_start & ~to_fire
        cancel = (state == PENDING) & is_false
        relevel = (state == FIRING) & is_true & (level != self.level)
        hold_ms = np.where(self.is_flapping, max(keep_firing_ms, flap_hold_ms), keep_firing_ms)
        resolve = (state == FIRING) & is_false & (now_ms - self.last_true_ms > hold_ms)

        fire_idx = np.flatnonzero(to_fire | relevel)
        previous = state[fire_idx].copy()
        if flap_count > 0 and to_fire.any():
            self._count_fire(np.flatnonzero(to_fire), now_ms, flap_count, flap_window_ms)

        # Waiting or firing targets follow the current severity.
        self.level = np.where(is_true & (state != OK) | is_start, level, self.level).astype(np.int8)
        state = state.copy()
        state[to_pending] = PENDING
        state[to_fire] = FIRING
        state[cancel] = OK
        state[resolve] = OK
        self.is_flapping[resolve] = False
        self.state = state
        return Events(
            pending=np.flatnonzero(to_pending),
            inactive=np.flatnonzero(cancel),
            firing=fire_idx,
            firing_previous=previous,
            resolved=np.flatnonzero(resolve),
        )

    def _count_fire(self, fired: IntArray, now_ms: int, k: int, window_ms: int) -> None:
        """Remember the last `k` firing times; `k` of them within the window = flapping."""
        if self.fire_times_ms.shape[1] != k:
            self.fire_times_ms = np.zeros((self.n, k), np.int64)
            self.fire_count[:] = 0
        self.fire_times_ms[fired, self.fire_count[fired] % k] = now_ms
        self.fire_count[fired] += 1
        oldest = self.fire_times_ms[fired].min(axis=1)
        is_often = (self.fire_count[fired] >= k) & (now_ms - oldest <= window_ms)
        self.is_flapping[fired] |= is_often

    # -- persistence -----------------------------------------------------------------------
    def export(self, keys: tuple[str, ...]) -> dict[str, list[Any]]:
        """Pending and firing targets, by target key (JSON-ready)."""
        out: dict[str, list[Any]] = {}
        for i in np.flatnonzero(self.state != OK).tolist():
            out[keys[i]] = [
                _STATE_NAMES[int(self.state[i])],
                int(self.level[i]),
                int(self.since_ms[i]),
                int(self.last_true_ms[i]),
                bool(self.is_flapping[i]),
            ]
        return out

    def restore(self, keys: tuple[str, ...], saved: dict[str, list[Any]]) -> int:
        """Load `export()` output onto the targets that still exist; return how many."""
        index = {k: i for i, k in enumerate(keys)}
        loaded = 0
        for key, row in saved.items():
            i = index.get(key)
            if i is None:
                continue
            name, level, since, last_true, flapping = row
            self.state[i] = _STATE_NAMES.index(name)
            self.level[i] = level
            self.since_ms[i] = since
            self.last_true_ms[i] = last_true
            self.is_flapping[i] = flapping
            loaded += 1
        return loaded
