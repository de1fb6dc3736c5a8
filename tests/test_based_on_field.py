"""Assign based on a field (Frappe's "based on field" assignment rule): the owner named in
a record field when that user can take it, else the bot's rotation, with the path taken in
the audit."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from factories import TEAM, deal_event
from salesbot_core import Engine, RulesetError

FIELD_BOT = """
bots:
  - id: inbound
    users: [anna, bartek, celina]
    strategy: based_on_field
    options: {field: account_manager}
"""


def manager(n: int, name: object) -> dict:
    return deal_event(n, fields={"account_manager": name})


def test_assign_based_on_field(write_rules, tmp_path: Path) -> None:
    with Engine(write_rules(**{"r.yaml": TEAM + FIELD_BOT}), tmp_path / "s.db") as engine:
        outcomes = [engine.handle(manager(n, "celina")) for n in range(3)]
    assert [o.owners_after for o in outcomes] == [["celina"]] * 3
    decision = outcomes[0].decisions[0]
    assert (decision.status, decision.strategy, decision.reason) == (
        "assigned",
        "based_on_field",
        "fields.account_manager names 'celina', a candidate",
    )
    # the field decided: the rotation did not move
    assert [o.decisions[0].state_after for o in outcomes] == [{}, {}, {}]


def test_assign_based_on_field_falls_back_to_round_robin_when_the_field_names_nobody_eligible(
    write_rules, tmp_path: Path
) -> None:
    rules = write_rules(**{"r.yaml": TEAM + FIELD_BOT.replace("celina]", "celina, olga]")})
    with Engine(rules, tmp_path / "s.db") as engine:
        outcomes = [
            engine.handle(manager(1, None)),  # empty field
            engine.handle(manager(2, "jan")),  # a user, but not in the pool
            engine.handle(manager(3, "olga")),  # in the pool, deactivated
            engine.handle(manager(4, 42)),  # not a user id at all
            engine.handle(manager(5, "bartek")),  # the field decides; the rotation keeps its place
            engine.handle(deal_event(6)),  # no such field
        ]
    assert [o.owners_after[0] for o in outcomes] == ["anna", "bartek", "celina", "anna", "bartek", "bartek"]
    assert [o.decisions[0].reason for o in outcomes] == [
        "fields.account_manager is empty: round_robin, first in rotation",
        "fields.account_manager names 'jan', who is not in the pool: round_robin, "
        "next in rotation after 'anna'",
        "fields.account_manager names 'olga', who is not eligible for this record: round_robin, "
        "next in rotation after 'bartek'",
        "fields.account_manager holds '42', not a user id: round_robin, next in rotation after 'celina'",
        "fields.account_manager names 'bartek', a candidate",
        "fields.account_manager is empty: round_robin, next in rotation after 'anna'",
    ]
    assert [(s.user, s.reason) for s in outcomes[2].decisions[0].skipped] == [("olga", "user is deactivated")]


def test_assign_based_on_field_with_a_named_rotation_and_its_options(write_rules, tmp_path: Path) -> None:
    bot = FIELD_BOT.replace(
        "options: {field: account_manager}",
        "options: {field: account_manager, rotation: weighted_round_robin, "
        "rotation_options: {weights: {anna: 2, bartek: 1, celina: 1}}}",
    )
    with Engine(write_rules(**{"r.yaml": TEAM + bot}), tmp_path / "s.db") as engine:
        owners = [engine.handle(manager(n, "nobody")).owners_after[0] for n in range(8)]
    assert Counter(owners) == {"anna": 4, "bartek": 2, "celina": 2}


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        (
            "{field: account_manager, rotation: nope}",
            "options.rotation",
            "unknown rotation 'nope'; available: ",
        ),
        ("{field: account_manager, rotation: based_on_field}", "options.rotation", "unknown rotation"),
        (
            "{field: account_manager, rotation: weighted_round_robin, "
            "rotation_options: {weights: {anna: '3'}}}",
            "options.rotation_options.weights.anna",
            "",
        ),
        (
            "{field: account_manager, rotation_options: {weights: {anna: 3}}}",
            "options.rotation_options",
            "strategy 'round_robin' takes no options",
        ),
        ("{rotation: round_robin}", "options.field", "Field required"),
    ],
)
def test_a_bad_based_on_field_rotation_names_the_file_bot_and_field(
    write_rules, tmp_path: Path, options: str, field: str, message: str
) -> None:
    bot = FIELD_BOT.replace("options: {field: account_manager}", f"options: {options}")
    with pytest.raises(RulesetError) as raised:
        Engine(write_rules(**{"r.yaml": TEAM + bot}), tmp_path / "s.db")
    (problem,) = raised.value.problems
    assert (Path(problem.file).name, problem.bot, problem.field) == ("r.yaml", "inbound", field)
    assert message in problem.message
