"""The cluster file's alerting sections: contacts, routes, escalations, schedules, time
intervals and inhibition rules (pydantic, strict, frozen).

These keep the file's shape, Alertmanager's where one exists (`routes` is its routing tree,
`time_intervals` its named intervals, `inhibit_rules` its inhibition rules); the alert
service (`ecocluster.alerts`) resolves them into the fast structures it evaluates.
Cross-references (a route's contacts, schedules and time intervals) are checked in
`registry.py`, where every section is known.

Recipients (`notify:` of routes and escalation steps) name a contact id, a schedule name or a
role; `contact:x`, `schedule:x`, `role:x` say which explicitly when a name is ambiguous. A
role means the contacts with that role in the alert's organisation, or, when it has none,
every contact with that role.

Matchers are Alertmanager's strings: `label=value`, `label!=value`, `label=~regex`,
`label!~regex` (regexes are anchored, as in Alertmanager).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from ecocluster.core.durations import Duration
from ecocluster.core.schema import Strict, TimeZoneName, unique
from ecocluster.core.types import ID_PATTERN, MATCH_LABELS, Role

__all__ = [
    "ROLES",
    "Contact",
    "Escalation",
    "EscalationStep",
    "InhibitRule",
    "Matcher",
    "Override",
    "Recipient",
    "Route",
    "Schedule",
    "TimeInterval",
    "TimeIntervalSpec",
    "TimeRange",
    "parse_matcher",
    "parse_recipient",
]

Id = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
ROLES: tuple[str, ...] = Role.__args__  # type: ignore[attr-defined]
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)


class _Strict(Strict):
    model_config = ConfigDict(populate_by_name=True)


# -- matchers -------------------------------------------------------------------------------
_MATCHER_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label condition. `matches(labels)`: a missing label counts as the empty string
    (Alertmanager's rule, so `site!=x` matches an alert without a site)."""

    label: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    def matches(self, labels: dict[str, str] | Any) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return bool(actual == self.value)
        if self.op == "!=":
            return bool(actual != self.value)
        hit = _compiled(self.value).fullmatch(actual) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.label}{self.op}{self.value}"


_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    found = _REGEX_CACHE.get(pattern)
    if found is None:
        found = _REGEX_CACHE[pattern] = re.compile(pattern)
    return found


def parse_matcher(text: str) -> Matcher:
    """`severity=~critical|warning` → Matcher; raises ValueError naming what is wrong."""
    found = _MATCHER_RE.match(text)
    if not found:
        raise ValueError(
            f"invalid matcher {text!r}: use label=value, label!=value, label=~regex or label!~regex"
        )
    label, op, value = found.groups()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex in matcher {text!r}: {exc}") from None
    return Matcher(label, op, value)  # type: ignore[arg-type]


def _matcher_text(text: str) -> str:
    parse_matcher(text)
    return text


MatcherText = Annotated[str, AfterValidator(_matcher_text)]


def _known_labels(match: dict[str, str]) -> dict[str, str]:
    unknown = sorted(set(match) - MATCH_LABELS)
    if unknown:
        raise ValueError(
            f"unknown label {unknown[0]!r} (known: {', '.join(sorted(MATCH_LABELS))}; "
            "use `matchers:` for any other label)"
        )
    return match


Match = Annotated[dict[str, str], AfterValidator(_known_labels)]


def _regex_values(match: dict[str, str]) -> dict[str, str]:
    for label, pattern in match.items():
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regex for {label!r}: {exc}") from None
    return match


# -- recipients -----------------------------------------------------------------------------
_RECIPIENT_RE = re.compile(f"^(?:(contact|role|schedule):)?({ID_PATTERN})$")


def parse_recipient(text: str) -> tuple[str | None, str]:
    """`role:duty_officer` → ("role", "duty_officer"); a bare name → (None, name)."""
    found = _RECIPIENT_RE.match(text)
    if not found:
        raise ValueError(
            f"invalid recipient {text!r}: a contact id, a schedule name or a role, "
            "optionally written contact:x, schedule:x or role:x"
        )
    kind, name = found.groups()
    if kind == "role" and name not in ROLES:
        raise ValueError(f"unknown role {name!r} (known: {', '.join(ROLES)})")
    return kind, name


def _recipient_text(text: str) -> str:
    parse_recipient(text)
    return text


Recipient = Annotated[str, AfterValidator(_recipient_text)]


# -- contacts -------------------------------------------------------------------------------
class Contact(_Strict):
    id: Id
    name: str = Field(min_length=1)
    org: Id
    roles: Annotated[list[Role], Field(min_length=1), AfterValidator(unique)]
    #: Apprise URLs, tried in order (the next on failure): they embed credentials, so they
    #: are secrets, never logged or returned.
    notify: list[SecretStr] = Field(default_factory=list)
    language: Literal["it", "en", "de", "fr", "es"] = "it"
    #: Numbers and addresses this contact replies from (inbound acks); those found in the
    #: `notify` URLs count too.
    phones: list[Annotated[str, Field(pattern=r"^\+?[0-9 ()./-]{6,20}$")]] = Field(
        default_factory=list
    )
    emails: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(default_factory=list)


# -- time intervals -------------------------------------------------------------------------
_HHMM = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")


def _minutes(text: str) -> int:
    found = _HHMM.match(text)
    if not found or (found.group(1) == "24" and found.group(2) != "00"):
        raise ValueError(f"invalid time {text!r}: use HH:MM (00:00 to 24:00)")
    return int(found.group(1)) * 60 + int(found.group(2))


class TimeRange(_Strict):
    """`start_time` inclusive, `end_time` exclusive, local time of the interval's location."""

    start_time: str
    end_time: str

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if _minutes(self.start_time) >= _minutes(self.end_time):
            raise ValueError(f"start_time {self.start_time} is not before end_time {self.end_time}")
        return self

    @property
    def minutes(self) -> tuple[int, int]:
        return _minutes(self.start_time), _minutes(self.end_time)


