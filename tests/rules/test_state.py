"""The state machine, table-driven: a sequence of verdicts in, events out."""

from __future__ import annotations

import numpy as np
import pytest

from ecocluster.rules.state import FIRING, OK, PENDING, RuleState

M = 60_000


def drive(
    levels: list[int], *, for_ms: int = 0, keep_ms: int = 0, flap_count: int = 0
) -> list[str]:
    """One target, one verdict per minute; returns 'minute:event' strings."""
    state = RuleState(1)
    out = []
    for minute, level in enumerate(levels):
        ev = state.step(
            np.array([level], np.int8),
            np.array([float(level)]),
            np.array([1.0]),
            minute * M,
            for_ms=for_ms,
            keep_firing_ms=keep_ms,
            flap_count=flap_count,
            flap_window_ms=60 * M,
            flap_hold_ms=5 * M,
        )
        for name in ("pending", "inactive", "firing", "resolved"):
            if getattr(ev, name).size:
                out.append(f"{minute}:{name}")
    return out


@pytest.mark.parametrize(
    ("levels", "kwargs", "expected"),
    [
        ([0, 2, 2, 0], {}, ["1:firing", "3:resolved"]),
        ([0, 2, 2, 2, 0], {"for_ms": 2 * M}, ["1:pending", "3:firing", "4:resolved"]),
        ([2, 0, 2, 2], {"for_ms": 2 * M}, ["0:pending", "1:inactive", "2:pending"]),
        # unknown (-1) holds: pending keeps counting from its start
        ([2, -1, -1, 2], {"for_ms": 2 * M}, ["0:pending", "3:firing"]),
        ([2, 0, 0, 0, 0], {"keep_ms": 2 * M}, ["0:firing", "3:resolved"]),
        ([2, 0, 2, 0, 0, 0], {"keep_ms": 2 * M}, ["0:firing", "5:resolved"]),
        # severity change while firing re-sends `firing`
        ([2, 3, 3, 2, 0], {}, ["0:firing", "1:firing", "3:firing", "4:resolved"]),
    ],
)
def test_transitions(levels: list[int], kwargs: dict[str, int], expected: list[str]) -> None:
    assert drive(levels, **kwargs) == expected


def test_flapping_alert_is_held_instead_of_refiring() -> None:
    plain = drive([2, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0, 0, 0])
    assert plain.count("0:firing") + sum(e.endswith("firing") for e in plain) > 4
    held = drive([2, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0, 0, 0], flap_count=3)
    # fires 3 times, then is flapping: held through the toggles, resolved after 5 quiet min
    assert held == ["0:firing", "1:resolved", "2:firing", "3:resolved", "4:firing", "12:resolved"]


def test_export_and_restore_by_target_key() -> None:
    state = RuleState(3)
    level = np.array([0, 2, 3], np.int8)
    state.step(
        level,
        np.zeros(3),
        np.zeros(3),
        0,
        for_ms=5 * M,
        keep_firing_ms=0,
        flap_count=0,
        flap_window_ms=M,
        flap_hold_ms=M,
    )
    saved = state.export(("a", "b", "c"))
    assert set(saved) == {"b", "c"}
    again = RuleState(2)
    assert again.restore(("c", "x"), saved) == 1
    assert again.state.tolist() == [PENDING, OK]
    assert again.level.tolist() == [3, 0]
    assert FIRING not in again.state
