"""Business-time arithmetic: when does "within 2 h of working time" end for a user?

Time counts only inside the user's working hours (the ``working_hours`` of the
availability plugin, in the user's time zone) and outside their out-of-office periods.
Everything is computed on absolute instants: each working day's start and end are wall
times of the user's zone turned into instants, so a day that a DST change makes 7 or 9
hours long counts 7 or 9 hours, and a weekend over a DST change moves the deadline by wall
time, not by a fixed offset.

Pure functions, no I/O: the SLA plugin calls them when a bot assigns a record.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .availability import WEEKDAYS, Absence, WorkingHours

#: How far ahead a deadline is looked for. An SLA whose working time cannot be found
#: within this horizon (an absence of years, no working day) has no deadline.
HORIZON = timedelta(days=5 * 366)

Interval = tuple[datetime, datetime]


def _instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The instant of a wall time on a day in ``zone``. A wall time skipped by a DST change
    (02:30 on a spring-forward night) is the instant the clock jumps over it; a repeated
    one (an autumn night) is its first occurrence."""
    local = datetime.combine(day, wall, tzinfo=zone)
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
        return instant
    # In a gap: the jump lies between the wall time read with the offsets of either side;
    # find the first instant whose wall time is past it (to the second).
    low, high = local.replace(fold=1).astimezone(UTC), instant
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= local.replace(tzinfo=None):
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def _aware(moment: datetime, zone: ZoneInfo) -> datetime:
    """An instant; a naive time (written in a ruleset) is the user's wall clock."""
    return (moment.replace(tzinfo=zone) if moment.tzinfo is None else moment).astimezone(UTC)


def working_intervals(start: datetime, hours: WorkingHours | None, zone: ZoneInfo) -> Iterator[Interval]:
    """The user's working intervals from ``start`` on (the first one clipped to it), in
    order, as UTC instants, up to ``HORIZON``. No working hours: one interval, all time."""
    start = start.astimezone(UTC)
    end_of_search = start + HORIZON
    if hours is None:
        yield start, end_of_search
        return
    day = start.astimezone(zone).date() - timedelta(days=1)  # a night shift may start the day before
    while True:
        opens = _instant(day, hours.start, zone)
        if opens >= end_of_search:
            return
        if WEEKDAYS[day.weekday()] in hours.days:
            closes = _instant(day, hours.end, zone)
            if closes > start:
                yield max(opens, start), closes
        day += timedelta(days=1)


def _without(interval: Interval, absences: Sequence[Interval]) -> Iterator[Interval]:
    """The parts of ``interval`` outside every absence (absences sorted by start)."""
    begin, end = interval
    for away_from, away_until in absences:
        if away_until <= begin or away_from >= end:
            continue
        if away_from > begin:
            yield begin, away_from
        begin = max(begin, away_until)
        if begin >= end:
            return
    yield begin, end


def business_deadline(
    start: datetime,
    within: timedelta,
    *,
    hours: WorkingHours | None,
    absences: Sequence[Absence],
    zone: ZoneInfo,
) -> datetime | None:
    """The instant (UTC) at which ``within`` of the user's working time has passed since
    ``start``; ``None`` if that is not within ``HORIZON``.

    A ``start`` outside working hours starts the clock when the next working interval
    opens; an absence stops it. ``within`` of zero is the first working instant.
    """
    if within < timedelta(0):
        raise ValueError("within must not be negative")
    away = sorted((_aware(a.start, zone), _aware(a.end, zone)) for a in absences)
    left = within
    for interval in working_intervals(start, hours, zone):
        for begin, end in _without(interval, away):
            if begin + left <= end:
                return begin + left
            left -= end - begin
    return None
