"""Regulatory packs: the air-quality standards of one legal text, as data with citations.

    pack = get_pack("eu2008")
    for check in pack.checks_for("pm10_ugm3"): ...

A `Check` is one standard: a pollutant, an averaging period, a value, how many exceedances
a calendar year permits, and what kind of standard it is. The numbers come from
`../shared/domain-reference.md` §1; each `Check` cites its article or annex. Values the
reference marks **VERIFY** carry `verified=False` and say so in every report; values it says
not to encode (the 2024/2881 SO2 alert threshold, 350 or 500 µg/m³) are left out.

Our sensors give *indicative* statements only: legal compliance is assessed by ARPAE/ARPAT
with reference methods (domain reference §0.3). Reports and alerts say "indicative".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = [
    "AVERAGINGS",
    "DEFAULT_PACK",
    "KINDS",
    "PACKS",
    "Averaging",
    "Check",
    "Kind",
    "Pack",
    "get_pack",
]

Averaging = Literal["hour", "day", "max8h", "year"]
Kind = Literal["limit", "target", "long_term", "guideline", "information", "alert"]
AVERAGINGS: Final[tuple[Averaging, ...]] = ("hour", "day", "max8h", "year")
KINDS: Final[tuple[Kind, ...]] = (
    "limit",
    "target",
    "long_term",
    "guideline",
    "information",
    "alert",
)
#: Kinds that are standards counted per calendar year (vs thresholds that trigger action).
COUNTED_KINDS: Final = frozenset({"limit", "target", "long_term", "guideline"})
DEFAULT_PACK: Final = "eu2008"


@dataclass(frozen=True, slots=True)
class Check:
    """One standard. `allowed` is the number of exceedances a calendar year permits (None
    for annual means and thresholds); `hours` the consecutive periods a threshold must be
    exceeded for (the NO2/SO2 alert thresholds: 3 hours)."""

    id: str
    quantity: str
    averaging: Averaging
    value: float
    kind: Kind
    source: str
    allowed: int | None = None
    hours: int = 1
    verified: bool = True
    note: str = ""

    @property
    def is_counted(self) -> bool:
        return self.kind in COUNTED_KINDS

    @property
    def is_threshold(self) -> bool:
        return self.kind in ("information", "alert")


@dataclass(frozen=True, slots=True)
class Pack:
    """The standards of one legal text and its data-capture rules (fractions)."""

    name: str
    title: str
    source: str
    checks: tuple[Check, ...]
    #: A valid 1-hour value needs this share of the hour (2008/50 Annex XI A: 75 %).
    hour_capture: float = 0.75
    #: A valid 24-hour / 8-hour value needs this share of its hours (Annex XI A: 75 %).
    period_capture: float = 0.75
    #: A valid annual mean needs this share of the year's hours (Annex I: 90 %).
    year_capture: float = 0.90
    applies_from: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def checks_for(self, quantity: str) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.quantity == quantity)

    def check(self, check_id: str) -> Check:
        for c in self.checks:
            if c.id == check_id:
                return c
        raise KeyError(f"pack {self.name} has no check {check_id!r}")


# -- Directive 2008/50/EC as transposed by D.Lgs. 155/2010 (current Italian law) -----------
_D155 = "Dir. 2008/50/EC; D.Lgs. 155/2010"
EU2008 = Pack(
    name="eu2008",
    title="Directive 2008/50/EC (D.Lgs. 155/2010)",
    source="https://eur-lex.europa.eu/eli/dir/2008/50/oj ; D.Lgs. 13 agosto 2010 n. 155",
    checks=(
        Check(
            "so2-hour-limit",
            "so2_ugm3",
            "hour",
            350.0,
            "limit",
            f"{_D155} Annex XI B / Allegato XI",
            allowed=24,
        ),
        Check(
            "so2-day-limit",
            "so2_ugm3",
            "day",
            125.0,
            "limit",
            f"{_D155} Annex XI B / Allegato XI",
            allowed=3,
        ),
        Check(
            "so2-alert",
            "so2_ugm3",
            "hour",
            500.0,
            "alert",
            f"{_D155} Annex XII A / Allegato XII",
            hours=3,
            note="three consecutive hours, site representative of >= 100 km2",
        ),
        Check(
            "no2-hour-limit",
            "no2_ugm3",
            "hour",
            200.0,
            "limit",
            f"{_D155} Annex XI B / Allegato XI",
            allowed=18,
        ),
        Check(
            "no2-year-limit", "no2_ugm3", "year", 40.0, "limit", f"{_D155} Annex XI B / Allegato XI"
        ),
        Check(
            "no2-alert",
            "no2_ugm3",
            "hour",
            400.0,
            "alert",
            f"{_D155} Annex XII A / Allegato XII",
            hours=3,
            note="three consecutive hours, site representative of >= 100 km2",
        ),
        Check(
            "pm10-day-limit",
            "pm10_ugm3",
            "day",
            50.0,
            "limit",
            f"{_D155} Annex XI B / Allegato XI",
            allowed=35,
        ),
        Check(
            "pm10-year-limit",
            "pm10_ugm3",
            "year",
            40.0,
            "limit",
            f"{_D155} Annex XI B / Allegato XI",
        ),
        Check(
            "pm25-year-limit",
            "pm25_ugm3",
            "year",
            25.0,
            "limit",
            f"{_D155} Annex XIV E / Allegato XI",
            note="limit value since 2015",
        ),
        Check(
            "co-max8h-limit",
            "co_mgm3",
            "max8h",
            10.0,
            "limit",
            f"{_D155} Annex XI B / Allegato XI",
            allowed=0,
        ),
        Check(
            "o3-max8h-target",
            "o3_ugm3",
            "max8h",
            120.0,
            "target",
            f"{_D155} Annex VII B / Allegato VII",
            allowed=25,
            note="25 days per calendar year averaged over three years; one year shown",
        ),
        Check(
            "o3-max8h-lto",
            "o3_ugm3",
            "max8h",
            120.0,
            "long_term",
            f"{_D155} Annex VII C / Allegato VII",
            allowed=0,
        ),
        Check(
            "o3-information",
            "o3_ugm3",
            "hour",
            180.0,
            "information",
            f"{_D155} Annex XII B / Allegato XII",
        ),
        Check(
            "o3-alert",
            "o3_ugm3",
            "hour",
            240.0,
            "alert",
            f"{_D155} Annex XII B / Allegato XII",
            note="1-hour value; short-term action plans (Art. 24) look at 3 consecutive hours",
        ),
    ),
    notes=(
        "Data capture: Annex I (90 % of hourly values for annual statistics) and Annex XI A"
        " (75 % of the hour, of the day's hours, of the 8 hourly values).",
        "Time base: the day runs 00:00-24:00 local standard time (CET for Italy); the"
        " maximum daily 8-hour mean belongs to the day on which the window ends (Annex XI A).",
    ),
)

# -- Directive (EU) 2024/2881, Annex I, Table 1 (from 1 January 2030) ----------------------
_R = "Dir. (EU) 2024/2881"
EU2030 = Pack(
    name="eu2030",
    title="Directive (EU) 2024/2881, limit values from 2030",
    source="https://eur-lex.europa.eu/eli/dir/2024/2881/oj",
    applies_from="2030-01-01",
    year_capture=0.85,
    checks=(
        Check(
            "pm25-day-limit",
            "pm25_ugm3",
            "day",
            25.0,
            "limit",
            f"{_R} Annex I Section 1 Table 1",
            allowed=18,
        ),
        Check(
            "pm25-year-limit", "pm25_ugm3", "year", 10.0, "limit", f"{_R} Annex I Section 1 Table 1"
        ),
        Check(
            "pm10-day-limit",
            "pm10_ugm3",
            "day",
            45.0,
            "limit",
            f"{_R} Annex I Section 1 Table 1",
            allowed=18,
        ),
        Check(
            "pm10-year-limit", "pm10_ugm3", "year", 20.0, "limit", f"{_R} Annex I Section 1 Table 1"
        ),
        Check(
            "no2-hour-limit",
            "no2_ugm3",
            "hour",
            200.0,
            "limit",
            f"{_R} Annex I Section 1 Table 1",
            allowed=3,
        ),
        Check(
            "no2-day-limit",
            "no2_ugm3",
            "day",
            50.0,
            "limit",
            f"{_R} Annex I Section 1 Table 1",
            allowed=18,
        ),
        Check(
            "no2-year-limit", "no2_ugm3", "year", 20.0, "limit", f"{_R} Annex I Section 1 Table 1"
        ),
        Check(
            "so2-hour-limit",
            "so2_ugm3",
            "hour",
            350.0,
            "limit",
            f"{_R} Annex I Section 1 Table 1",
            allowed=3,
        ),
        Check(
            "so2-day-limit",
            "so2_ugm3",
            "day",
            50.0,
            "limit",
            f"{_R} Annex I Section 1 Table 1",
            allowed=18,
        ),
        Check(
            "so2-year-limit", "so2_ugm3", "year", 20.0, "limit", f"{_R} Annex I Section 1 Table 1"
        ),
        Check(
            "co-max8h-limit",
            "co_mgm3",
            "max8h",
            10.0,
            "limit",
            f"{_R} Annex I Section 1 Table 1",
            allowed=0,
        ),
        Check(
            "co-day-limit",
            "co_mgm3",
            "day",
            4.0,
            "limit",
            f"{_R} Annex I Section 1 Table 1",
            allowed=18,
        ),
        Check(
            "o3-max8h-target",
            "o3_ugm3",
            "max8h",
            120.0,
            "target",
            f"{_R} Annex I Section 2",
            allowed=18,
            note="18 days per calendar year averaged over three years; one year shown",
        ),
        # Section 4 thresholds: one third-party transcription (domain reference §1.2, VERIFY).
        Check(
            "so2-information",
            "so2_ugm3",
            "hour",
            275.0,
            "information",
            f"{_R} Annex I Section 4",
            verified=False,
        ),
        Check(
            "no2-information",
            "no2_ugm3",
            "hour",
            150.0,
            "information",
            f"{_R} Annex I Section 4",
            verified=False,
        ),
        Check(
            "no2-alert",
            "no2_ugm3",
            "hour",
            200.0,
            "alert",
            f"{_R} Annex I Section 4",
            hours=3,
            verified=False,
            note="three consecutive hours",
        ),
        Check(
            "pm25-information",
            "pm25_ugm3",
            "day",
            50.0,
            "information",
            f"{_R} Annex I Section 4",
            verified=False,
        ),
        Check(
            "pm10-information",
            "pm10_ugm3",
            "day",
            90.0,
            "information",
            f"{_R} Annex I Section 4",
            verified=False,
        ),
        Check("o3-information", "o3_ugm3", "hour", 180.0, "information", f"{_R} Annex I Section 4"),
        Check("o3-alert", "o3_ugm3", "hour", 240.0, "alert", f"{_R} Annex I Section 4"),
        # The SO2 alert threshold (350 or 500 µg/m³?) is deliberately absent: unconfirmed.
    ),
    notes=(
        "Data capture: 85 % for annual statistics (Annex V, as transcribed); 75 % of the"
        " hours for a 24-hour value.",
        "Section 4 information/alert thresholds marked unverified come from one"
        " transcription; the SO2 alert threshold is not encoded until checked.",
    ),
)

# -- WHO global air quality guidelines 2021 (AQG levels; optional, stricter) ---------------
_W = "WHO Global Air Quality Guidelines 2021"
_W99 = "99th percentile: 3-4 exceedance days per year tolerated"
WHO2021 = Pack(
    name="who2021",
    title="WHO Air Quality Guidelines 2021",
    source="https://www.who.int/publications/i/item/9789240034228",
    year_capture=0.85,
    checks=(
        Check("pm25-year-aqg", "pm25_ugm3", "year", 5.0, "guideline", f"{_W}, Table 0.1"),
        Check(
            "pm25-day-aqg",
            "pm25_ugm3",
            "day",
            15.0,
            "guideline",
            f"{_W}, Table 0.1",
            allowed=3,
            note=_W99,
        ),
        Check("pm10-year-aqg", "pm10_ugm3", "year", 15.0, "guideline", f"{_W}, Table 0.1"),
        Check(
            "pm10-day-aqg",
            "pm10_ugm3",
            "day",
            45.0,
            "guideline",
            f"{_W}, Table 0.1",
            allowed=3,
            note=_W99,
        ),
        Check(
            "o3-max8h-aqg",
            "o3_ugm3",
            "max8h",
            100.0,
            "guideline",
            f"{_W}, Table 0.1",
            allowed=3,
            note=_W99,
        ),
        Check("no2-year-aqg", "no2_ugm3", "year", 10.0, "guideline", f"{_W}, Table 0.1"),
        Check(
            "no2-day-aqg",
            "no2_ugm3",
            "day",
            25.0,
            "guideline",
            f"{_W}, Table 0.1",
            allowed=3,
            note=_W99,
        ),
        Check(
            "no2-hour-aqg",
            "no2_ugm3",
            "hour",
            200.0,
            "guideline",
            f"{_W}, Table 0.2 (2005 guideline, still valid)",
            allowed=0,
        ),
        Check(
            "so2-day-aqg",
            "so2_ugm3",
            "day",
            40.0,
            "guideline",
            f"{_W}, Table 0.1",
            allowed=3,
            note=_W99,
        ),
        Check(
            "co-day-aqg",
            "co_mgm3",
            "day",
            4.0,
            "guideline",
            f"{_W}, Table 0.1",
            allowed=3,
            note=_W99,
        ),
        Check(
            "co-max8h-aqg",
            "co_mgm3",
            "max8h",
            10.0,
            "guideline",
            f"{_W}, Table 0.2 (2000 guideline, still valid)",
            allowed=0,
        ),
    ),
    notes=(
        "WHO sets no data-capture rule; the 2024/2881 rules (75 % per period, 85 % per year)"
        " are applied here as our choice.",
        "The O3 peak-season guideline (60 µg/m³) needs a 6-month running mean and is not assessed.",
    ),
)

PACKS: Final[dict[str, Pack]] = {p.name: p for p in (EU2008, EU2030, WHO2021)}


def get_pack(name: str) -> Pack:
    try:
        return PACKS[name]
    except KeyError:
        known = ", ".join(PACKS)
        raise KeyError(f"unknown regulatory pack {name!r} (known: {known})") from None
