"""Weighted round robin: pool members in turn, each as often as their weight says.

``options: {weights: {anna: 3, bartek: 2, celina: 1}}`` gives anna three records, bartek
two and celina one out of every six. Pool users without a weight get 1. The turns are
spread out by the smooth weighted round robin algorithm (the one nginx uses): for 3:2:1
the cycle is anna, bartek, anna, celina, bartek, anna rather than anna, anna, anna, ...

The state is each pool user's current weight. On every pick each candidate's weight is
added to its current weight, the candidate with the highest current weight is picked
(ties: pool order) and the candidates' total weight is taken off the picked one. Users
who are not candidates (deactivated, out of office, full) keep their current weight, so
they neither catch up nor lose their place when they come back. The engine stores the
state in the same transaction as the assignment, so it survives restarts and crashes.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from salesbot_core import Pick, SelectRequest, Strategy, hookimpl
from salesbot_core.models import Model

#: ``true`` and ``"3"`` are not weights: strict, so YAML's loose scalars are refused.
Weight = Annotated[int, Field(strict=True, ge=1)]


class Options(Model):
    """``options`` of a weighted bot: each pool user's weight (a positive whole number)."""

    weights: dict[str, Weight] = Field(default_factory=dict)


def select(request: SelectRequest) -> Pick:
    """Pick the candidate with the highest current weight after adding each one's weight."""
    configured = Options.model_validate(request.bot.options).weights
    weights = {user: configured.get(user, 1) for user in request.candidates}
    current: dict[str, int] = dict(request.state.get("current", {}))
    for user in request.candidates:
        current[user] = current.get(user, 0) + weights[user]
    picked = request.candidates[0]
    for user in request.candidates[1:]:  # pool order: the first of equals wins
        if current[user] > current[picked]:
            picked = user
    current[picked] -= sum(weights.values())
    # Only pool users are kept, so the state stays as small as the pool.
    state = {"current": {user: current[user] for user in request.bot.users if user in current}}
    listed = ", ".join(f"{user} {weight}" for user, weight in weights.items())
    return Pick(user=picked, state=state, reason=f"weighted rotation (weights {listed})")


@hookimpl
def salesbot_register_strategies() -> list[Strategy]:
    return [
        Strategy(
            "weighted_round_robin",
            select,
            "pool members in turn, each as often as their weight",
            options=Options,
        )
    ]
