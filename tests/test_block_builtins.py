"""Issue 11: every built-in plugin can be blocked, and only the rules that use it fail.

For each built-in in turn, a ruleset whose bots and users each use a few of them is loaded
with that one blocked: exactly the bots and users that use it are errors, each naming the
blocked plugin; with those left out, every other bot still routes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from salesbot_core import Engine, RulesetError
from salesbot_core.registry import builtin_plugins
from salesbot_plugins.sqlite_store import SQLiteStore

P = "salesbot_plugins."

USERS: list[dict[str, Any]] = [
    {"id": "anna", "caps": {"day": 100}},
    {"id": "bartek", "working_hours": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}},
    {"id": "celina", "out_of_office": [{"start": "2020-01-01T00:00:00", "end": "2020-01-02T00:00:00"}]},
    {"id": "jan"},
]
BOTS: list[dict[str, Any]] = [
    {"id": "rr", "users": ["anna", "jan"]},  # deal, round_robin: the defaults
    {"id": "weighted", "entity": "person", "users": ["jan"], "strategy": "weighted_round_robin",
     "options": {"weights": {"jan": 2}}},
    {"id": "least", "entity": "company", "users": ["celina", "jan"], "strategy": "least_loaded"},
    {"id": "tasks", "entity": "task", "users": ["bartek", "jan"], "strategy": "weighted_round_robin"},
    {"id": "sticky", "entity": "person", "users": ["jan"], "strategy": "least_loaded", "sticky": True},
    {"id": "passing", "entity": "person", "users": ["anna"], "strategy": "weighted_round_robin",
     "actions": {"related": {"company": True}}},
    {"id": "scheduled", "users": ["jan"], "schedule": {"days": ["mon"]}},
    {"id": "falls", "users": ["jan"], "fall_through": True},
    {"id": "unassigns", "users": ["jan"], "trigger": {"where": {"open": True}}, "unassign": {}},
    {"id": "field", "users": ["jan"], "strategy": "based_on_field",
     "options": {"field": "manager", "rotation": "least_loaded"}},
    {"id": "members", "users": ["anna", "jan"], "members": {"jan": {"where": {"x": 1}}}},
    {"id": "timed", "entity": "company", "users": ["jan"], "strategy": "least_loaded",
     "sla": {"within": "2h"}},
]  # fmt: skip

#: Blocked built-in -> the bots and user fields that must fail, and nothing else.
FAILS: dict[str, set[str]] = {
    "round_robin": {"rr", "scheduled", "falls", "unassigns", "members"},
    "weighted_round_robin": {"weighted", "tasks", "passing"},
    "least_loaded": {"least", "sticky", "field", "timed"},
    "based_on_field": {"field"},
    "deal": {"rr", "scheduled", "falls", "unassigns", "field", "members"},
    "person": {"weighted", "sticky", "passing"},
    "company": {"least", "timed"},
    "task": {"tasks"},
    "propagation": {"passing"},
    "eligibility": set(),
    "capacity": {"users.0.caps"},
    "members": {"members"},
    "availability": {"users.1.working_hours", "users.2.out_of_office"},
    "sticky": {"sticky"},
    "schedule": {"scheduled"},
    "fall_through": {"falls"},
    "unassign": {"unassigns"},
    "sla": {"timed"},
    "sqlite_store": set(),
    "postgres_store": set(),
}


def test_the_table_covers_every_builtin() -> None:
    assert sorted(P + name for name in FAILS) == sorted(builtin_plugins())


def _write(folder: Path, users: list[dict[str, Any]], bots: list[dict[str, Any]]) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "rules.yaml").write_text(yaml.safe_dump({"users": users, "bots": bots}), encoding="utf-8")
    return folder


def _engine(folder: Path, blocked: str) -> Engine:
    # The store is passed in: with sqlite_store blocked, no plugin would open one.
    return Engine(folder, SQLiteStore(":memory:"), block=[P + blocked], autoload=False)


@pytest.mark.parametrize("blocked", sorted(FAILS))
def test_blocking_a_builtin_fails_only_what_uses_it(tmp_path: Path, blocked: str) -> None:
    expected = FAILS[blocked]
    if expected:
        with pytest.raises(RulesetError) as info:
            _engine(_write(tmp_path / "all", USERS, BOTS), blocked)
        failed = {p.bot or str(p.field) for p in info.value.problems}
        assert failed == expected
        for problem in info.value.problems:
            assert f"plugin '{P}{blocked}', which is not loaded" in problem.message, str(problem)

    # Without what uses the blocked plugin, every other bot still routes.
    users = [{k: v for k, v in u.items() if f"users.{i}.{k}" not in expected} for i, u in enumerate(USERS)]
    bots = [bot for bot in BOTS if bot["id"] not in expected]
    with _engine(_write(tmp_path / "rest", users, bots), blocked) as engine:
        for n, bot in enumerate(bots):
            entity = bot.get("entity", "deal")
            outcome = engine.handle(
                {
                    "id": f"e{n}",
                    "kind": "created",
                    "at": "2026-03-02T10:00:00Z",
                    "record": {"entity": entity, "id": f"r{n}", "owners": [f"bot:{bot['id']}"]},
                }
            )
            assert outcome.decisions[0].status == "assigned", outcome.explain()


def test_blocking_a_builtin_never_makes_a_switched_off_bot_fire(tmp_path: Path) -> None:
    folder = _write(tmp_path / "off", [{"id": "anna"}], [{"id": "off", "users": ["anna"], "active": False}])
    for blocked in sorted(FAILS):
        if "rr" in FAILS[blocked]:
            continue
        with _engine(folder, blocked) as engine:
            record = {"entity": "deal", "id": "d", "owners": ["bot:off"]}
            outcome = engine.handle({"id": "e", "kind": "created", "record": record})
        assert outcome.decisions[0].status == "not_applied", blocked
