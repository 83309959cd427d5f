"""Territory indicators (EMAS Annex IV style): energy, water and CO2e per organisation,
site, month and day from register deltas; ratios against registry attributes; trend and
shares. See `compute.py` and, for emission factors and their sources, `factors.py`."""

from __future__ import annotations

from ecocluster.rules.indicators.compute import (
    QUANTITIES,
    IndicatorReport,
    QuantityIndicators,
    territory_indicators,
)
from ecocluster.rules.indicators.factors import (
    DEFAULT_FACTORS,
    NATURAL_GAS_SM3,
    EmissionFactor,
    factor_for,
)

__all__ = [
    "DEFAULT_FACTORS",
    "NATURAL_GAS_SM3",
    "QUANTITIES",
    "EmissionFactor",
    "IndicatorReport",
    "QuantityIndicators",
    "factor_for",
    "territory_indicators",
]
