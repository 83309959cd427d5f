"""Unit normalisation: SenML names and units → the canonical quantities of `ecocluster.core.types`.

Gases given as mixing ratios (ppb, ppm) are converted to mass concentrations at the EU
reference conditions for gaseous pollutants (Directive 2008/50/EC, Annex VI: 293.15 K and
101.3 kPa): c[µg/m³] = ppb × M / Vm with Vm = R·T/p = 24.06 l/mol.
"""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = ["MOLAR_VOLUME_L", "Conversion", "canonical_quantity", "conversion_for"]

_R: Final = 8.314462618  # J/(mol·K)
#: Molar volume of an ideal gas at 20 °C and 101.3 kPa, litres per mole.
MOLAR_VOLUME_L: Final = _R * 293.15 / 101.3
_MOLAR_MASS_G: Final = {
    "no2_ugm3": 46.0055,
    "o3_ugm3": 47.9982,
    "so2_ugm3": 64.066,
    "co_mgm3": 28.010,
}


class Conversion(NamedTuple):
    """canonical = value × scale + offset."""

    quantity: str
    scale: float
    offset: float = 0.0


def _ppb_to_ugm3(quantity: str) -> float:
    return _MOLAR_MASS_G[quantity] / MOLAR_VOLUME_L


#: Accepted SenML record names (after the base name) for each quantity; the canonical
#: quantity name itself is always accepted too.
_ALIASES: Final[dict[str, str]] = {
    "energy": "energy_kwh",
    "energy_import": "energy_kwh",
    "water": "water_m3",
    "water_volume": "water_m3",
    "volume": "water_m3",
    "power": "power_w",
    "power_active": "power_w",
    "flow": "flow_lpm",
    "pm10": "pm10_ugm3",
    "pm25": "pm25_ugm3",
    "pm2.5": "pm25_ugm3",
    "no2": "no2_ugm3",
    "o3": "o3_ugm3",
    "so2": "so2_ugm3",
    "co": "co_mgm3",
    "co2": "co2_ppm",
    "temp": "temp_c",
    "temperature": "temp_c",
    "rh": "rh_pct",
    "humidity": "rh_pct",
}

#: The unit each quantity is stored in (what a record without a unit is assumed to use when
#: it names the canonical quantity).
_CANONICAL_UNIT: Final[dict[str, str]] = {
    "energy_kwh": "kWh",
    "water_m3": "m3",
    "power_w": "W",
    "flow_lpm": "l/min",
    "pm10_ugm3": "ug/m3",
    "pm25_ugm3": "ug/m3",
    "no2_ugm3": "ug/m3",
    "o3_ugm3": "ug/m3",
    "so2_ugm3": "ug/m3",
    "co_mgm3": "mg/m3",
    "co2_ppm": "ppm",
    "temp_c": "Cel",
    "rh_pct": "%RH",
}

_MASS_CONC = {"ug/m3": 1.0, "mg/m3": 1e3, "kg/m3": 1e9}
_FACTORS: Final[dict[str, dict[str, tuple[float, float]]]] = {
    "energy_kwh": {"kWh": (1.0, 0.0), "Wh": (1e-3, 0.0), "J": (1 / 3.6e6, 0.0), "MWh": (1e3, 0.0)},
    "water_m3": {"m3": (1.0, 0.0), "l": (1e-3, 0.0), "L": (1e-3, 0.0)},
    "power_w": {"W": (1.0, 0.0), "kW": (1e3, 0.0), "MW": (1e6, 0.0)},
    "flow_lpm": {
        "l/min": (1.0, 0.0),
        "l/s": (60.0, 0.0),
        "m3/h": (1000 / 60, 0.0),
        "m3/s": (60_000.0, 0.0),
    },
    "pm10_ugm3": {u: (f, 0.0) for u, f in _MASS_CONC.items()},
    "pm25_ugm3": {u: (f, 0.0) for u, f in _MASS_CONC.items()},
    "co2_ppm": {"ppm": (1.0, 0.0), "ppb": (1e-3, 0.0), "/": (1e6, 0.0)},
    "temp_c": {"Cel": (1.0, 0.0), "K": (1.0, -273.15)},
    "rh_pct": {"%RH": (1.0, 0.0), "%": (1.0, 0.0)},
    "co_mgm3": {
        "mg/m3": (1.0, 0.0),
        "ug/m3": (1e-3, 0.0),
        "kg/m3": (1e6, 0.0),
        "ppm": (_ppb_to_ugm3("co_mgm3"), 0.0),  # ppm → mg/m³ has the same factor as ppb → µg/m³
        "ppb": (_ppb_to_ugm3("co_mgm3") * 1e-3, 0.0),
    },
}
for _gas in ("no2_ugm3", "o3_ugm3", "so2_ugm3"):
    _FACTORS[_gas] = {
        **{u: (f, 0.0) for u, f in _MASS_CONC.items()},
        "ppb": (_ppb_to_ugm3(_gas), 0.0),
        "ppm": (_ppb_to_ugm3(_gas) * 1e3, 0.0),
    }


def canonical_quantity(name: str) -> str | None:
    """The quantity a SenML record name means, or None. `name` is the part after the base
    name's device prefix (`urn:dev:…:power` → `power`)."""
    if name in _CANONICAL_UNIT:
        return name
    return _ALIASES.get(name.lower())


def conversion_for(quantity: str, unit: str | None) -> Conversion | None:
    """How to turn a value in `unit` into `quantity`'s canonical unit; None if not convertible.

    A missing unit is accepted only as the canonical unit (the record named the quantity)."""
    table = _FACTORS.get(quantity)
    if table is None:
        return None
    if unit is None or unit == "":
        unit = _CANONICAL_UNIT[quantity]
    factor = table.get(unit)
    if factor is None:
        return None
    return Conversion(quantity, factor[0], factor[1])


def units_of(quantity: str) -> tuple[str, ...]:
    """The units accepted for a quantity (for error messages)."""
    return tuple(_FACTORS.get(quantity, {}))
