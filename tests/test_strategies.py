"""Weighted round robin and least loaded: exact picks through the engine and ruleset files."""

from __future__ import annotations

from collections import Counter
from itertools import groupby
from pathlib import Path
from typing import Any

import pytest

from factories import TEAM, deal_event
from salesbot_core import Engine, RulesetError


def bot_rules(write_rules, bot: str, team: str = TEAM) -> Path:
    """The team and one deal bot, ``inbound``, in ``inbound.yaml``."""
    return write_rules(**{"team.yaml": team, "inbound.yaml": "bots:\n" + bot})


WEIGHTED = """
  - id: inbound
    users: [anna, bartek, celina]
    strategy: weighted_round_robin
    options: {weights: {anna: 3, bartek: 2, celina: 1}}
"""

#: One cycle of smooth weighted round robin for 3:2:1 (ties go to the first in pool order).
CYCLE = ["anna", "bartek", "anna", "celina", "bartek", "anna"]


def owners(engine: Engine, numbers: range) -> list[str]:
    return [engine.handle(deal_event(n)).owners_after[0] for n in numbers]


# Weighted round robin


def test_weighted_three_two_one_over_600_deals(write_rules, tmp_path: Path) -> None:
    with Engine(bot_rules(write_rules, WEIGHTED), tmp_path / "s.db") as engine:
        picked = owners(engine, range(600))
        first, last = (engine.explain("default", "deal", d)[0].decisions[0] for d in ("d0", "d599"))
    assert Counter(picked) == {"anna": 300, "bartek": 200, "celina": 100}
    assert picked[:12] == CYCLE + CYCLE
    assert picked == CYCLE * 100
    # Smooth: nobody gets two in a row except anna across the seam of two cycles (she
    # ends one and starts the next), 99 times; never three in a row.
    runs = [(user, len(list(group))) for user, group in groupby(picked)]
    assert max(length for _, length in runs) == 2
    assert [run for run in runs if run[1] > 1] == [("anna", 2)] * 99
    assert first.state_before == {}
    assert first.state_after == {"current": {"anna": -3, "bartek": 2, "celina": 1}}
    assert first.reason == "weighted rotation (weights anna 3, bartek 2, celina 1)"
    assert last.state_after == {"current": {"anna": 0, "bartek": 0, "celina": 0}}


@pytest.mark.slow
def test_weighted_restarted_engine_continues_the_sequence(write_rules, tmp_path: Path) -> None:
    rules = bot_rules(write_rules, WEIGHTED)
    with Engine(rules, tmp_path / "once.db") as engine:
        uninterrupted = owners(engine, range(600))
    with Engine(rules, tmp_path / "twice.db") as engine:
        before = owners(engine, range(250))
        state = engine.explain("default", "deal", "d249")[0].decisions[0].state_after
    with Engine(rules, tmp_path / "twice.db") as engine:
        after = owners(engine, range(250, 600))
    # 250 = 41 cycles and 4 picks: the restart falls in the middle of a cycle.
    assert before[-4:] == ["anna", "bartek", "anna", "celina"]
    assert state == {"current": {"anna": 0, "bartek": 2, "celina": -2}}
    assert after[:2] == ["bartek", "anna"]
    assert before + after == uninterrupted


def test_weighted_deactivated_user_never_gets_one_and_the_ratio_holds(write_rules, tmp_path: Path) -> None:
    bot = """
  - id: inbound
    users: [anna, olga, bartek]
    strategy: weighted_round_robin
    options: {weights: {anna: 3, olga: 4, bartek: 2}}
"""
    with Engine(bot_rules(write_rules, bot), tmp_path / "s.db") as engine:
        outcomes = [engine.handle(deal_event(n)) for n in range(500)]
    picked = [o.owners_after[0] for o in outcomes]
    assert Counter(picked) == {"anna": 300, "bartek": 200}
    assert picked[:5] == ["anna", "bartek", "anna", "bartek", "anna"]
    decision = outcomes[0].decisions[0]
    assert [(s.user, s.reason) for s in decision.skipped] == [("olga", "user is deactivated")]
    assert decision.reason == "weighted rotation (weights anna 3, bartek 2)"
    # olga never took part, so she has no current weight at all.
    assert outcomes[-1].decisions[0].state_after == {"current": {"anna": 0, "bartek": 0}}


AWAY_TEAM = """
users:
  - {id: anna}
  - id: bartek
    out_of_office: [{start: "2026-03-03T00:00", end: "2026-03-04T00:00"}]
  - {id: celina}
"""


