"""Capacity caps: a user with ``caps: {day: 5}`` takes at most 5 records a day.

Periods are calendar days, weeks (from Monday) and months in the user's time zone; the
engine counts the user's assignments in each (across the account's bots) and hands the
counts in ``context.usage``. When every candidate is full, the bot's fallback applies.
The ``caps`` key of a ruleset user belongs to this plugin (``CAPS``).
"""

from __future__ import annotations

from pydantic import Field

from salesbot_core import Bot, Context, User, hookimpl
from salesbot_core.fields import FieldSpec
from salesbot_core.models import Model
from salesbot_core.strategy import RecordT


class Caps(Model):
    """The most records a user takes per calendar period (across the account's bots)."""

    day: int | None = Field(default=None, ge=0)
    week: int | None = Field(default=None, ge=0)
    month: int | None = Field(default=None, ge=0)


CAPS: FieldSpec[Caps | None] = FieldSpec(
    "user",
    "caps",
    Caps | None,
    default=None,
    description="The most records the user takes per day, week and month of their time zone.",
    counts_usage=True,
)


@hookimpl
def salesbot_ruleset_fields() -> list[FieldSpec[Caps | None]]:
    return [CAPS]


@hookimpl
def salesbot_skip_candidate(bot: Bot, record: RecordT, user: User, context: Context) -> str | None:
    caps = CAPS.get(user)
    if caps is None:
        return None
    usage = context.usage.get(user.id, {})
    for period in ("day", "week", "month"):
        cap = getattr(caps, period)
        if cap is not None and usage.get(period, 0) >= cap:
            return f"capacity reached: {cap} per {period}"
    return None
