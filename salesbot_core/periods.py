"""Calendar periods for capacity caps: when the current day, week and month begin and end."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo


def period_bounds(now: datetime, zone: ZoneInfo) -> dict[str, tuple[datetime, datetime]]:
    """The day, the week (from Monday) and the month containing ``now`` in ``zone``, each
    as ``(start, end)``: aware UTC datetimes, the start included and the end excluded.

    Both bounds matter: events may arrive out of order, so an assignment made for a later
    day must not count against an earlier day's cap.
    """
    local = now.astimezone(zone)
    day = local.date()
    week = day - timedelta(days=day.weekday())
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    dates = {
        "day": (day, day + timedelta(days=1)),
        "week": (week, week + timedelta(days=7)),
        "month": (month, next_month),
    }

    # Each bound is midnight on its wall-clock date, so a DST change inside the period
    # does not shift it by an hour.
    def midnight(d: date) -> datetime:
        return datetime(d.year, d.month, d.day, tzinfo=zone).astimezone(UTC)

    return {period: (midnight(start), midnight(end)) for period, (start, end) in dates.items()}
