"""Availability from the ruleset: out-of-office periods and working hours, per user time zone.

A host with a real calendar implements ``salesbot_user_available`` in its own plugin (and
may block this one by name, ``salesbot_plugins.availability``).
"""

from __future__ import annotations

from datetime import datetime

from salesbot_core import User, hookimpl
from salesbot_core.models import WEEKDAYS


def _local(moment: datetime, user: User) -> datetime:
    """``moment`` in the user's zone; a naive time (from a ruleset) is the user's wall clock."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=user.zone)
    return moment.astimezone(user.zone)


@hookimpl
def salesbot_user_available(user: User, at: datetime) -> str | None:
    local = _local(at, user)
    for absence in user.out_of_office:
        if _local(absence.start, user) <= local < _local(absence.end, user):
            return f"{absence.reason} until {_local(absence.end, user).isoformat()}"
    hours = user.working_hours
    if hours is not None:
        day = WEEKDAYS[local.weekday()]
        if day not in hours.days:
            return f"does not work on {day} ({user.timezone})"
        if not hours.start <= local.time() < hours.end:
            return (
                f"outside working hours {hours.start:%H:%M}-{hours.end:%H:%M} ({local:%H:%M} {user.timezone})"
            )
    return None
