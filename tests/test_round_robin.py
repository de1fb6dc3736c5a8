"""Round robin: exact rotation, persisted across restarts of the engine and of the process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from factories import TEAM, deal_event
from salesbot_core import Engine


def test_a_deal_created_with_the_bot_as_owner_gets_a_user(engine: Engine) -> None:
    outcome = engine.handle(deal_event(1))
    assert outcome.owners_before == ["bot:inbound"]
    assert outcome.owners_after == ["anna"]
    (decision,) = outcome.decisions
    assert (decision.bot, decision.status, decision.owner) == ("inbound", "assigned", "anna")
    assert decision.state_before == {} and decision.state_after == {
        "last": "anna",
        "pool": ["anna", "bartek", "celina"],
    }
    stored = engine.store.get_record("default", "deal", "d1")
    assert stored is not None and stored["owners"] == ["anna"]


def test_rotation_goes_round_in_pool_order(engine: Engine) -> None:
    owners = [engine.handle(deal_event(n)).owners_after[0] for n in range(7)]
    assert owners == ["anna", "bartek", "celina", "anna", "bartek", "celina", "anna"]


def test_thirty_deals_over_three_users_give_ten_each(engine: Engine) -> None:
    counts = Counter(engine.handle(deal_event(n)).owners_after[0] for n in range(30))
    assert counts == {"anna": 10, "bartek": 10, "celina": 10}


def test_restarted_engine_continues_the_rotation(deal_bot_rules: Path, tmp_path: Path) -> None:
    db = tmp_path / "salesbot.db"
    with Engine(deal_bot_rules, db) as first:
        before = [first.handle(deal_event(n)).owners_after[0] for n in range(14)]
    with Engine(deal_bot_rules, db) as second:
        after = [second.handle(deal_event(n)).owners_after[0] for n in range(14, 30)]
    assert before[-1] == "bartek" and after[0] == "celina"
    assert Counter(before + after) == {"anna": 10, "bartek": 10, "celina": 10}
    with Engine(deal_bot_rules, db) as third:
        assert third.store.assignment_counts() == [
            ("default", "inbound", "anna", 10),
            ("default", "inbound", "bartek", 10),
            ("default", "inbound", "celina", 10),
        ]


def test_restarted_process_continues_the_rotation(deal_bot_rules: Path, tmp_path: Path) -> None:
    db = tmp_path / "salesbot.db"
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("".join(json.dumps(deal_event(n)) + "\n" for n in range(14)))
    second.write_text("".join(json.dumps(deal_event(n)) + "\n" for n in range(14, 30)))
    for events in (first, second):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "salesbot_core",
                "run",
                str(events),
                "--rulesets",
                str(deal_bot_rules),
                "--db",
                str(db),
                "--quiet",
            ],
            check=True,
        )
    with Engine(deal_bot_rules, db) as engine:
        assert engine.store.assignment_counts() == [
            ("default", "inbound", "anna", 10),
            ("default", "inbound", "bartek", 10),
            ("default", "inbound", "celina", 10),
        ]
        owners = [engine.store.get_record("default", "deal", f"d{n}")["owners"][0] for n in range(13, 16)]
    assert owners == ["bartek", "celina", "anna"]


def test_deactivated_user_is_skipped_and_rotation_goes_on(write_rules, tmp_path: Path) -> None:
    rules = write_rules(
        **{
            "team.yaml": TEAM,
            "b.yaml": """
        bots:
          - {id: inbound, users: [anna, olga, celina]}
        """,
        }
    )
    with Engine(rules, tmp_path / "s.db") as engine:
        outcomes = [engine.handle(deal_event(n)) for n in range(4)]
    assert [o.owners_after for o in outcomes] == [["anna"], ["celina"], ["anna"], ["celina"]]
    skipped = outcomes[0].decisions[0].skipped
    assert [(s.user, s.reason) for s in skipped] == [("olga", "user is deactivated")]


POOL_EDIT_TEAM = TEAM + "  - {id: zofia, name: Zofia Król}\n"


def rotate(write_rules, tmp_path: Path, pools: list[tuple[list[str], int]]) -> list[str]:
    """Route deals through bot 'inbound' whose pool is edited between batches:
    ``pools`` lists (pool, how many deals) in turn; returns who got each deal."""
    db, picks = tmp_path / "s.db", []
    for pool, count in pools:
        rules = write_rules(
            **{"team.yaml": POOL_EDIT_TEAM, "b.yaml": f"bots:\n  - {{id: inbound, users: {pool}}}\n"}
        )
        with Engine(rules, db) as engine:
            for _ in range(count):
                picks.append(engine.handle(deal_event(len(picks))).owners_after[0])
    return picks


def test_removing_the_last_picked_user_passes_the_turn_to_the_next(write_rules, tmp_path: Path) -> None:
    picks = rotate(
        write_rules,
        tmp_path,
        [
            (["anna", "bartek", "celina", "jan"], 2),  # anna, bartek; celina is next
            (["anna", "celina", "jan"], 4),  # bartek left: celina keeps her turn, not anna
        ],
    )
    assert picks == ["anna", "bartek", "celina", "jan", "anna", "celina"]


def test_removing_the_next_user_skips_nobody_else(write_rules, tmp_path: Path) -> None:
    picks = rotate(
        write_rules,
        tmp_path,
        [
            (["anna", "bartek", "celina", "jan"], 2),
            (["anna", "bartek", "jan"], 3),  # celina, who was next, left: jan is next
        ],
    )
    assert picks == ["anna", "bartek", "jan", "anna", "bartek"]


def test_a_new_member_takes_a_turn_at_their_place(write_rules, tmp_path: Path) -> None:
    picks = rotate(
        write_rules,
        tmp_path,
        [
            (["anna", "bartek", "celina"], 2),
            (["zofia", "anna", "bartek", "celina"], 8),  # added first: no reset to her or anna
        ],
    )
    assert picks == [
        "anna",
        "bartek",
        "celina",
        "zofia",
        "anna",
        "bartek",
        "celina",
        "zofia",
        "anna",
        "bartek",
    ]
    assert Counter(picks[2:]) == {"celina": 2, "zofia": 2, "anna": 2, "bartek": 2}
