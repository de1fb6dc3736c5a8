"""Capacity caps: a user with ``caps: {day: 5}`` takes at most 5 records a day.

Periods are calendar days, weeks (from Monday) and months in the user's time zone; the
engine counts the user's assignments in each (across the account's bots) and hands the
counts in ``context.usage``. When every candidate is full, the bot's fallback applies.
"""

from __future__ import annotations

from collections.abc import Sequence

from salesbot_core import Bot, Context, Skip, User, hookimpl
from salesbot_core.strategy import RecordT


@hookimpl
def salesbot_filter_candidates(
    bot: Bot, record: RecordT, candidates: Sequence[User], context: Context
) -> list[Skip]:
    skips = []
    for user in candidates:
        if user.caps is None:
            continue
        usage = context.usage.get(user.id, {})
        for period in ("day", "week", "month"):
            cap = getattr(user.caps, period)
            if cap is not None and usage.get(period, 0) >= cap:
                skips.append(Skip(user=user.id, reason=f"capacity reached: {cap} per {period}"))
                break
    return skips
