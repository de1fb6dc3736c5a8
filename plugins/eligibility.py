"""Who in a pool may get a record: deactivated users never do."""

from __future__ import annotations

from collections.abc import Sequence

from salesbot_core import Bot, Skip, User, hookimpl
from salesbot_core.strategy import RecordT


@hookimpl
def salesbot_filter_candidates(bot: Bot, record: RecordT, candidates: Sequence[User]) -> list[Skip]:
    return [Skip(user=u.id, reason="user is deactivated") for u in candidates if not u.active]