def test_weighted_user_away_keeps_their_current_weight(write_rules, tmp_path: Path) -> None:
    def at(n: int, day: int) -> dict[str, Any]:
        return deal_event(n) | {"at": f"2026-03-0{day}T09:00:00+00:00"}

    with Engine(bot_rules(write_rules, WEIGHTED, AWAY_TEAM), tmp_path / "s.db") as engine:
        present = [engine.handle(at(n, 2)) for n in range(2)]
        away = [engine.handle(at(n, 3)) for n in range(2, 7)]
        back = [engine.handle(at(n, 5)) for n in range(7, 13)]
    assert [o.owners_after[0] for o in present] == ["anna", "bartek"]
    assert present[-1].decisions[0].state_after == {"current": {"anna": 0, "bartek": -2, "celina": 2}}
    # anna 3 : celina 1 while bartek is away; his -2 is left as it was.
    assert [o.owners_after[0] for o in away] == ["anna", "celina", "anna", "anna", "anna"]
    assert [s.user for s in away[0].decisions[0].skipped] == ["bartek"]
    assert away[0].decisions[0].reason == "weighted rotation (weights anna 3, celina 1)"
    assert away[-1].decisions[0].state_after == {"current": {"anna": -1, "bartek": -2, "celina": 3}}
    assert [o.owners_after[0] for o in back] == ["celina", "anna", "bartek", "anna", "anna", "bartek"]
    assert back[-1].decisions[0].state_after == {"current": {"anna": -1, "bartek": -2, "celina": 3}}


def test_weighted_pool_users_without_a_weight_get_one(write_rules, tmp_path: Path) -> None:
    bot = """
  - id: inbound
    users: [anna, bartek, celina]
    strategy: weighted_round_robin
    options: {weights: {anna: 2}}
"""
    with Engine(bot_rules(write_rules, bot), tmp_path / "s.db") as engine:
        outcomes = [engine.handle(deal_event(n)) for n in range(8)]
    assert [o.owners_after[0] for o in outcomes] == ["anna", "bartek", "celina", "anna"] * 2
    assert outcomes[0].decisions[0].reason == "weighted rotation (weights anna 2, bartek 1, celina 1)"


def test_weighted_without_options_is_plain_rotation(write_rules, tmp_path: Path) -> None:
    bot = "  - {id: inbound, users: [anna, bartek, celina], strategy: weighted_round_robin}\n"
    with Engine(bot_rules(write_rules, bot), tmp_path / "s.db") as engine:
        assert owners(engine, range(6)) == ["anna", "bartek", "celina"] * 2


#: Invalid weights, as the options model (pydantic) words them: field path, then message.
GE = "options.weights.anna': Input should be greater than or equal to 1"
INT = "options.weights.anna': Input should be a valid integer"


@pytest.mark.parametrize(
    ("options", "messages"),
    [
        ("{weights: {anna: 0}}", [GE]),
        ("{weights: {anna: -2}}", [GE]),
        ("{weights: {anna: 1.5}}", [INT]),
        ("{weights: {anna: '3'}}", [INT]),
        ("{weights: {anna: true}}", [INT]),
        ("{weights: [anna, bartek]}", ["options.weights': Input should be a valid dictionary"]),
        ("{weights: {anna: 3}, wieghts: {}}", ["options.wieghts': unknown option"]),
        ("{weights: {anna: 0, bartek: 2, celina: x}}", [GE, INT.replace("anna", "celina")]),
    ],
)
def test_weighted_invalid_options(write_rules, tmp_path: Path, options: str, messages: list[str]) -> None:
    bot = (
        "  - {id: inbound, users: [anna, bartek, celina], strategy: weighted_round_robin, "
        f"options: {options}}}\n"
    )
    folder = bot_rules(write_rules, bot)
    with pytest.raises(RulesetError) as info:
        Engine(folder, tmp_path / "s.db")
    assert str(info.value) == "\n".join(
        f"{folder / 'inbound.yaml'}: bot 'inbound': field '{message}" for message in messages
    )


# Least loaded

LEAST = "  - {id: inbound, users: [anna, bartek, celina], strategy: least_loaded}\n"


def seed(engine: Engine, owner: str, count: int, entity: str = "deal", open: bool = True) -> None:
    """``count`` records of ``entity`` owned by ``owner`` directly (no bot involved)."""
    for n in range(count):
        record_id = f"{owner}-{entity}-{'open' if open else 'closed'}-{n}"
        engine.handle(
            {
                "id": f"seed-{record_id}",
                "kind": "created",
                "record": {"entity": entity, "id": record_id, "owners": [owner], "open": open},
            }
        )


