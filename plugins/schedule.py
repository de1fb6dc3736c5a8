"""Bot schedules: a bot with ``schedule: {days: [mon, tue], start: "09:00", end: "17:00"}``
works only then, in the account's time zone (``settings.timezone``), as Frappe's rule days.

Outside its schedule a bot does not apply: the outcome says why, and when routing the next
bot by priority is tried. Times are wall-clock times of the account's zone, so a schedule
keeps its hours across daylight-saving changes. The ``schedule`` key of a ruleset bot
belongs to this plugin (``SCHEDULE``).
"""

from __future__ import annotations

from datetime import datetime, time

from pydantic import Field, model_validator

from salesbot_core import Bot, hookimpl
from salesbot_core.fields import FieldSpec, answers_for
from salesbot_core.models import AccountSettings, Model
from salesbot_plugins.availability import WEEKDAYS, Weekday


class Schedule(Model):
    """When a bot works, in the account's time zone: on ``days``, from ``start`` up to
    (not including) ``end``; without ``end``, to the end of the day."""

    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1)
    start: time = time(0, 0)
    end: time | None = None

    @model_validator(mode="after")
    def _start_before_end(self) -> Schedule:
        if self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end")
        return self

    def why_not(self, local: datetime) -> str | None:
        """Why the bot does not work at ``local`` (a time of the account's zone), or None."""
        day = WEEKDAYS[local.weekday()]
        if day not in self.days:
            return f"outside the bot's schedule: it does not work on {day} ({local.tzinfo})"
        if local.time() < self.start or (self.end is not None and local.time() >= self.end):
            until = f"{self.end:%H:%M}" if self.end is not None else "24:00"
            return (
                f"outside the bot's schedule: it works {self.start:%H:%M}-{until}, "
                f"not at {local:%H:%M} ({local.tzinfo})"
            )
        return None


SCHEDULE: FieldSpec[Schedule | None] = FieldSpec(
    "bot",
    "schedule",
    Schedule | None,
    default=None,
    description="The weekdays and hours the bot works, in the account's time zone "
    "(settings.timezone); outside them it does not apply. None: always.",
)


@hookimpl
def salesbot_ruleset_fields() -> list[FieldSpec[Schedule | None]]:
    return [SCHEDULE]


@hookimpl
@answers_for(SCHEDULE)
def salesbot_bot_applies(bot: Bot, settings: AccountSettings, at: datetime) -> str | None:
    schedule = SCHEDULE.get(bot)
    return None if schedule is None else schedule.why_not(at.astimezone(settings.zone))
