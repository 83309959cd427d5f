"""Response and request bodies of `/api/v1`: the OpenAPI schema's components.

Times are epoch milliseconds (`*_ms`), the project's one time unit; quantities keep their
unit in their name (`power_w`, `today_energy_kwh`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ecocluster.core.types import ID_PATTERN

__all__ = [
    "AckBody",
    "AlertOut",
    "AssignBody",
    "ConsumptionOut",
    "HealthOut",
    "HistoryOut",
    "LiveOut",
    "MeterOut",
    "OrganisationOut",
    "SilenceIn",
    "SilenceOut",
    "SiteOut",
    "TerritoryOut",
]

Id = Annotated[str, Field(pattern=f"^{ID_PATTERN}$", examples=["cerreto-hotel"])]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# -- registry ------------------------------------------------------------------------------
class MeOut(_Out):
    name: str = Field(examples=["Anna Bianchi"])
    role: str = Field(examples=["facility_manager"])
    org: str | None = Field(examples=["parco"])
    contact: str | None = None
    territory: str = Field(examples=["appennino"])
    territory_name: str
    timezone: str = Field(examples=["Europe/Rome"])


class OrganisationOut(_Out):
    id: str = Field(examples=["parco"])
    name: str = Field(examples=["Ente Parco Nazionale dell'Appennino Tosco-Emiliano"])
    kind: str = Field(examples=["public"])
    sites: int = Field(description="How many sites it has.", examples=[4])


class SiteOut(_Out):
    id: str = Field(examples=["cerreto-hotel"])
    org: str = Field(examples=["parco"])
    name: str = Field(examples=["Hotel al Lago"])
    category: str = Field(examples=["hotel"])
    lat: float = Field(examples=[44.29])
    lon: float = Field(examples=[10.24])
    altitude_m: float | None = Field(default=None, examples=[1340])
    meters: int = Field(examples=[3])


class MeterOut(_Out):
    id: str = Field(examples=["em-01"])
    site: str = Field(examples=["cerreto-hotel"])
    org: str = Field(examples=["parco"])
    name: str | None = None
    quantities: list[str] = Field(examples=[["energy_kwh", "power_w"]])
    interval_s: float | None = Field(default=None, description="Declared reporting interval.")


# -- live ----------------------------------------------------------------------------------
class ReadingOut(_Out):
    org: str
    site: str
    meter: str
    quantity: str = Field(examples=["power_w"])
    value: float = Field(examples=[5230.0])
    ts_ms: int = Field(examples=[1732470000123])
    stale: bool = Field(description="Older than the live staleness limit.")
    offline: bool = Field(description="The device said it is offline (its last will).")


class SiteLiveOut(_Out):
    site: str
    org: str
    name: str
    power_w: float | None = Field(description="Sum of the site's fresh power readings.")
    flow_lpm: float | None = Field(description="Sum of the site's fresh flow readings.")
    today_energy_kwh: float | None = Field(description="Since local midnight, from registers.")
    today_water_m3: float | None = None
    open_alerts: int | None = Field(description="Firing alerts (None: no alert service).")
    meters_offline: int


class AlertOut(_Out):
    id: str = Field(examples=["a1f3c09e"])
    code: str = Field(description="Short code for SMS replies.", examples=["4821"])
    rule: str = Field(examples=["power-overload"])
    severity: str = Field(examples=["critical"])
    state: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(examples=[{"org": "parco", "site": "cerreto-hotel"}])
    value: float | None = None
    threshold: float | None = None
    started_ms: int
    updated_ms: int
    resolved_ms: int | None = None
    acked_by: str | None = None
    acked_ms: int | None = None
    ack_comment: str | None = None
    ack_channel: str | None = None
    assignee: str | None = None
    silenced: bool = False
    description: str | None = None


class AlertEventOut(_Out):
    at_ms: int
    kind: str = Field(examples=["acked"])
    by: str | None = Field(default=None, examples=["rossi"])
    channel: str | None = Field(default=None, examples=["sms"])
    detail: str | None = None


class AlertDetailOut(AlertOut):
    events: list[AlertEventOut] = Field(description="The append-only audit trail, oldest first.")


class LiveOut(_Out):
    at_ms: int = Field(description="Server time of this snapshot.")
    timezone: str = Field(examples=["Europe/Rome"])
    today_since_ms: int = Field(description="Local midnight: start of the 'today' totals.")
    stale_after_ms: int = Field(description="Readings older than this are stale.")
    sites: list[SiteLiveOut]
    readings: list[ReadingOut]
    alerts: list[AlertOut] | None = Field(description="Open alerts (None: no alert service).")


class TotalsOut(_Out):
    power_w: float | None
    flow_lpm: float | None
    today_energy_kwh: float | None
    today_water_m3: float | None
    sites_reporting: int


class OrgTotalsOut(TotalsOut):
    org: str
    name: str


class MapSiteOut(_Out):
    site: str
    org: str
    name: str
    lat: float
    lon: float
    open_alerts: int
    worst_severity: str | None


class TerritoryOut(_Out):
    at_ms: int
    territory: str
    name: str
    timezone: str
    totals: TotalsOut = Field(description="Over everything the caller may see.")
    by_org: list[OrgTotalsOut] = Field(description="Empty for viewers (aggregates only).")
    sites: list[MapSiteOut] = Field(description="For the map; empty for viewers.")
    open_alerts_by_severity: dict[str, int] | None


# -- history -------------------------------------------------------------------------------
class HistorySeriesOut(_Out):
    key: dict[str, str] = Field(
        description="What the series is: org/site/meter/quantity, or the group it sums.",
        examples=[{"site": "cerreto-hotel", "quantity": "power_w"}],
    )
    ts_ms: list[int] = Field(description="Bucket starts (or reading times when raw).")
    values: list[float | None]


class HistoryOut(_Out):
    quantity: str
    field: Literal["value", "delta"]
    fn: str | None = Field(description="None for raw readings.")
    every_ms: int | None
    start_ms: int
    end_ms: int
    group: Literal["series", "meter", "site", "org", "territory"]
    series: list[HistorySeriesOut]


class ConsumptionItemOut(_Out):
    key: str = Field(description="`site/meter`, site, org or `territory`.")
    value: float


class ConsumptionOut(_Out):
    quantity: Literal["energy_kwh", "water_m3"]
    unit: str = Field(examples=["kWh"])
    by: Literal["meter", "site", "org", "territory"]
    start_ms: int
    end_ms: int
    items: list[ConsumptionItemOut]
    total: float


class ProfileDayOut(_Out):
    date: str = Field(examples=["2024-11-24"])
    start_ms: int
    values: list[float | None] = Field(description="One value per local hour (23–25 a day).")


class ProfileOut(_Out):
    site: str
    quantity: str
    today: ProfileDayOut
    previous: list[ProfileDayOut] = Field(description="The same weekday, 1 to 4 weeks ago.")
    previous_mean: list[float | None]


# -- alerts --------------------------------------------------------------------------------
class AckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: str | None = Field(default=None, max_length=500, examples=["on my way"])


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assignee: str | None = Field(
        description="A contact id; null to unassign.", max_length=64, examples=["rossi"]
    )


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    matchers: dict[str, str] = Field(
        min_length=1,
        description="Labels to match (org, site, meter, category, quantity, severity, rule).",
        examples=[{"site": "cerreto-hotel", "rule": "power-overload"}],
    )
    starts: str = Field(default="now", description="A time (epoch ms, ISO 8601, now, -1h).")
    ends: str | None = Field(default=None, description="A time; or give `duration`.")
    duration: str | None = Field(default=None, examples=["2h"])
    reason: str = Field(min_length=3, max_length=500, examples=["boiler maintenance"])
    end_on_recovery: bool = False


class SilenceOut(_Out):
    id: str
    matchers: dict[str, str]
    starts_ms: int
    ends_ms: int
    reason: str
    author: str
    end_on_recovery: bool
    active: bool
    expired_ms: int | None = None
    expired_by: str | None = None


class InboundOut(_Out):
    accepted: bool
    message: str
    alert_id: str | None = None


# -- health --------------------------------------------------------------------------------
class CheckOut(_Out):
    ok: bool
    detail: str | None = None


class HealthOut(_Out):
    status: Literal["ok", "degraded", "unavailable"]
    checks: dict[str, CheckOut] = Field(default_factory=dict)
