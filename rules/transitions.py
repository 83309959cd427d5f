"""Rule transitions (the type and its port live in `ecocluster.core.transitions`) and the
severity level codes the kernels use."""

from __future__ import annotations

from ecocluster.core.transitions import (
    PreviousState,
    Transition,
    TransitionSink,
    TransitionState,
)
from ecocluster.core.types import Severity

__all__ = [
    "SEVERITY_BY_LEVEL",
    "PreviousState",
    "Transition",
    "TransitionSink",
    "TransitionState",
]
#: Level codes used by the kernels: 0 = condition false, 1..3 = true at this severity.
SEVERITY_BY_LEVEL: tuple[Severity | None, ...] = (
    None,
    Severity.INFO,
    Severity.WARNING,
    Severity.CRITICAL,
)
LEVEL_BY_SEVERITY = {s: i for i, s in enumerate(SEVERITY_BY_LEVEL) if s is not None}
