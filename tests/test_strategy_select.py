"""Each built-in strategy's ``select`` on its own: a pure function from a request to a pick.

Exact picks, reasons and states, with no engine and no store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from salesbot_core import Pick, SelectRequest
from salesbot_core.models import Bot, Deal
from salesbot_core.strategy import Context
from salesbot_plugins import least_loaded, round_robin, weighted_round_robin

POOL = ["anna", "bartek", "celina"]


def request(
    candidates: Sequence[str] = POOL,
    state: Mapping[str, Any] | None = None,
    pool: Sequence[str] = POOL,
    load: Mapping[str, int] | None = None,
    **options: Any,
) -> SelectRequest:
    bot = Bot(id="inbound", users=list(pool), options=options)
    context = Context(datetime(2026, 3, 10, tzinfo=UTC), load=load or {})
    return SelectRequest(bot, Deal(id="d1"), tuple(candidates), state or {}, context)


def run(select: Callable[[SelectRequest], Pick], count: int, **kwargs: Any) -> tuple[list[str], Any]:
    """``count`` picks in a row, each fed the previous state; the users and the last state."""
    state: Mapping[str, Any] = kwargs.pop("state", {})
    users = []
    for _ in range(count):
        pick = select(request(state=state, **kwargs))
        users.append(pick.user)
        state = pick.state
    return users, state


# round_robin


def test_round_robin_first_pick() -> None:
    assert round_robin.select(request()) == Pick(
        user="anna", state={"last": "anna", "pool": POOL}, reason="first in rotation"
    )


def test_round_robin_goes_on_after_the_last_and_wraps() -> None:
    pick = round_robin.select(request(state={"last": "celina", "pool": POOL}))
    assert pick == Pick(
        user="anna", state={"last": "anna", "pool": POOL}, reason="next in rotation after 'celina'"
    )
    assert run(round_robin.select, 4)[0] == ["anna", "bartek", "celina", "anna"]


def test_round_robin_a_skipped_user_loses_that_turn_only() -> None:
    pick = round_robin.select(request(candidates=["anna", "celina"], state={"last": "anna", "pool": POOL}))
    assert (pick.user, pick.state) == ("celina", {"last": "celina", "pool": POOL})
    assert round_robin.select(request(state=pick.state)).user == "anna"


def test_round_robin_the_last_user_left_the_pool_the_next_one_still_in_it_goes() -> None:
    new_pool = ["anna", "celina"]
    pick = round_robin.select(request(new_pool, {"last": "bartek", "pool": POOL}, pool=new_pool))
    assert (pick.user, pick.state) == ("celina", {"last": "celina", "pool": new_pool})


def test_round_robin_a_new_member_takes_their_turn_at_their_place() -> None:
    new_pool = ["anna", "dora", "bartek", "celina"]
    users, _ = run(
        round_robin.select, 4, candidates=new_pool, pool=new_pool, state={"last": "anna", "pool": POOL}
    )
    assert users == ["dora", "bartek", "celina", "anna"]


# weighted_round_robin


def test_weighted_three_two_one_is_spread_out_and_exact() -> None:
    weights = {"anna": 3, "bartek": 2, "celina": 1}
    users, state = run(weighted_round_robin.select, 6, weights=weights)
    assert users == ["anna", "bartek", "anna", "celina", "bartek", "anna"]
    assert state == {"current": {"anna": 0, "bartek": 0, "celina": 0}}  # a full cycle ends where it began


def test_weighted_first_pick_state_and_reason() -> None:
    pick = weighted_round_robin.select(request(weights={"anna": 3, "bartek": 2}))
    assert pick == Pick(
        user="anna",
        state={"current": {"anna": -3, "bartek": 2, "celina": 1}},
        reason="weighted rotation (weights anna 3, bartek 2, celina 1)",
    )


def test_weighted_a_user_who_is_not_a_candidate_keeps_their_current_weight() -> None:
    state = {"current": {"anna": -3, "bartek": 2, "celina": 1}}
    pick = weighted_round_robin.select(request(["anna", "celina"], state, weights={"anna": 3, "bartek": 2}))
    assert (pick.user, pick.state) == ("celina", {"current": {"anna": 0, "bartek": 2, "celina": -2}})


def test_weighted_equal_weights_are_plain_rotation_ties_in_pool_order() -> None:
    assert run(weighted_round_robin.select, 4)[0] == ["anna", "bartek", "celina", "anna"]


def test_weighted_state_keeps_only_pool_users() -> None:
    pick = weighted_round_robin.select(request(state={"current": {"gone": 7, "anna": 0}}))
    assert pick.state == {"current": {"anna": -2, "bartek": 1, "celina": 1}}


# least_loaded


def test_least_loaded_picks_the_fewest_open_records() -> None:
    pick = least_loaded.select(request(load={"anna": 4, "bartek": 1, "celina": 2}))
    assert pick == Pick(user="bartek", state={"last": "bartek"}, reason="fewest open deal records (1)")


def test_least_loaded_users_without_a_count_have_none() -> None:
    assert least_loaded.select(request(load={"anna": 1, "bartek": 1})).user == "celina"


def test_least_loaded_ties_go_round_after_the_last_pick() -> None:
    pick = least_loaded.select(request(state={"last": "anna"}, load={"anna": 0, "bartek": 0, "celina": 0}))
    assert pick == Pick(
        user="bartek",
        state={"last": "bartek"},
        reason="fewest open deal records (0); tied with anna, celina, next in rotation",
    )
    assert run(least_loaded.select, 4)[0] == ["anna", "bartek", "celina", "anna"]


def test_least_loaded_only_candidates_count() -> None:
    pick = least_loaded.select(request(["anna", "celina"], load={"anna": 3, "bartek": 0, "celina": 5}))
    assert pick.user == "anna"


@pytest.mark.parametrize("select", [round_robin.select, weighted_round_robin.select, least_loaded.select])
def test_a_single_candidate_is_always_picked(select: Callable[[SelectRequest], Pick]) -> None:
    for state in ({}, {"last": "celina", "pool": POOL}):
        assert select(request(["bartek"], state)).user == "bartek"
