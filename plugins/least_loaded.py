"""Least loaded: the candidate who owns the fewest open records of the record's entity.

The engine counts, inside the event's transaction, the open records of the entity (a
deal bot counts deals only) each pool user owns in the account, whoever assigned them;
closed records (``open: false``) do not count. Among candidates with equally few, the
turn goes round as in round robin: the first of them in pool order after the last user
this bot picked. The state is that user, ``{"last": user}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from salesbot_core import Pick, SelectRequest, Strategy, hookimpl
from salesbot_core.safetext import excerpt


def validate_options(options: Mapping[str, Any]) -> list[str]:
    """The strategy takes no options."""
    return [f"unknown option {excerpt(key)}: least_loaded takes no options" for key in options]


def select(request: SelectRequest) -> Pick:
    """Pick the candidate with the fewest open records; ties go round in pool order."""
    load = request.context.load
    fewest = min(load.get(user, 0) for user in request.candidates)
    tied = {user for user in request.candidates if load.get(user, 0) == fewest}
    pool = request.bot.users
    last = request.state.get("last")
    start = pool.index(last) + 1 if last in pool else 0
    for offset in range(len(pool)):
        user = pool[(start + offset) % len(pool)]
        if user in tied:
            reason = f"fewest open {request.record.entity} records ({fewest})"
            if len(tied) > 1:
                others = ", ".join(u for u in pool if u in tied and u != user)
                reason += f"; tied with {others}, next in rotation"
            return Pick(user=user, state={"last": user}, reason=reason)
    raise AssertionError("the engine never calls a strategy without candidates")


@hookimpl
def salesbot_register_strategies() -> list[Strategy]:
    return [
        Strategy(
            "least_loaded",
            select,
            "the candidate with the fewest open records of the entity",
            validate_options=validate_options,
            needs_load=True,
        )
    ]
