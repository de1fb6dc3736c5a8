"""Member conditions (Odoo's member domains): a pool member gets only the records matching
their own ``where``, and members whose ``prefer`` matches come before the rest; the audit
names the condition. Each test runs on both condition evaluators."""

from __future__ import annotations

from pathlib import Path

import pytest

from factories import TEAM, deal_event
from salesbot_core import Engine, RulesetError

MEMBERS = """
bots:
  - id: inbound
    users: [anna, bartek, celina]
    members:
      bartek: {where: {country: DE}}
      celina: {where: {$gte: {value: 10000}}}
"""


def engine_for(write_rules, tmp_path: Path, evaluator: str, bots: str = MEMBERS) -> Engine:
    return Engine(write_rules(**{"r.yaml": TEAM + bots}), tmp_path / "s.db", conditions=evaluator)


def test_member_domain_excludes_non_matching_leads(write_rules, tmp_path: Path, evaluator: str) -> None:
    with engine_for(write_rules, tmp_path, evaluator) as engine:
        plain = [engine.handle(deal_event(n, fields={"country": "PL"}, value=500)) for n in range(3)]
        german = [engine.handle(deal_event(n, fields={"country": "DE"}, value=500)) for n in range(3, 6)]
    # PL, small: only anna (no condition) may take them
    assert [o.owners_after for o in plain] == [["anna"]] * 3
    assert [(s.user, s.reason) for s in plain[0].decisions[0].skipped] == [
        ("bartek", 'the record does not match members.bartek.where \'{"country": "DE"}\''),
        ("celina", 'the record does not match members.celina.where \'{"$gte": {"value": 10000}}\''),
    ]
    # DE, small: anna and bartek share them in turn
    assert [o.owners_after[0] for o in german] == ["bartek", "anna", "bartek"]
    assert german[0].decisions[0].candidates == ["anna", "bartek"]


def test_member_domain_no_member_matches_then_the_fallback(
    write_rules, tmp_path: Path, evaluator: str
) -> None:
    bots = MEMBERS.replace("users: [anna, bartek, celina]", "users: [bartek, celina]\n    fallback: jan")
    with engine_for(write_rules, tmp_path, evaluator, bots) as engine:
        outcome = engine.handle(deal_event(1, fields={"country": "FR"}, value=10))
    decision = outcome.decisions[0]
    assert (outcome.owners_after, decision.status) == (["jan"], "fallback")
    assert [s.user for s in decision.skipped] == ["bartek", "celina"]


PREFERRED = """
bots:
  - id: inbound
    users: [anna, bartek, celina]
    members:
      bartek: {where: {country: DE}, prefer: true}
      celina: {prefer: {$gte: {value: 10000}}}
"""


def test_member_preferred_domain_assigns_matching_leads_first(
    write_rules, tmp_path: Path, evaluator: str
) -> None:
    users = TEAM.replace("Celina Zając}", "Celina Zając, caps: {day: 1}}")
    rules = write_rules(**{"r.yaml": users + PREFERRED})
    at = "2026-11-23T10:00:00+00:00"
    with Engine(rules, tmp_path / "s.db", conditions=evaluator) as engine:
        german = [engine.handle(deal_event(n, fields={"country": "DE"}) | {"at": at}) for n in range(2)]
        big = [engine.handle(deal_event(n, value=50000) | {"at": at}) for n in range(2, 4)]
        plain = [engine.handle(deal_event(n, fields={"country": "PL"}) | {"at": at}) for n in range(4, 6)]
    # bartek is preferred for German deals, every time
    assert [o.owners_after for o in german] == [["bartek"], ["bartek"]]
    assert [(s.user, s.reason) for s in german[0].decisions[0].skipped] == [
        ("anna", "not preferred: the record matches members.bartek.where"),
        ("celina", "not preferred: the record matches members.bartek.where"),
    ]
    assert german[0].decisions[0].candidates == ["bartek"]
    # celina is preferred for big deals until her cap; then anna, the one left, gets them
    assert [o.owners_after for o in big] == [["celina"], ["anna"]]
    assert [(s.user, s.reason) for s in big[1].decisions[0].skipped] == [
        ("bartek", 'the record does not match members.bartek.where \'{"country": "DE"}\''),
        ("celina", "capacity reached: 1 per day"),
    ]
    # a Polish deal: bartek's where excludes him, celina is full, nobody is preferred
    assert [o.owners_after for o in plain] == [["anna"], ["anna"]]
    assert [s.user for s in plain[0].decisions[0].skipped] == ["bartek", "celina"]


@pytest.mark.parametrize(
    ("members", "field", "message"),
    [
        ("{jan: {where: {country: DE}}}", "members", "'jan' is not in the bot's pool 'users'"),
        ("{bartek: {prefer: true}}", "members", "'bartek': prefer: true needs a where to prefer"),
        ("{bartek: {where: {$gte: {value: [1]}}}}", "members.bartek.where.$gte.value", "$gte compares"),
        ("{bartek: {prefer: {$nope: {a: 1}}}}", "members.bartek.prefer.$nope", "unknown operator '$nope'"),
        ("{bartek: {wher: {a: 1}}}", "members.bartek.wher", "unknown field"),
    ],
)
def test_a_bad_member_condition_names_the_file_bot_and_field(
    write_rules, tmp_path: Path, members: str, field: str, message: str
) -> None:
    bots = f"bots:\n  - {{id: inbound, users: [anna, bartek], members: {members}}}\n"
    with pytest.raises(RulesetError) as raised:
        Engine(write_rules(**{"r.yaml": TEAM + bots}), tmp_path / "s.db")
    (problem,) = raised.value.problems
    assert (Path(problem.file).name, problem.bot, problem.field) == ("r.yaml", "inbound", field)
    assert message in problem.message


def test_a_pool_of_plain_user_ids_works_as_before(write_rules, tmp_path: Path, evaluator: str) -> None:
    bots = "bots:\n  - {id: inbound, users: [anna, bartek]}\n"
    with engine_for(write_rules, tmp_path, evaluator, bots) as engine:
        owners = [engine.handle(deal_event(n, fields={"country": "DE"})).owners_after[0] for n in range(3)]
    assert owners == ["anna", "bartek", "anna"]


def test_a_member_condition_the_evaluator_cannot_compile_names_the_member(
    write_rules, tmp_path: Path, evaluator: str
) -> None:
    where = "{$lt: {value: 0.00001}}"  # durable-rules cannot parse 1e-05, as JSON writes it
    bots = f"bots:\n  - {{id: inbound, users: [anna, bartek], members: {{bartek: {{where: {where}}}}}}}\n"
    rules = write_rules(**{"r.yaml": TEAM + bots})
    if evaluator == "python":  # it compiles what durable-rules cannot
        with Engine(rules, tmp_path / "s.db", conditions=evaluator) as engine:
            assert engine.handle(deal_event(1, value=0.000001)).owners_after == ["anna"]
            assert engine.handle(deal_event(2, value=0.000001)).owners_after == ["bartek"]
        return
    with pytest.raises(RulesetError) as raised:
        Engine(rules, tmp_path / "s.db", conditions=evaluator)
    (problem,) = raised.value.problems
    assert (Path(problem.file).name, problem.bot, problem.field) == (
        "r.yaml",
        "inbound",
        "members.bartek.where",
    )
    refused = "durable-rules cannot compile this condition (Could not create ruleset, error code: 204)"
    assert problem.message == refused
