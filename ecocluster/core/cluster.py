"""The cluster file's declared shape: pydantic models, strict (`extra="forbid"`).

These models keep the file's shape (Alertmanager's `config.Route`); `registry.py` turns a
validated file into the fast lookups the stages use. Cross-references (a meter's site, a
route's contacts) are checked in `registry.py`, where every section is known.

Rules are declared here only as far as every rule shares them (`RuleSpec`: name, type,
quantity, severity, match, for, description), once: the rules stage's `RuleBase` extends
`RuleSpec` with the engine's fields and each rule type's own, and reports through the same
file/line machinery. The kernel never imports the rules stage.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator

from ecocluster.core.alerting import (  # noqa: F401 (the alerting sections live there)
    Contact,
    Escalation,
    EscalationStep,
    InhibitRule,
    Route,
    Schedule,
    TimeInterval,
)
from ecocluster.core.durations import Duration
from ecocluster.core.schema import Strict, unique, valid_timezone
from ecocluster.core.types import ID_PATTERN, Quantity, Severity, SiteCategory

Id = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]

RULE_TYPES = (
    "threshold",
    "rate",
    "absence",
    "stuck",
    "night_flow",
    "burst",
    "anomaly",
    "compliance",
)


class ComplianceSpec(Strict):
    """Which regulatory pack a station's air data are assessed against (issue 13):
    set on the territory, overridable per site and per meter."""

    pack: Literal["eu2008", "eu2030", "who2021"] = "eu2008"


class EmissionFactorSpec(Strict):
    """kg CO2e per unit of a register quantity (kWh, m³), with its year and source."""

    kg_per_unit: float = Field(ge=0)
    year: int = Field(ge=1990, le=2100)
    source: str = Field(min_length=1)


#: Reference values per organisation or site for indicator ratios (EMAS Figure B).
Attributes = dict[Annotated[str, Field(pattern=f"^{ID_PATTERN}$")], Annotated[float, Field(gt=0)]]


class Territory(Strict):
    id: Id
    name: str = Field(min_length=1)
    timezone: Annotated[str, AfterValidator(valid_timezone)] = "Europe/Rome"
    compliance: ComplianceSpec | None = None
    #: Per register quantity (energy_kwh, water_m3); unset: no CO2e for that quantity.
    emission_factors: dict[Literal["energy_kwh", "water_m3"], EmissionFactorSpec] = Field(
        default_factory=dict
    )


class Organisation(Strict):
    id: Id
    name: str = Field(min_length=1)
    kind: Literal["public", "private", "nonprofit"]
    #: e.g. {employees: 12, bed_nights: 8400, floor_m2: 950, milk_litres: 1.2e6}.
    attributes: Attributes = Field(default_factory=dict)


class Site(Strict):
    id: Id
    org: Id
    name: str = Field(min_length=1)
    category: SiteCategory
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    altitude_m: float | None = None
    #: Contracted electrical capacity, for overload rules and plausibility of deltas.
    contracted_power_w: float | None = Field(default=None, gt=0)
    compliance: ComplianceSpec | None = None
    attributes: Attributes = Field(default_factory=dict)
    #: Open data may show this site's own figures even if its organisation is private
    #: (issue 17); a public body's sites are public anyway.
    public: bool = False
    #: For air stations: the EEA station type (which pollutants its EAQI needs).
    station_type: Literal["background", "traffic", "industrial"] = "background"


class Meter(Strict):
    id: Id
    site: Id
    quantities: Annotated[list[Quantity], Field(min_length=1), AfterValidator(unique)]
    name: str | None = None
    #: How often the device reports; absence rules default to a multiple of it.
    interval: Duration | None = None
    #: The device's MQTT credentials, when the broker authenticates devices.
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    #: Or only its Mosquitto hash (`$7$…`, as `mosquitto_passwd` writes it): the secret itself
    #: then stays with the device's installer (`ecocluster broker-config`).
    mqtt_password_hash: str | None = Field(
        default=None, pattern=r"^\$7\$[0-9]+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$"
    )
    #: Where the register (energy_kwh / water_m3) wraps to 0, in its unit: 10^digits ×
    #: resolution (999 999.9 kWh → 1000000). Unset: a drop is a reset, never a rollover.
    register_size: float | None = Field(default=None, gt=0)
    #: Plausible maximum consumption per hour, in the register's unit (kWh/h, m³/h); a rise
    #: beyond it is flagged, not booked. Unset: from the site's contracted power (energy).
    max_rate_per_h: float | None = Field(default=None, gt=0)
    compliance: ComplianceSpec | None = None
    #: Open data may show this meter's own figures even if its organisation is private.
    public: bool = False


#: Labels a rule's `match:` may name (severity, rule and kind are for routes).
RULE_MATCH_LABELS = frozenset({"org", "site", "meter", "category", "quantity"})


class RuleSpec(BaseModel):
    """The fields every rule has, declared once. As a cluster file's item it keeps the
    type-specific fields as extras (`model_extra`); the rules stage's `RuleBase` subclasses
    it, adds the engine's fields and forbids unknown ones."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    name: Id
    type: Literal[RULE_TYPES]  # type: ignore[valid-type]
    quantity: Quantity | None = None
    severity: Severity = Severity.WARNING
    #: Label matchers (org, site, meter, category, quantity): which series the rule sees.
    match: dict[str, str] = Field(default_factory=dict)
    #: How long the condition must hold (pending) before the alert fires.
    for_: Duration = Field(default=timedelta(0), alias="for")
    description: str | None = None
    #: Alerts of this rule are of public interest: shown, without internal detail, on the
    #: public page and in the open data (issue 17). Off by default.
    public: bool = False

    @field_validator("match", mode="before")
    @classmethod
    def _match_values_are_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(item, str):
                    raise ValueError(f"match value for {key!r} must be text, got {item!r}")
        return value

    @field_validator("match")
    @classmethod
    def _rule_labels(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - RULE_MATCH_LABELS)
        if unknown:
            known = ", ".join(sorted(RULE_MATCH_LABELS))
            raise ValueError(f"a rule cannot match on {unknown[0]!r} (rules match on: {known})")
        return value


#: Sections that are lists of items, each validated alone so that every error is reported.
LIST_SECTIONS: dict[str, type[BaseModel]] = {
    "organisations": Organisation,
    "sites": Site,
    "meters": Meter,
    "contacts": Contact,
    "rules": RuleSpec,
    "routes": Route,
    "escalations": Escalation,
    "schedules": Schedule,
    "time_intervals": TimeInterval,
    "inhibit_rules": InhibitRule,
}
TOP_LEVEL_KEYS = frozenset({"territory", "settings", "include", *LIST_SECTIONS})
