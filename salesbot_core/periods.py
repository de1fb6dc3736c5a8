"""Periods for capacity caps: when the current day, week and month begin and end, and the
rolling windows that end at the event."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

#: The calendar periods of the user's time zone, counted when a field does not say which.
CALENDAR: tuple[str, ...] = ("day", "week", "month")
#: Rolling windows, as Odoo counts ``assignment_max`` (the last 30 days): the window's
#: length before the event's time, that instant included.
ROLLING: dict[str, timedelta] = {"last_24h": timedelta(hours=24), "last_30_days": timedelta(days=30)}
#: Not a period: the open records a user owns now, however they got them (a bot or a
#: person), counted by ``Transaction.count_open_owned``.
OPEN_OWNED = "open"
#: Every count a ``counts_usage`` field may ask for.
USAGE_KINDS: tuple[str, ...] = (*CALENDAR, *ROLLING, OPEN_OWNED)
_TICK = timedelta(microseconds=1)  # stores keep instants to the microsecond


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


def usage_bounds(now: datetime, zone: ZoneInfo, kinds: Iterable[str]) -> dict[str, tuple[datetime, datetime]]:
    """``(start, end)`` of each calendar period and rolling window among ``kinds`` (the
    start included, the end excluded; ``open`` is not a period and is left out).

    A rolling window ends just after ``now``: the event's own instant is inside it, and,
    as with calendar periods, an assignment made for a later time (an event delivered out
    of order) does not count against an earlier one.
    """
    wanted = set(kinds)
    bounds = {period: span for period, span in period_bounds(now, zone).items() if period in wanted}
    end = now.astimezone(UTC) + _TICK
    bounds |= {window: (end - length, end) for window, length in ROLLING.items() if window in wanted}
    return bounds
