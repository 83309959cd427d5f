"""The rule config shared by every rule type: common fields, schedules, flapping, scopes.

Declared models are strict (`extra="forbid"`, frozen). `RuleBase` extends the kernel's
`RuleSpec` (the fields every rule has, declared once there because the registry validates
them while loading the cluster file) with the engine's own; each rule type subclasses it
in its own module under `rules/types/`; `rules/catalog.py` joins them into a
discriminated union and maps validation errors onto the cluster file's lines.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ecocluster.core.cluster import RULE_MATCH_LABELS, RuleSpec
from ecocluster.core.durations import Duration

__all__ = [
    "RULE_MATCH_LABELS",
    "ActiveWindow",
    "Clock",
    "FlapSpec",
    "RuleBase",
    "ScopeName",
    "ScopedRule",
    "is_active_at",
    "ms",
]

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_DAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ScopeName = Literal["series", "meter", "site", "org", "territory"]


def ms(value: timedelta | None) -> int:
    """A duration in integer milliseconds (None → 0)."""
    return 0 if value is None else int(value.total_seconds() * 1000)


def _clock(value: Any) -> Any:
    # YAML 1.1 reads an unquoted 08:00 as the base-60 integer 480: minutes of the day.
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= 24 * 60:
            raise ValueError(f"time of day out of range: {value}")
        return time(23, 59, 59, 999999) if value == 24 * 60 else time(value // 60, value % 60)
    if isinstance(value, str):
        text = value.strip()
        if text in ("24:00", "24:00:00"):
            return time(23, 59, 59, 999999)
        try:
            return time.fromisoformat(text)
        except ValueError:
            raise ValueError(f"invalid time of day {value!r}: use HH:MM, e.g. '22:30'") from None
    return value


Clock = Annotated[time, BeforeValidator(_clock)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ActiveWindow(_Strict):
    """When a rule is evaluated: weekdays and a local time range (may cross midnight)."""

    days: list[Weekday] = Field(default_factory=lambda: list(_DAYS))
    start: Clock = Field(default=time(0, 0), alias="from")
    end: Clock = Field(default=time(23, 59, 59, 999999), alias="to")

    def contains(self, local: datetime) -> bool:
        t = local.time()
        day = _DAYS[local.weekday()]
        if self.start <= self.end:
            return day in self.days and self.start <= t < self.end
        if t >= self.start:
            return day in self.days
        previous = _DAYS[(local.weekday() - 1) % 7]
        return previous in self.days and t < self.end


def is_active_at(windows: list[ActiveWindow] | None, now_ms: int, tz: ZoneInfo) -> bool:
    if not windows:
        return True
    local = datetime.fromtimestamp(now_ms / 1000, tz)
    return any(w.contains(local) for w in windows)


class FlapSpec(_Strict):
    """An alert that fires `count` times within `window` is flapping: it is then held
    firing until its condition has been false for `hold` (instead of resolving and
    re-firing). `count: 0` turns flapping detection off."""

    count: int = Field(default=3, ge=0)
    window: Duration = timedelta(hours=1)
    hold: Duration = timedelta(minutes=30)


class RuleBase(RuleSpec):
    """Fields every rule type has: `RuleSpec`'s (name, type, quantity, severity, match,
    for, description) and the engine's; a field no rule type knows is an error."""

    model_config = ConfigDict(extra="forbid")

    #: How long a firing alert stays firing after its condition went away.
    keep_firing_for: Duration = timedelta(0)
    #: When the rule is evaluated (territory time zone); outside, its alerts resolve.
    active: list[ActiveWindow] | None = None
    flapping: FlapSpec = FlapSpec()


class ScopedRule(RuleBase):
    """A rule that may run over a sum/mean/min/max of a site, an organisation or the
    territory instead of each series (`scope`, `aggregate`)."""

    scope: ScopeName = "series"
    aggregate: Literal["sum", "mean", "min", "max"] = "sum"

    @model_validator(mode="after")
    def _aggregate_needs_quantity(self) -> ScopedRule:
        if self.scope != "series" and self.quantity is None:
            raise ValueError(f"scope {self.scope!r} needs a quantity (sums must add like units)")
        return self
