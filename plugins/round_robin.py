"""Round robin: each pool member in turn, continuing after the last user picked.

The state is the id of the last user picked, not an index: the rotation continues from
that user when candidates are skipped or the pool is reordered, and it survives restarts
because the engine stores it in the same transaction as the assignment.
"""

from __future__ import annotations

from salesbot_core import Pick, SelectRequest, Strategy, hookimpl


def select(request: SelectRequest) -> Pick:
    """Pick the first candidate after the last user picked, in pool order."""
    pool = request.bot.users
    last = request.state.get("last")
    start = pool.index(last) + 1 if last in pool else 0
    candidates = set(request.candidates)
    for offset in range(len(pool)):
        user = pool[(start + offset) % len(pool)]
        if user in candidates:
            reason = f"next in rotation after {last!r}" if last else "first in rotation"
            return Pick(user=user, state={"last": user}, reason=reason)
    raise AssertionError("the engine never calls a strategy without candidates")


@hookimpl
def salesbot_register_strategies() -> list[Strategy]:
    return [Strategy("round_robin", select, "each pool member in turn")]
