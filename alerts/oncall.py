"""Who is on duty: on-call rotations with hand-offs in local time, and overrides (pure).

A rotation's shifts start at the hand-off time on local dates, so a shift spanning a
daylight-saving change is an hour shorter or longer in UTC but always hands off at 09:00 on
the wall clock. Overrides (holidays, swaps) are local times of the schedule; the last one
listed wins where they overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ecocluster.core.alerting import WEEKDAYS, Override, Schedule

__all__ = ["OnDuty", "on_duty", "on_duty_now_and_next"]


@dataclass(frozen=True, slots=True)
class OnDuty:
    schedule: str
    contact: str
    since: datetime
    until: datetime
    override: Override | None = None


def _anchor(schedule: Schedule) -> date:
    if schedule.rotation == "daily":
        return schedule.start
    ahead = (WEEKDAYS.index(schedule.handoff_day) - schedule.start.weekday()) % 7
    return schedule.start + timedelta(days=ahead)


def _local(value: datetime, tz: ZoneInfo) -> datetime:
    return value.replace(tzinfo=tz) if value.tzinfo is None else value.astimezone(tz)


def _shift(schedule: Schedule, local: datetime, tz: ZoneInfo) -> tuple[str, datetime, datetime]:
    handoff = schedule.handoff_time
    shift_date = local.date() if local.time() >= handoff else local.date() - timedelta(days=1)
    days = schedule.shift_length * (7 if schedule.rotation == "weekly" else 1)
    anchor = _anchor(schedule)
    index = (shift_date - anchor).days // days
    start_date = anchor + timedelta(days=index * days)
    start = datetime.combine(start_date, handoff, tz)
    end = datetime.combine(start_date + timedelta(days=days), handoff, tz)
    return schedule.members[index % len(schedule.members)], start, end


def on_duty(schedule: Schedule, at: datetime, default_tz: str) -> OnDuty:
    """Who answers for `schedule` at `at` (an aware datetime), and from when until when."""
    tz = ZoneInfo(schedule.timezone or default_tz)
    local = at.astimezone(tz)
    member, since, until = _shift(schedule, local, tz)
    covering = None
    for override in schedule.overrides:
        start, end = _local(override.start, tz), _local(override.end, tz)
        if start <= local < end:
            covering = override
        elif local < start < until:
            until = start  # an override takes over before this shift ends
    if covering is not None:
        start, end = _local(covering.start, tz), _local(covering.end, tz)
        return OnDuty(schedule.name, covering.contact, start, min(end, until), covering)
    return OnDuty(schedule.name, member, since, until)


def on_duty_now_and_next(
    schedule: Schedule, at: datetime, default_tz: str
) -> tuple[OnDuty, OnDuty]:
    now = on_duty(schedule, at, default_tz)
    return now, on_duty(schedule, now.until, default_tz)
