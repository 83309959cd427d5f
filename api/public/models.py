"""Response models of the public API, for its OpenAPI schema (the routes send pre-encoded
bytes from the cache; these models document, and schemathesis checks, their shape)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["Catalogue", "DatasetAnswer", "PublicSummary"]

Level = Literal["good", "fair", "moderate", "poor", "very_poor", "extremely_poor"]


class Licence(BaseModel):
    id: str = Field(examples=["CC-BY-4.0"])
    name: str
    url: str | None
    attribution: str


class Territory(BaseModel):
    id: str
    name: str
    timezone: str


class PollutantIndex(BaseModel):
    pollutant: str = Field(examples=["pm2_5"])
    value: float | None = Field(description="The last complete hour's mean; null: not valid.")
    unit: str
    averaging: Literal["1h", "24h"]
    band: int | None = Field(ge=1, le=6)
    captured: bool = Field(description="The hour meets the 75 % data-capture rule.")


class Eaqi(BaseModel):
    band: int | None = Field(ge=1, le=6, description="1 good … 6 extremely poor")
    level: Level | None
    pollutant: str | None = Field(description="The pollutant that sets the band.")
    at: str | None = Field(description="Start of the hour (UTC).")
    missing: list[str] = Field(
        description="Pollutant groups the EEA requires that lack a valid hour (no band then)."
    )
    pollutants: list[PollutantIndex]


class Exceedance(BaseModel):
    pollutant: str
    kind: Literal["limit_value", "information_threshold", "alert_threshold", "alert_rule"]
    value: float
    limit: float
    averaging: str
    since: str | None


class Series(BaseModel):
    pollutant: str
    unit: str
    points: list[tuple[str, float | None]]


class Chart(BaseModel):
    from_: str = Field(alias="from")
    to: str
    step_s: int
    series: list[Series]


class Station(BaseModel):
    id: str
    name: str
    lat: float
    lon: float
    altitude_m: float | None
    eaqi: Eaqi
    exceedances: list[Exceedance]
    chart: Chart


class Consumption(BaseModel):
    quantity: Literal["energy_kwh", "water_m3"]
    unit: str
    month: str = Field(examples=["2026-12"])
    this_month: float | None
    same_month_last_year: float | None
    change_pct: float | None
    comparable: bool = Field(description="Last year's figure comes from the same meters.")
    to_date: bool


class PublicAlert(BaseModel):
    id: str = Field(description="Opaque; not the internal alert id.")
    state: Literal["open", "resolved"]
    severity: Literal["info", "warning", "critical"]
    text_it: str
    text_en: str
    place: str
    since: str
    resolved_at: str | None


class PublicSummary(BaseModel):
    territory: Territory
    generated_at: str
    licence: Licence
    stations: list[Station]
    consumption: list[Consumption]
    alerts: list[PublicAlert]


class DatasetLink(BaseModel):
    id: str
    title_it: str
    title_en: str
    description: str
    fields: list[str]
    parameters: list[str]
    formats: dict[str, str]


class Catalogue(BaseModel):
    generated_at: str
    licence: Licence
    datasets: list[DatasetLink]


class DatasetAnswer(BaseModel):
    dataset: str
    title_it: str
    title_en: str
    description: str
    generated_at: str
    licence: Licence
    parameters: dict[str, str | int | None]
    fields: list[str]
    rows: list[dict[str, str | float | int | bool | None]]
