"""Public holidays the territory's calendar knows: one source for the simulator's profiles
and the rules' baselines (a holiday looks like a Sunday to both)."""

from __future__ import annotations

from datetime import date

__all__ = ["ITALIAN_FIXED_HOLIDAYS", "easter_sunday"]

#: Italian national holidays on fixed dates, (month, day): New Year, Epiphany, Liberation,
#: Labour Day, Republic Day, Assumption, All Saints, Immaculate Conception, Christmas,
#: St Stephen. Easter Monday moves with `easter_sunday`.
ITALIAN_FIXED_HOLIDAYS: tuple[tuple[int, int], ...] = (
    (1, 1), (1, 6), (4, 25), (5, 1), (6, 2), (8, 15), (11, 1), (12, 8), (12, 25), (12, 26),
)  # fmt: skip


def easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)