def test_least_loaded_picks_the_fewest_open_deals(write_rules, tmp_path: Path) -> None:
    with Engine(bot_rules(write_rules, LEAST), tmp_path / "s.db") as engine:
        seed(engine, "anna", 3)
        seed(engine, "bartek", 1)
        outcomes = [engine.handle(deal_event(n)) for n in range(6)]
    # Loads (anna, bartek, celina): 3,1,0 -> celina; 3,1,1 tie after celina -> bartek;
    # 3,2,1 -> celina; 3,2,2 tie -> bartek; 3,3,2 -> celina; 3,3,3 tie after celina -> anna.
    assert [o.owners_after[0] for o in outcomes] == ["celina", "bartek", "celina", "bartek", "celina", "anna"]
    reasons = [o.decisions[0].reason for o in outcomes]
    assert reasons[0] == "fewest open deal records (0)"
    assert reasons[1] == "fewest open deal records (1); tied with celina, next in rotation"
    assert reasons[5] == "fewest open deal records (3); tied with bartek, celina, next in rotation"
    assert [o.decisions[0].state_after for o in outcomes[:2]] == [{"last": "celina"}, {"last": "bartek"}]


@pytest.mark.parametrize(
    ("celina_deals_open", "expected"),
    [
        (False, ["celina", "bartek", "celina", "bartek", "celina", "anna"]),
        # The control: the same four deals left open make celina the busiest.
        (True, ["bartek", "bartek", "anna", "bartek", "celina", "anna"]),
    ],
)
def test_least_loaded_counts_only_open_records_of_the_bots_entity(
    write_rules, tmp_path: Path, celina_deals_open: bool, expected: list[str]
) -> None:
    with Engine(bot_rules(write_rules, LEAST), tmp_path / "s.db") as engine:
        seed(engine, "anna", 3)
        seed(engine, "bartek", 1)
        seed(engine, "celina", 4, open=celina_deals_open)
        seed(engine, "celina", 5, entity="person")
        seed(engine, "celina", 2, entity="company")
        assert owners(engine, range(6)) == expected


def test_least_loaded_closing_a_record_lowers_the_load(write_rules, tmp_path: Path) -> None:
    with Engine(bot_rules(write_rules, LEAST), tmp_path / "s.db") as engine:
        seed(engine, "anna", 2)
        seed(engine, "bartek", 1)
        seed(engine, "celina", 1)
        assert owners(engine, range(2)) == ["bartek", "celina"]  # loads 2,2,2 now
        for n in range(2):
            engine.handle(
                {
                    "id": f"won-{n}",
                    "kind": "updated",
                    "record": {
                        "entity": "deal",
                        "id": f"anna-deal-open-{n}",
                        "owners": ["anna"],
                        "open": False,
                    },
                }
            )
        assert owners(engine, range(2, 4)) == ["anna", "anna"]  # loads 0,2,2 -> 2,2,2
        assert owners(engine, range(4, 7)) == ["bartek", "celina", "anna"]


def test_least_loaded_equal_loads_rotate_in_pool_order(write_rules, tmp_path: Path) -> None:
    picked = []
    with Engine(bot_rules(write_rules, LEAST), tmp_path / "s.db") as engine:
        for n in range(7):
            owner = engine.handle(deal_event(n)).owners_after[0]
            picked.append(owner)
            # Closed at once, so every pick is made with all loads at 0: only the rotation
            # decides (the first in pool order would be anna every time).
            engine.handle(
                {
                    "id": f"closed-{n}",
                    "kind": "updated",
                    "record": {"entity": "deal", "id": f"d{n}", "owners": [owner], "open": False},
                }
            )
    assert picked == ["anna", "bartek", "celina", "anna", "bartek", "celina", "anna"]


def test_least_loaded_skips_a_deactivated_user_with_no_load(write_rules, tmp_path: Path) -> None:
    bot = "  - {id: inbound, users: [olga, anna, bartek], strategy: least_loaded}\n"
    with Engine(bot_rules(write_rules, bot), tmp_path / "s.db") as engine:
        seed(engine, "anna", 1)
        assert owners(engine, range(4)) == ["bartek", "anna", "bartek", "anna"]


def test_least_loaded_takes_no_options(write_rules, tmp_path: Path) -> None:
    bot = "  - {id: inbound, users: [anna], strategy: least_loaded, options: {weights: {anna: 2}}}\n"
    folder = bot_rules(write_rules, bot)
    with pytest.raises(RulesetError) as info:
        Engine(folder, tmp_path / "s.db")
    assert str(info.value) == (
        f"{folder / 'inbound.yaml'}: bot 'inbound': field 'options': "
        "unknown option 'weights': least_loaded takes no options"
    )
