"""Emission factors: kg CO2e per unit of a register quantity, each with its year and source.

The territory's `emission_factors:` in the cluster file win. The defaults below hold only
factors whose value we could check in a primary-derived source; the Italian grid factor is
deliberately *not* defaulted: the ISPRA table "Fattori di emissione per la produzione ed il
consumo di energia elettrica in Italia" (1990-2023 edition, 2025) was not retrievable here,
and the third-party copies of it disagree (0.233-0.283 kg/kWh; domain reference §4.3). Put
ISPRA's *consumption* factor for the reporting year in the cluster file:

    territory: {…, emission_factors: {energy_kwh: {kg_per_unit: <ISPRA>, year: 2023,
                source: "ISPRA, Fattori di emissione … consumo di energia elettrica, 2025"}}}

Reports say which factor (value, year, source) produced each CO2e figure, and say so
plainly when none is configured, instead of inventing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ecocluster.core.registry import Cluster

__all__ = ["DEFAULT_FACTORS", "NATURAL_GAS_SM3", "EmissionFactor", "factor_for"]


@dataclass(frozen=True, slots=True)
class EmissionFactor:
    kg_per_unit: float
    unit: str
    year: int
    source: str


#: Natural gas combustion (Scope 1), Italian ETS national standard parameters (table of
#: 12 Feb 2019, 2015-2017 averages): 55.934 t CO2/TJ × 35.253 GJ/1000 Sm³ = 1.972 kg/Sm³.
#: No register quantity carries gas yet; kept for the day one does.
NATURAL_GAS_SM3: Final = EmissionFactor(
    1.972,
    "Sm³",
    2019,
    "MASE/ISPRA, tabella parametri standard nazionali ETS (12 Feb 2019), 55.934 t CO2/TJ,"
    " PCI 35.253 GJ/1000 Sm³",
)
#: Defaults per register quantity: none verified for electricity or water (see above).
DEFAULT_FACTORS: Final[dict[str, EmissionFactor]] = {}
_UNITS: Final = {"energy_kwh": "kWh", "water_m3": "m³"}


def factor_for(cluster: Cluster, quantity: str) -> EmissionFactor | None:
    """The configured factor for `quantity`, else the default, else None (no CO2e)."""
    spec = getattr(cluster.territory, "emission_factors", {}).get(quantity)
    if spec is not None:
        return EmissionFactor(spec.kg_per_unit, _UNITS[quantity], spec.year, spec.source)
    return DEFAULT_FACTORS.get(quantity)
