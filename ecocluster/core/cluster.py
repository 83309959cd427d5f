"""The cluster file's declared shape: pydantic models, strict (`extra="forbid"`).

These models keep the file's shape (Alertmanager's `config.Route`); `registry.py` turns a
validated file into the fast lookups the stages use. Cross-references (a meter's site, a
route's contacts) are checked in `registry.py`, where every section is known.

Rules are validated here only as far as their common shape is known (name, type,
quantity, severity, match labels, durations); the rule engine validates its own fields,
reporting through the same file/line machinery.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator

from ecocluster.core.durations import Duration
from ecocluster.core.types import ID_PATTERN, MATCH_LABELS, Quantity, Role, Severity, SiteCategory

Id = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]

RULE_TYPES = (
    "threshold",
    "rate",
    "absence",
    "stuck",
    "night_flow",
    "burst",
    "anomaly",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _unique(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{value!r} is listed twice")
        seen.add(value)
    return values


def _valid_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name, e.g. Europe/Rome)"
        ) from None
    return name


class Territory(_Strict):
    id: Id
    name: str = Field(min_length=1)
    timezone: Annotated[str, AfterValidator(_valid_timezone)] = "Europe/Rome"


class Organisation(_Strict):
    id: Id
    name: str = Field(min_length=1)
    kind: Literal["public", "private", "nonprofit"]


class Site(_Strict):
    id: Id
    org: Id
    name: str = Field(min_length=1)
    category: SiteCategory
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    altitude_m: float | None = None
    #: Contracted electrical capacity, for overload rules and plausibility of deltas.
    contracted_power_w: float | None = Field(default=None, gt=0)


class Meter(_Strict):
    id: Id
    site: Id
    quantities: Annotated[list[Quantity], Field(min_length=1), AfterValidator(_unique)]
    name: str | None = None
    #: How often the device reports; absence rules default to a multiple of it.
    interval: Duration | None = None
    #: The device's MQTT credentials, when the broker authenticates devices.
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None


class Contact(_Strict):
    id: Id
    name: str = Field(min_length=1)
    org: Id
    roles: Annotated[list[Role], Field(min_length=1), AfterValidator(_unique)]
    #: Apprise URLs: they embed credentials, so they are secrets.
    notify: list[SecretStr] = Field(default_factory=list)
    language: Literal["it", "en", "de", "fr", "es"] = "it"


def _known_labels(match: dict[str, str]) -> dict[str, str]:
    unknown = sorted(set(match) - MATCH_LABELS)
    if unknown:
        raise ValueError(f"unknown label {unknown[0]!r} (known: {', '.join(sorted(MATCH_LABELS))})")
    return match


Match = Annotated[dict[str, str], AfterValidator(_known_labels)]


class RuleSpec(BaseModel):
    """The common shape of a rule; type-specific fields are the rule engine's to check."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    name: Id
    type: Literal[RULE_TYPES]  # type: ignore[valid-type]
    quantity: Quantity | None = None
    severity: Severity = Severity.WARNING
    match: Match = Field(default_factory=dict)
    for_: Duration | None = Field(default=None, alias="for")
    description: str | None = None

    @field_validator("match", mode="before")
    @classmethod
    def _match_values_are_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(item, str):
                    raise ValueError(f"match value for {key!r} must be text, got {item!r}")
        return value


class Route(_Strict):
    match: Match = Field(default_factory=dict)
    notify: list[Id] = Field(default_factory=list)
    escalate: Id | None = None
    continue_: bool = Field(default=False, alias="continue")
    group_by: list[str] = Field(default_factory=lambda: ["rule", "site"])
    group_wait: Duration | None = None
    repeat_interval: Duration | None = None


class EscalationStep(_Strict):
    after: Duration
    notify: Annotated[list[Id], Field(min_length=1)]


class Escalation(_Strict):
    name: Id
    steps: Annotated[list[EscalationStep], Field(min_length=1)]


#: Sections that are lists of items, each validated alone so that every error is reported.
LIST_SECTIONS: dict[str, type[BaseModel]] = {
    "organisations": Organisation,
    "sites": Site,
    "meters": Meter,
    "contacts": Contact,
    "rules": RuleSpec,
    "routes": Route,
    "escalations": Escalation,
}
TOP_LEVEL_KEYS = frozenset({"territory", "settings", "include", *LIST_SECTIONS})
