"""Issue 16: fall through. A routing bot that applies but finds nobody eligible (and has no
fallback owner) stops routing by default; with ``fall_through: true`` the next bot by
priority is tried, and the audit shows both bots' decisions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from salesbot_core import Engine, RulesetError

RULES = """
users:
  - {id: anna}
  - {id: olga, active: false}
  - {id: jan}
bots:
  - id: experts
    users: [olga]
    trigger: {where: {$gte: {value: 1000}}}%s
  - id: everyone
    priority: 1
    users: [anna]
"""
NOBODY = "no user in the pool is eligible"
GOES_ON = f"{NOBODY}; routing goes on: the bot falls through to the next bot by priority"
DEAL = {"id": "e1", "kind": "created", "record": {"entity": "deal", "id": "d1", "value": 5000}}


def engine_for(write_rules: Callable[..., Path], tmp_path: Path, evaluator: str, rules: str) -> Engine:
    return Engine(write_rules(**{"a.yaml": rules}), tmp_path / "salesbot.db", conditions=evaluator)


def test_fall_through_to_next_rule_when_nobody_is_eligible(
    write_rules: Callable[..., Path], tmp_path: Path, evaluator: str
) -> None:
    with engine_for(write_rules, tmp_path, evaluator, RULES % "\n    fall_through: true") as engine:
        assert engine.route(DEAL).owners_after == ["anna"]
        (outcome,) = engine.explain("default", "deal", "d1")  # the audit, as stored
        experts, everyone = outcome.decisions
        assert (experts.bot, experts.status, experts.reason) == ("experts", "no_candidate", GOES_ON)
        assert [(s.user, s.reason) for s in experts.skipped] == [("olga", "user is deactivated")]
        assert (everyone.bot, everyone.status, everyone.owner) == ("everyone", "assigned", "anna")
        assert outcome.explain()[1] == f"  bot 'experts': no candidate: {GOES_ON}"


def test_first_rule_that_applies_stops_routing_by_default(
    write_rules: Callable[..., Path], tmp_path: Path, evaluator: str
) -> None:
    with engine_for(write_rules, tmp_path, evaluator, RULES % "") as engine:
        assert engine.route(DEAL).owners_after == []
        (outcome,) = engine.explain("default", "deal", "d1")
        assert [(d.bot, d.status, d.reason) for d in outcome.decisions] == [
            ("experts", "no_candidate", NOBODY)
        ]


def test_a_fallback_owner_takes_the_record_before_falling_through(
    write_rules: Callable[..., Path], tmp_path: Path, evaluator: str
) -> None:
    rules = RULES % "\n    fall_through: true\n    fallback: jan"
    with engine_for(write_rules, tmp_path, evaluator, rules) as engine:
        outcome = engine.route(DEAL)
        assert outcome.owners_after == ["jan"]
        assert [(d.bot, d.status) for d in outcome.decisions] == [("experts", "fallback")]


def test_falling_through_every_bot_leaves_the_record_unowned(
    write_rules: Callable[..., Path], tmp_path: Path, evaluator: str
) -> None:
    rules = (RULES % "\n    fall_through: true").replace(
        "users: [anna]", "users: [olga]\n    fall_through: true"
    )
    with engine_for(write_rules, tmp_path, evaluator, rules) as engine:
        outcome = engine.route(DEAL)
        assert outcome.owners_after == []
        assert [(d.bot, d.status, d.reason) for d in outcome.decisions] == [
            ("experts", "no_candidate", GOES_ON),
            ("everyone", "no_candidate", GOES_ON),
        ]


def test_a_bot_that_does_not_apply_is_passed_over_without_falling_through(
    write_rules: Callable[..., Path], tmp_path: Path, evaluator: str
) -> None:
    with engine_for(write_rules, tmp_path, evaluator, RULES % "") as engine:
        small = {**DEAL, "record": {**DEAL["record"], "value": 10}}  # type: ignore[dict-item]
        outcome = engine.route(small)
        assert [(d.bot, d.status) for d in outcome.decisions] == [
            ("experts", "not_applied"),
            ("everyone", "assigned"),
        ]


def test_fall_through_is_a_bool(write_rules: Callable[..., Path], tmp_path: Path) -> None:
    folder = write_rules(**{"a.yaml": RULES % "\n    fall_through: sometimes"})
    with pytest.raises(RulesetError) as info:
        Engine(folder, tmp_path / "salesbot.db")
    assert f"{folder / 'a.yaml'}: bot 'experts': field 'fall_through': " in str(info.value)
