"""Physical signals by site category: what the meters of a site would measure.

Each family is one module: `schedules` (occupancy by category, local time), `weather`
(one regional weather shared by all sites), `energy` (power), `water` (flow), `air`
(outdoor pollutants) and `indoor` (CO2, room climate). `signals()` dispatches on the
quantities a meter reports and returns the physical values at every base-grid step;
registers are integrated from them by the generator.
"""

from __future__ import annotations

from .signals import signals

__all__ = ["signals"]
