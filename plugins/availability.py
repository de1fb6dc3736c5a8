"""Availability from the ruleset: out-of-office periods and working hours, per user time zone.

The ``working_hours`` and ``out_of_office`` keys of a ruleset user belong to this plugin.
A host with a real calendar implements ``salesbot_user_available`` in its own plugin (and
may block this one by name, ``salesbot_plugins.availability``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time
from typing import Any, Literal

from pydantic import Field, model_validator

from salesbot_core import User, hookimpl
from salesbot_core.fields import FieldSpec, answers_for
from salesbot_core.models import Model

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class WorkingHours(Model):
    """When a user takes records, in the user's time zone."""

    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS[:5]), min_length=1)
    start: time = time(9, 0)
    end: time = time(17, 0)

    @model_validator(mode="after")
    def _start_before_end(self) -> WorkingHours:
        if self.start >= self.end:
            raise ValueError("start must be before end")
        return self


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Absence(Model):
    """A period out of office, from ``start`` up to (not including) ``end``."""

    start: datetime
    end: datetime
    reason: str = "out of office"

    @model_validator(mode="after")
    def _start_before_end(self) -> Absence:
        if _aware(self.start) >= _aware(self.end):
            raise ValueError("start must be before end")
        return self


WORKING_HOURS: FieldSpec[WorkingHours | None] = FieldSpec(
    "user",
    "working_hours",
    WorkingHours | None,
    default=None,
    description="When the user takes records, in their time zone; none: any time.",
)
OUT_OF_OFFICE: FieldSpec[Sequence[Absence]] = FieldSpec(
    "user",
    "out_of_office",
    list[Absence],
    default=(),
    description="Periods the user takes no records (start included, end not).",
)


@hookimpl
def salesbot_ruleset_fields() -> list[FieldSpec[Any]]:
    return [WORKING_HOURS, OUT_OF_OFFICE]


def _local(moment: datetime, user: User) -> datetime:
    """``moment`` in the user's zone; a naive time (from a ruleset) is the user's wall clock."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=user.zone)
    return moment.astimezone(user.zone)


@hookimpl
@answers_for(OUT_OF_OFFICE, WORKING_HOURS)
def salesbot_user_available(user: User, at: datetime) -> str | None:
    absences, hours = OUT_OF_OFFICE.get(user), WORKING_HOURS.get(user)
    if not absences and hours is None:
        return None  # most users: no time zone arithmetic for each candidate of each event
    local = _local(at, user)
    for absence in absences:
        if _local(absence.start, user) <= local < _local(absence.end, user):
            return f"{absence.reason} until {_local(absence.end, user).isoformat()}"
    if hours is not None:
        day = WEEKDAYS[local.weekday()]
        if day not in hours.days:
            return f"does not work on {day} ({user.timezone})"
        if not hours.start <= local.time() < hours.end:
            return (
                f"outside working hours {hours.start:%H:%M}-{hours.end:%H:%M} ({local:%H:%M} {user.timezone})"
            )
    return None
