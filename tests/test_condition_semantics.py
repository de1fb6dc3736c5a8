"""What a ``trigger.where`` condition means, operator by operator, and what durable-rules
traps the adapter (salesbot_core.conditions) keeps away from users."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from factories import TEAM
from salesbot_core import Engine
from salesbot_core.conditions import ConditionSet

# Resources: no thread or C state leaks per reload ----------------------------------------


def test_building_and_closing_conditions_starts_no_threads() -> None:
    before = threading.active_count()
    for i in range(100):
        conditions = ConditionSet({f"b{j}": {"$gte": {"value": i + j}} for j in range(5)})
        assert conditions.matches("b0", {"value": i}) is True
        conditions.close()
    assert threading.active_count() == before


def test_a_hundred_reloads_leave_the_thread_count_unchanged(write_rules, tmp_path: Path) -> None:
    bot = "bots:\n  - {{id: b, users: [anna], trigger: {{where: {{$gte: {{value: {}}}}}}}}}\n"
    folder = write_rules(**{"team.yaml": TEAM, "b.yaml": bot.format(0)})
    before = threading.active_count()
    with Engine(folder, tmp_path / "s.db") as engine:
        for i in range(1, 101):
            (folder / "b.yaml").write_text(bot.format(i))
            assert engine.reload() is True
            assert engine.rules.conditions.matches("default/b", {"value": i}) is True
            assert engine.rules.conditions.matches("default/b", {"value": i - 1}) is False
    assert threading.active_count() == before


def test_closed_conditions_refuse_to_match() -> None:
    conditions = ConditionSet({"a": {"value": 1}})
    conditions.close()
    conditions.close()  # twice is fine
    with pytest.raises(RuntimeError, match=r"^these conditions were closed$"):
        conditions.matches("a", {"value": 1})
