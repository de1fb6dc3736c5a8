"""Who in a pool may get a record: deactivated users never do."""

from __future__ import annotations

from salesbot_core import Bot, User, hookimpl
from salesbot_core.strategy import RecordT


@hookimpl
def salesbot_skip_candidate(bot: Bot, record: RecordT, user: User) -> str | None:
    return None if user.active else "user is deactivated"
