"""Capacity caps: a user with ``caps: {day: 5}`` takes at most 5 records a day.

Calendar periods are days, weeks (from Monday) and months in the user's time zone; the
rolling windows ``last_24h`` and ``last_30_days`` end at the event's time, as Odoo counts
``assignment_max``. Both count the records bots assigned to the user (across the
account's bots). ``open`` counts what the user holds instead: the open records they own
now, however they got them (a bot, or a person assigning by hand). The engine counts
what the user's caps name and hands the counts in ``context.usage``; when every candidate
is full, the bot's fallback applies. The ``caps`` key of a ruleset user belongs to this
plugin (``CAPS``).
"""

from __future__ import annotations

from pydantic import Field

from salesbot_core import Bot, Context, User, hookimpl
from salesbot_core.fields import FieldSpec, answers_for
from salesbot_core.models import Model
from salesbot_core.strategy import RecordT


class Caps(Model):
    """The most records a user takes per period (across the account's bots), or holds open."""

    day: int | None = Field(default=None, ge=0)
    week: int | None = Field(default=None, ge=0)
    month: int | None = Field(default=None, ge=0)
    #: Assigned in the 24 hours up to the event.
    last_24h: int | None = Field(default=None, ge=0)
    #: Assigned in the 30 days up to the event (Odoo's ``assignment_max``).
    last_30_days: int | None = Field(default=None, ge=0)
    #: Open records owned now, by a bot's pick or by hand.
    open: int | None = Field(default=None, ge=0)

    def counted(self) -> list[str]:
        """The caps set, in the order they are checked."""
        return [name for name in type(self).model_fields if getattr(self, name) is not None]

    def limits(self) -> dict[str, int]:
        """Each cap set, by the count it limits (what the admin page shows beside it)."""
        return {name: getattr(self, name) for name in self.counted()}


CAPS: FieldSpec[Caps | None] = FieldSpec(
    "user",
    "caps",
    Caps | None,
    default=None,
    description="The most records the user takes per day, week and month of their time zone, "
    "in the last 24 hours or 30 days (rolling), or holds open at once (by a bot or by hand).",
    counts_usage=True,
    usage_kinds=Caps.counted,
    usage_limits=Caps.limits,
)

_NAMES = {
    "last_24h": "in the last 24 hours",
    "last_30_days": "in the last 30 days",
    "open": "open records owned",
}


@hookimpl
def salesbot_ruleset_fields() -> list[FieldSpec[Caps | None]]:
    return [CAPS]


@hookimpl
@answers_for(CAPS)
def salesbot_skip_candidate(bot: Bot, record: RecordT, user: User, context: Context) -> str | None:
    caps = CAPS.get(user)
    if caps is None:
        return None
    usage = context.usage.get(user.id, {})
    for period in caps.counted():
        cap = getattr(caps, period)
        if usage.get(period, 0) >= cap:
            return f"capacity reached: {cap} {_NAMES.get(period, f'per {period}')}"
    return None