def _ranges(names: tuple[str, ...] | None, low: int, high: int) -> Any:
    """A validator for `monday:friday`, `1:5`, `-1`, `january` style range lists."""

    def bound(text: str) -> int:
        text = text.strip().lower()
        if names is not None and text in names:
            return names.index(text) + low
        try:
            value = int(text)
        except ValueError:
            known = f" (names: {', '.join(names)})" if names else ""
            raise ValueError(f"invalid value {text!r}{known}") from None
        if not (low <= abs(value) <= high) or (value < 0 and names is not None):
            raise ValueError(f"{value} is out of range {low}..{high}")
        return value

    def check(items: list[str]) -> list[str]:
        for item in items:
            parts = str(item).split(":")
            if len(parts) > 2:
                raise ValueError(f"invalid range {item!r}: use start:end")
            for part in parts:
                bound(part)
        return items

    return AfterValidator(check)


class TimeIntervalSpec(_Strict):
    """Alertmanager's time interval: every listed field must match (an empty one always
    does). Ranges are inclusive; `days_of_month` may count from the end (`-1`: last day)."""

    times: list[TimeRange] = Field(default_factory=list)
    weekdays: Annotated[list[str], _ranges(WEEKDAYS, 0, 6)] = Field(default_factory=list)
    days_of_month: Annotated[list[str], _ranges(None, 1, 31)] = Field(default_factory=list)
    months: Annotated[list[str], _ranges(MONTHS, 1, 12)] = Field(default_factory=list)
    years: Annotated[list[str], _ranges(None, 1970, 9999)] = Field(default_factory=list)
    location: TimeZoneName | None = None

    @field_validator("weekdays", "months", "days_of_month", "years", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(v) for v in value]
        return value


class TimeInterval(_Strict):
    name: Id
    time_intervals: Annotated[list[TimeIntervalSpec], Field(min_length=1)]


# -- routes ---------------------------------------------------------------------------------
class Route(_Strict):
    """A node of the routing tree. Unset options (`None`) are inherited from the parent; the
    implicit root has Alertmanager's defaults (group_wait 30s, group_interval 5m,
    repeat_interval 4h) and groups by rule and site."""

    match: Match = Field(default_factory=dict)
    match_re: Annotated[dict[str, str], AfterValidator(_regex_values)] = Field(default_factory=dict)
    matchers: list[MatcherText] = Field(default_factory=list)
    notify: list[Recipient] | None = None
    escalate: Id | None = None
    continue_: bool = Field(default=False, alias="continue")
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    mute_time_intervals: list[Id] = Field(default_factory=list)
    active_time_intervals: list[Id] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)

    @field_validator("group_interval", "repeat_interval")
    @classmethod
    def _not_zero(cls, value: Any) -> Any:
        if value is not None and value.total_seconds() <= 0:
            raise ValueError("must be greater than zero")
        return value

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            unique(value)
            if "..." in value and len(value) > 1:
                raise ValueError("'...' (group by every label) must be alone")
        return value


# -- escalations ----------------------------------------------------------------------------
class EscalationStep(_Strict):
    #: Since the alert started firing (or since an expired acknowledgement re-armed it).
    after: Duration
    notify: Annotated[list[Recipient], Field(min_length=1)]


class Escalation(_Strict):
    name: Id
    steps: Annotated[list[EscalationStep], Field(min_length=1)]
    #: An acknowledgement older than this, on an alert still firing, lapses: the
    #: escalation starts again from its first step.
    ack_timeout: Duration | None = None

    @model_validator(mode="after")
    def _increasing(self) -> Escalation:
        afters = [s.after for s in self.steps]
        if afters != sorted(afters):
            raise ValueError("steps must be in increasing order of `after`")
        return self


# -- schedules ------------------------------------------------------------------------------
class Override(_Strict):
    """Someone else on duty from `start` to `end` (local time of the schedule): a holiday, a
    swap. The last override listed wins where they overlap."""

    start: datetime
    end: datetime
    contact: Id
    reason: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Override:
        if self.start >= self.end:
            raise ValueError("start must be before end")
        return self


class Schedule(_Strict):
    """An on-call rotation: `members` take turns of `shift_length` days (daily) or weeks
    (weekly), handing off at `handoff` local time (on `handoff_day` for weekly rotations);
    the first member's first shift starts at the first hand-off on or after `start`."""

    name: Id
    rotation: Literal["daily", "weekly"] = "weekly"
    handoff: str = "09:00"
    handoff_day: Literal[WEEKDAYS] = "monday"  # type: ignore[valid-type]
    start: date
    shift_length: int = Field(default=1, ge=1, le=52)
    members: Annotated[list[Id], Field(min_length=1)]
    timezone: TimeZoneName | None = None
    overrides: list[Override] = Field(default_factory=list)

    @field_validator("handoff")
    @classmethod
    def _handoff(cls, value: str) -> str:
        if _minutes(value) >= 24 * 60:
            raise ValueError("handoff must be before 24:00")
        return value

    @property
    def handoff_time(self) -> time:
        minutes = _minutes(self.handoff)
        return time(minutes // 60, minutes % 60)


# -- inhibition -----------------------------------------------------------------------------
class InhibitRule(_Strict):
    """While an alert matching `source_matchers` fires, alerts matching `target_matchers`
    with the same values of the `equal` labels are not notified (Alertmanager's rule)."""

    source_matchers: Annotated[list[MatcherText], Field(min_length=1)]
    target_matchers: Annotated[list[MatcherText], Field(min_length=1)]
    equal: list[str] = Field(default_factory=list)
