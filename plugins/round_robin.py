"""Round robin: each pool member in turn, continuing after the last user picked.

The state is the last user picked and the pool as it was then, not an index: the
rotation continues from that user when candidates are skipped, and when the pool is
edited nobody is favoured or skipped. If the last user left the pool, the turn passes to
the first user after them (in the old order) who is still in it; a new member takes
their turn when the rotation reaches their place. The engine stores the state in the same
transaction as the assignment, so it survives restarts and crashes.
"""

from __future__ import annotations

from collections.abc import Sequence

from salesbot_core import Pick, SelectRequest, Strategy, hookimpl


def _start(pool: Sequence[str], last: str | None, old_pool: Sequence[str]) -> int:
    """Where in ``pool`` the rotation goes on after ``last``."""
    if last in pool:
        return pool.index(last) + 1
    if last in old_pool:
        at = old_pool.index(last)
        for user in [*old_pool[at + 1 :], *old_pool[:at]]:
            if user in pool:
                return pool.index(user)
    return 0


def select(request: SelectRequest) -> Pick:
    """Pick the first candidate after the last user picked, in pool order."""
    pool = request.bot.users
    last = request.state.get("last")
    start = _start(pool, last, request.state.get("pool", pool))
    candidates = set(request.candidates)
    for offset in range(len(pool)):
        user = pool[(start + offset) % len(pool)]
        if user in candidates:
            reason = f"next in rotation after {last!r}" if last else "first in rotation"
            return Pick(user=user, state={"last": user, "pool": list(pool)}, reason=reason)
    raise AssertionError("the engine never calls a strategy without candidates")


@hookimpl
def salesbot_register_strategies() -> list[Strategy]:
    return [Strategy("round_robin", select, "each pool member in turn")]
