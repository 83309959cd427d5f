"""What every compiled rule shares: its targets, its state machine, its verdict type.

A rule type module declares a config model (a `RuleBase` subclass) and a `Kernel`
subclass whose `evaluate()` returns one `Verdict` for all targets from the hot window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Generic, TypeAlias, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from ecocluster.core.registry import Cluster
from ecocluster.core.types import FloatArray
from ecocluster.rules.config import RuleBase, ms
from ecocluster.rules.series import SeriesTable
from ecocluster.rules.state import RuleState
from ecocluster.rules.targets import Targets, build_targets
from ecocluster.rules.transitions import LEVEL_BY_SEVERITY
from ecocluster.rules.window import HotWindow

__all__ = ["CompileContext", "Kernel", "RuleCompileError", "Verdict"]

SpecT = TypeVar("SpecT", bound=RuleBase)
#: Verdict levels, int8: −1 unknown, 0 false, 1..3 true at info/warning/critical.
LevelArray: TypeAlias = npt.NDArray[np.int8]


class RuleCompileError(ValueError):
    """A rule is well-formed but cannot run here (e.g. its window exceeds the horizon);
    `field` names the offending field for the file/line message."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Verdict:
    """Per target (n,): level (−1 unknown, 0 false, 1..3 severity), value, threshold."""

    level: LevelArray
    value: FloatArray
    threshold: FloatArray


@dataclass(frozen=True, slots=True)
class CompileContext:
    cluster: Cluster
    table: SeriesTable
    window: HotWindow

    @property
    def tz(self) -> ZoneInfo:
        return self.window.tz


class Kernel(Generic[SpecT]):
    """A compiled rule: `spec`, `targets`, `state`; subclasses implement `evaluate`."""

    #: The scope used when the spec has none (absence without a quantity: per meter).
    default_scope: ClassVar[str] = "series"
    #: Needs no time to pass (no window, no `for`): evaluated as readings arrive.
    is_instant: bool = False

    def __init__(self, spec: SpecT, ctx: CompileContext) -> None:
        self.spec = spec
        self.severity_level = LEVEL_BY_SEVERITY[spec.severity]
        rows = ctx.table.select(spec.match, spec.quantity)
        self.targets: Targets = build_targets(ctx.table, rows, self.scope_of(spec))
        self.state = RuleState(self.targets.n)
        self.for_ms = ms(spec.for_)
        self.keep_firing_ms = ms(spec.keep_firing_for)
        self.prepare(ctx)

    def scope_of(self, spec: SpecT) -> str:
        return str(getattr(spec, "scope", self.default_scope))

    def prepare(self, ctx: CompileContext) -> None:
        """Check windows against the horizon, build per-target limits, create trackers."""

    def evaluate(self, window: HotWindow, now_ms: int) -> Verdict:
        raise NotImplementedError

    # -- helpers for subclasses ------------------------------------------------------------
    def check_window(self, ctx: CompileContext, field: str, window_ms: int) -> None:
        try:
            ctx.window.ring_for(window_ms)
        except ValueError:
            horizon_h = ctx.window.config.horizon_ms / 3_600_000
            raise RuleCompileError(
                field, f"window exceeds the hot window's horizon of {horizon_h:g}h"
            ) from None

    def verdict(
        self, is_true: np.ndarray, value: FloatArray, threshold: FloatArray | float
    ) -> Verdict:
        """Single-severity verdict: NaN value → unknown, else the rule's level or 0."""
        level = np.where(is_true, self.severity_level, 0).astype(np.int8)
        level[np.isnan(value)] = -1
        thr = np.broadcast_to(np.asarray(threshold, np.float64), value.shape)
        return Verdict(level, value, thr)
