"""What a ``trigger.where`` condition means, operator by operator, and what durable-rules
traps the adapter (salesbot_core.conditions) keeps away from users."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from factories import TEAM
from salesbot_core import Engine, RulesetError
from salesbot_core.conditions import ConditionSet, check_condition
from salesbot_core.registry import make_plugin_manager
from salesbot_core.rulesets import load_rulesets
from salesbot_core.safetext import excerpt

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


# $mt / $imt: whole-text match, only the constructs durable runs as Python's re.fullmatch --


def _matches(op: str, pattern: str, text: str) -> bool:
    conditions = ConditionSet({"k": {op: {"t": pattern}}})
    try:
        return conditions.matches("k", {"t": text})
    finally:
        conditions.close()


@pytest.mark.parametrize(
    ("op", "pattern", "text", "expected"),
    [
        ("$mt", "ACME", "ACME", True),
        ("$mt", "ACME", "big ACME deal", False),  # the whole text must match
        ("$mt", ".*ACME.*", "big ACME deal", True),
        ("$mt", "ACME.*", "ACME Corp", True),
        ("$mt", "ACME", "acme", False),
        ("$imt", "ACME", "acme", True),
        ("$imt", "łódź", "ŁÓDŹ", False),  # $imt folds ASCII letters only
        ("$imt", "[Łł][Óó]d[Źź]", "ŁÓDŹ", True),
        ("$mt", "[0-9]+", "2026", True),
        ("$mt", "[0-9]+", "20x6", False),
        ("$mt", "[^0-9]+", "abc", True),
        ("$mt", "(ab|cd){1,3}e?", "abcde", True),
        ("$mt", "a{2}", "aaa", False),
        ("$mt", "a{0,2}", "", True),
        ("$mt", "[.]com", ".com", True),
        ("$mt", "[.]com", "xcom", False),
        ("$mt", "a.c", "a\nc", False),
        ("$mt", "[a-c-]+", "a-b", True),
    ],
)
def test_patterns_match_the_whole_text(op: str, pattern: str, text: str, expected: bool) -> None:
    assert check_condition({op: {"t": pattern}}) == []
    assert _matches(op, pattern, text) is expected


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("^ACME", "'^' is not supported: a pattern always matches the whole text (use .* for any text)"),
        ("ACME$", "'$' is not supported: a pattern always matches the whole text (use .* for any text)"),
        (
            "[0-9]+\\.[0-9]+",
            "backslash escapes are not supported: write a class instead ([0-9] for \\d, [.] for \\.)",
        ),
        ("\\d+", "backslash escapes are not supported: write a class instead ([0-9] for \\d, [.] for \\.)"),
        ("(?=a)a", "(?...) groups (lookarounds, flags, non-capturing) are not supported"),
        ("(?i)acme", "(?...) groups (lookarounds, flags, non-capturing) are not supported"),
        ("(a)\\1", "backslash escapes are not supported: write a class instead ([0-9] for \\d, [.] for \\.)"),
        ("50%", "'%' is not supported by durable-rules"),
        ("a{0}", "a repeat {m,n} needs 1 <= n, m <= n and both at most 100"),
        ("a{101}", "a repeat {m,n} needs 1 <= n, m <= n and both at most 100"),
        ("a{,2}", "a repeat is written {m}, {m,} or {m,n}"),
        ("a+?", "'?' must follow the character, class or group it repeats, once"),
        ("*a", "'*' must follow the character, class or group it repeats, once"),
        ("(a|)", "empty groups and alternatives are not supported: make a part optional with ?"),
        ("", "an empty pattern is not allowed"),
        ("[]a]", "an empty class [] or [^] is not supported (']' cannot be first in a class)"),
        ("[^]", "an empty class [] or [^] is not supported (']' cannot be first in a class)"),
        ("[-a]", "'-' in a class [...] must be last, or form a range such as a-z"),
        ("[z-a]", "bad range z-a in a class [...]"),
        ("[a", "unbalanced '['"),
        ("(a", "unbalanced '('"),
        ("a)", "unbalanced ')'"),
        ("x" * 201, "a pattern may be at most 200 characters long"),
    ],
)
def test_patterns_durable_cannot_run_as_python_would_are_rejected(pattern: str, reason: str) -> None:
    assert check_condition({"$and": [{"$mt": {"title": pattern}}]}) == [
        ("$and.0.$mt.title", f"pattern {excerpt(pattern)}: {reason}")
    ]


def test_a_rejected_pattern_names_file_bot_and_field(write_rules) -> None:
    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "b.yaml": "bots:\n  - {id: b, users: [anna], trigger: {where: {$imt: {title: '^acme'}}}}\n",
        }
    )
    with pytest.raises(RulesetError) as info:
        load_rulesets(folder, make_plugin_manager().catalog())
    assert [str(p) for p in info.value.problems] == [
        f"{folder / 'b.yaml'}: bot 'b': field 'trigger.where.$imt.title': pattern '^acme': "
        "'^' is not supported: a pattern always matches the whole text (use .* for any text)"
    ]
