"""The European Environment Agency's European Air Quality Index (EAQI), as data.

    bands = band_of("pm25_ugm3", hourly_means)          # 1 (good) … 6 (extremely poor), 0 = none
    index = station_index({"pm25_ugm3": 12.0, "no2_ugm3": 30.0, "o3_ugm3": 70.0})
    index.band, index.level, index.pollutant            # 3, "moderate", "no2_ugm3"

**Version.** The index in force since the EEA's 2024 revision (ETC HE Report 2024/17,
"EEA's revision of the European Air Quality Index bands"; applied on airindex.eea.europa.eu
from 2025), whose bands follow the WHO 2021 guideline levels and the revised Ambient Air
Quality Directive (EU) 2024/2881. Two things changed from the 2017 index: the band limits
(below) and the averaging: the revised index uses **hourly concentrations of all five
pollutants** (the 2017 index used 24-hour running means for PM2.5 and PM10). The table
lives in `EAQI_2024` only; read 2026-12 from the EEA's index page (popup "Averaging time
for pollutants": "hourly concentrations of all five pollutants … are used") as quoted in
open-meteo/open-meteo#2045 and open-meteo-website#1158/#1166 (August 2026).

**Boundaries.** The EEA prints touching ranges ("0-5", "5-15", …). We read each range as
*upper bound included*: a value equal to a breakpoint is not above it, so it stays in the
lower (better) band: PM2.5 5.0 → good, 5.01 → fair. This is the reading the directive uses
for its own limits (an exceedance is strictly greater than the value: 2008/50/EC Annex XI,
`assess.py`) and the WHO guideline levels the bands are built on (PM2.5 24 h 15 µg/m³:
a day at 15 does not exceed it). No rounding is applied: 15.04 is above 15. Values below
zero (sensor offsets) count as good. The top band (extremely poor) is open-ended.

**Data capture.** A pollutant has a band only when its hourly value is valid under the
compliance packs' rule (`averaging.hour_grid`: ≥ 75 % of the hour covered, 2008/50/EC
Annex XI A); otherwise its band is None. Never a band from a couple of samples.

**Which pollutants a station needs** (EEA index page, "About the index", notes 1–2): a
traffic station gets an index only if it measures NO2 and PM (PM2.5 or PM10); any other
station (background, industrial) only if it measures NO2, O3 and PM. The EEA fills a missing
hour from the CAMS model; we have no model, so the station's index is None unless each
required group has a valid hourly value in that hour (`missing` names what is lacking).
The station's band is the worst band among its pollutants with valid data (SO2 included
where measured).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from ecocluster.core.types import FloatArray, IntArray

__all__ = [
    "EAQI_2024",
    "EAQI_POLLUTANTS",
    "EAQI_SOURCE",
    "LEVELS",
    "POLLUTANT_KEYS",
    "Level",
    "StationIndex",
    "StationType",
    "band_of",
    "level_of",
    "required_groups",
    "station_index",
]

Level = Literal["good", "fair", "moderate", "poor", "very_poor", "extremely_poor"]
StationType = Literal["background", "traffic", "industrial"]
LEVELS: Final[tuple[Level, ...]] = (
    "good",
    "fair",
    "moderate",
    "poor",
    "very_poor",
    "extremely_poor",
)

EAQI_SOURCE: Final = (
    "EEA European Air Quality Index, bands revised 2024 (ETC HE Report 2024/17), hourly"
    " concentrations of all five pollutants; https://airindex.eea.europa.eu"
)

#: Upper bounds (µg/m³, included) of bands 1–5 per pollutant; band 6 is everything above.
#: Source: EEA, revised EAQI bands (ETC HE Report 2024/17), read 2026-12; see module docstring.
EAQI_2024: Final[dict[str, tuple[float, float, float, float, float]]] = {
    "pm25_ugm3": (5.0, 15.0, 50.0, 90.0, 140.0),
    "pm10_ugm3": (15.0, 45.0, 120.0, 195.0, 270.0),
    "no2_ugm3": (10.0, 25.0, 60.0, 100.0, 150.0),
    "o3_ugm3": (60.0, 100.0, 120.0, 160.0, 180.0),
    "so2_ugm3": (20.0, 40.0, 125.0, 190.0, 275.0),
}
EAQI_POLLUTANTS: Final[tuple[str, ...]] = tuple(EAQI_2024)
#: The public (contract) names of the pollutants.
POLLUTANT_KEYS: Final[dict[str, str]] = {
    "pm25_ugm3": "pm2_5",
    "pm10_ugm3": "pm10",
    "no2_ugm3": "no2",
    "o3_ugm3": "o3",
    "so2_ugm3": "so2",
}
_PM: Final = frozenset({"pm25_ugm3", "pm10_ugm3"})


def band_of(quantity: str, values: FloatArray | float) -> IntArray:
    """The EAQI band (1 good … 6 extremely poor) of each hourly value; 0 where NaN.

    Upper bounds are included (see the module docstring): `band_of("pm25_ugm3", 5.0)` is 1.
    """
    limits = np.asarray(EAQI_2024[quantity], np.float64)
    v = np.atleast_1d(np.asarray(values, np.float64))
    bands = np.searchsorted(limits, v, side="left").astype(np.int64) + 1
    return np.where(np.isnan(v), 0, bands)


def level_of(band: int | None) -> Level | None:
    return None if not band else LEVELS[band - 1]


def required_groups(station_type: StationType) -> tuple[frozenset[str], ...]:
    """Groups of quantities a station needs one valid value of each (EEA notes 1–2)."""
    if station_type == "traffic":
        return (frozenset({"no2_ugm3"}), _PM)
    return (frozenset({"no2_ugm3"}), frozenset({"o3_ugm3"}), _PM)


@dataclass(frozen=True, slots=True)
class StationIndex:
    """A station's index for one hour: `band` None when a required pollutant lacks valid
    data (`missing` names the groups, e.g. ("o3_ugm3",) or ("pm10_ugm3|pm25_ugm3",));
    `bands` the band of every pollutant given (None where its hour is not valid)."""

    band: int | None
    pollutant: str | None
    bands: Mapping[str, int | None]
    missing: tuple[str, ...]

    @property
    def level(self) -> Level | None:
        return level_of(self.band)


def station_index(
    hourly: Mapping[str, float | None], station_type: StationType = "background"
) -> StationIndex:
    """The index of one station-hour from its valid hourly means (NaN or None = not valid;
    quantities other than the five EAQI pollutants are ignored). The worst band wins; on a
    tie the pollutant listed first in `EAQI_2024` is named."""
    bands: dict[str, int | None] = {}
    for q in EAQI_POLLUTANTS:
        if q not in hourly:
            continue
        value = hourly[q]
        b = 0 if value is None else int(band_of(q, float(value))[0])
        bands[q] = b or None
    valid = {q for q, b in bands.items() if b}
    missing = tuple(
        "|".join(sorted(group)) for group in required_groups(station_type) if not group & valid
    )
    if missing or not valid:
        return StationIndex(None, None, bands, missing)
    worst = max(valid, key=lambda q: (bands[q] or 0, -EAQI_POLLUTANTS.index(q)))
    return StationIndex(bands[worst], worst, bands, ())
