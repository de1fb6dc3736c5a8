"""Ruleset conditions, through salesbot_core.conditions, on each evaluator."""

from __future__ import annotations

from pathlib import Path

import pytest

from factories import NO_DURABLE, TEAM, deal_event
from salesbot_core import Engine, RulesetError
from salesbot_core.conditions import ConditionSet, EvaluatorError, durable_available

#: The durable evaluator's chunk size (rules per durable ruleset); 400 where it is absent.
CHUNK_SIZE = 400
if durable_available():
    from salesbot_core.conditions.durable import CHUNK_SIZE

BIG_DEALS = (
    TEAM
    + """
bots:
  - id: big
    users: [jan, anna]
    trigger:
      where: {$and: [{$gte: {value: 50000}}, {$neq: {region: export}}]}
"""
)


def test_a_record_matching_the_condition_is_assigned(write_rules, tmp_path: Path, evaluator: str) -> None:
    with Engine(write_rules(**{"b.yaml": BIG_DEALS}), tmp_path / "s.db", conditions=evaluator) as engine:
        outcome = engine.handle(deal_event(1, ["bot:big"], value=50000, fields={"region": "north"}))
    assert outcome.owners_after == ["jan"]


def test_a_record_not_matching_keeps_its_previous_owners(write_rules, tmp_path: Path, evaluator: str) -> None:
    with Engine(write_rules(**{"b.yaml": BIG_DEALS}), tmp_path / "s.db", conditions=evaluator) as engine:
        engine.handle(deal_event(1, ["bartek"], value=900))
        event = deal_event(2, ["bot:big"], kind="updated", value=900)
        event["record"]["id"] = "d1"
        outcome = engine.handle(event)
        export = engine.handle(deal_event(3, ["bot:big"], value=90000, fields={"region": "export"}))
        stored = engine.store.get_record("default", "deal", "d1")
    assert outcome.owners_after == ["bartek"]
    assert outcome.decisions[0].status == "not_applied"
    assert outcome.decisions[0].reason == "the record does not match trigger.where"
    assert stored is not None and stored["owners"] == ["bartek"]
    assert export.owners_after == [] and export.decisions[0].status == "not_applied"


def test_thousands_of_conditions_are_split_into_chunks_durable_can_run(evaluator: str) -> None:
    # durable-rules hangs on one ruleset of more than ~512 rules.
    conditions = {f"bot{i}": {"$eq": {"value": i}} for i in range(3 * CHUNK_SIZE + 7)}
    compiled = ConditionSet(conditions, evaluator)
    for i in (0, CHUNK_SIZE - 1, CHUNK_SIZE, 2 * CHUNK_SIZE + 5, 3 * CHUNK_SIZE + 6):
        assert compiled.matches(f"bot{i}", {"value": i}) is True
        assert compiled.matches(f"bot{i}", {"value": i + 1}) is False
        # one bot's message never matches a rule of another bot in the same chunk
        assert compiled.matches(f"bot{i}", {"value": i - 1}) is False


def test_a_key_without_condition_always_matches(evaluator: str) -> None:
    assert ConditionSet({}, evaluator).matches("anything", {"value": 1}) is True
    assert ConditionSet({"a": {"value": 1}}, evaluator).matches("b", {}) is True


def test_none_fields_are_missing(evaluator: str) -> None:
    compiled = ConditionSet({"a": {"$nex": {"company": 1}}}, evaluator)
    assert compiled.matches("a", {"company": None}) is True
    assert compiled.matches("a", {"company": "warsztat"}) is False


@pytest.mark.skipif(not durable_available(), reason=NO_DURABLE)
def test_a_condition_durable_cannot_compile_names_file_bot_and_field(write_rules) -> None:
    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "b.yaml": """
        bots:
          - {id: fine, users: [anna], trigger: {where: {$mt: {title: 'ACME.*'}}}}
          - {id: broken, users: [anna], trigger: {where: {$lt: {value: 0.00001}}}}
        """,
        }
    )
    with pytest.raises(RulesetError) as info:
        Engine(folder, folder.parent / "s.db", conditions="durable")
    (problem,) = info.value.problems
    assert (problem.file, problem.bot, problem.field) == (str(folder / "b.yaml"), "broken", "trigger.where")
    assert (
        problem.message
        == "durable-rules cannot compile this condition (Could not create ruleset, error code: 204)"
    )


def test_the_python_evaluator_compiles_what_durable_cannot(write_rules) -> None:
    # the same number as above: durable-rules cannot parse 1e-05, as JSON writes it
    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "b.yaml": "bots:\n  - {id: b, users: [anna], trigger: {where: {$lt: {value: 0.00001}}}}\n",
        }
    )
    with Engine(folder, folder.parent / "s.db", conditions="python") as engine:
        assert engine.rules.conditions.matches("default/b", {"value": 0.000001}) is True
        assert engine.rules.conditions.matches("default/b", {"value": 0.0001}) is False


@pytest.mark.skipif(not durable_available(), reason=NO_DURABLE)
def test_durable_rules_is_given_no_pattern_so_it_compiles_every_checked_one(write_rules) -> None:
    # Its own engine refused this one (a state machine past its 4,096 states, error 504).
    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "b.yaml": "bots:\n  - {id: b, users: [anna], "
            "trigger: {where: {$mt: {title: '(a|b)*a(a|b){12}'}}}}\n",
        }
    )
    with Engine(folder, folder.parent / "s.db", conditions="durable") as engine:
        assert engine.rules.conditions.matches("default/b", {"title": "a" * 13}) is True
        assert engine.rules.conditions.matches("default/b", {"title": "b" * 13}) is False


def test_the_evaluator_is_a_setting(write_rules, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_rules(**{"b.yaml": BIG_DEALS})
    default = "durable" if durable_available() else "python"
    with Engine(folder, tmp_path / "s.db") as engine:
        assert engine.rules.conditions.evaluator == default
    monkeypatch.setenv("SALESBOT_CONDITIONS", "python")
    with Engine(folder, tmp_path / "s.db") as engine:
        assert engine.rules.conditions.evaluator == "python"
        assert engine.rules.conditions.description == "python"
    monkeypatch.setenv("SALESBOT_CONDITIONS", "fast")
    with pytest.raises(
        EvaluatorError, match=r"^unknown condition evaluator 'fast' \(from SALESBOT_CONDITIONS\)"
    ):
        Engine(folder, tmp_path / "s.db")
    with pytest.raises(EvaluatorError, match=r"^unknown condition evaluator 'fast'; known: durable, python$"):
        ConditionSet({}, "fast")


@pytest.mark.skipif(durable_available(), reason="durable-rules runs here")
def test_asking_for_durable_where_it_does_not_run_is_a_clear_error(write_rules, tmp_path: Path) -> None:
    with pytest.raises(EvaluatorError, match=r"needs durable-rules, .* use 'python'$"):
        Engine(write_rules(**{"b.yaml": BIG_DEALS}), tmp_path / "s.db", conditions="durable")
