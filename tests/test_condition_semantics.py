"""What a ``trigger.where`` condition means, operator by operator, and what durable-rules
traps the adapter (salesbot_core.conditions.durable) keeps away from users.

Every test taking ``evaluator`` runs against both evaluators (durable-rules where it runs,
and the plain-Python one), so the same truth tables pin both."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from factories import TEAM
from salesbot_core import Engine, RulesetError
from salesbot_core.conditions import ConditionSet, check_condition
from salesbot_core.registry import make_plugin_manager
from salesbot_core.rulesets import load_rulesets
from salesbot_core.safetext import excerpt

# Resources: no thread or C state leaks per reload ----------------------------------------


def test_building_and_closing_conditions_starts_no_threads(evaluator: str) -> None:
    before = threading.active_count()
    for i in range(100):
        conditions = ConditionSet({f"b{j}": {"$gte": {"value": i + j}} for j in range(5)}, evaluator)
        assert conditions.matches("b0", {"value": i}) is True
        conditions.close()
    assert threading.active_count() == before


def test_a_hundred_reloads_leave_the_thread_count_unchanged(
    write_rules, tmp_path: Path, evaluator: str
) -> None:
    bot = "bots:\n  - {{id: b, users: [anna], trigger: {{where: {{$gte: {{value: {}}}}}}}}}\n"
    folder = write_rules(**{"team.yaml": TEAM, "b.yaml": bot.format(0)})
    before = threading.active_count()
    with Engine(folder, tmp_path / "s.db", conditions=evaluator) as engine:
        assert engine.rules.conditions.evaluator == evaluator
        for i in range(1, 101):
            (folder / "b.yaml").write_text(bot.format(i))
            assert engine.reload() is True
            assert engine.rules.conditions.matches("default/b", {"value": i}) is True
            assert engine.rules.conditions.matches("default/b", {"value": i - 1}) is False
    assert threading.active_count() == before


def test_closed_conditions_refuse_to_match(evaluator: str) -> None:
    conditions = ConditionSet({"a": {"value": 1}}, evaluator)
    conditions.close()
    conditions.close()  # twice is fine
    with pytest.raises(RuntimeError, match=r"^these conditions were closed$"):
        conditions.matches("a", {"value": 1})


# $mt / $imt: whole-text match, only the constructs durable runs as Python's re.fullmatch --


def _matches(op: str, pattern: str, text: str, evaluator: str) -> bool:
    conditions = ConditionSet({"k": {op: {"t": pattern}}}, evaluator)
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
        ("$mt", "a.c", "a\nc", True),  # . matches any character, a newline too
        ("$mt", "[a-c-]+", "a-b", True),
    ],
)
def test_patterns_match_the_whole_text(
    op: str, pattern: str, text: str, expected: bool, evaluator: str
) -> None:
    assert check_condition({op: {"t": pattern}}) == []
    assert _matches(op, pattern, text, evaluator) is expected


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
        ("50%", "'%' is not supported"),
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
        ("a\tb", "control characters (U+0000-U+001F) are not supported in a pattern"),
        ("(a{11}){100}", "repeats nested in one another multiply to 1100; at most 1000"),
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


# Type-strict comparisons: a number only matches a number, text text, a boolean a boolean --

#: The values a field ``v`` is given in turn; ``None`` is a missing field.
VALUES = [150, 50.5, "x", "150", True, False, 1, None]


def _row(condition: dict[str, Any], values: list[Any], evaluator: str) -> str:
    """One character per value: T if ``condition`` matches a record with ``v`` = the value."""
    conditions = ConditionSet({"k": condition}, evaluator)
    try:
        return "".join("T" if conditions.matches("k", {"v": value}) else "." for value in values)
    finally:
        conditions.close()


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        #                                       150 50.5 'x' '150' true false 1 missing
        ({"$eq": {"v": 150}}, "T......."),
        ({"$neq": {"v": 150}}, ".TTTTTTT"),  # true for other types and a missing field
        ({"$lt": {"v": 100}}, ".T....T."),
        ({"$lte": {"v": 150}}, "TT....T."),
        ({"$gt": {"v": 100}}, "T......."),
        ({"$gte": {"v": 100}}, "T......."),  # never true for text (was true for "x")
        ({"$eq": {"v": "150"}}, "...T...."),
        ({"$neq": {"v": "x"}}, "TT.TTTTT"),
        ({"$lt": {"v": "y"}}, "..TT...."),  # text compares with text only
        ({"$gte": {"v": "a"}}, "..T....."),
        ({"$eq": {"v": True}}, "....T..."),  # not 1
        ({"$neq": {"v": True}}, "TTTT.TTT"),
        ({"v": 1}, "......T."),  # not True
        ({"v": True}, "....T..."),
        ({"$mt": {"v": "[0-9]+"}}, "...T...."),  # patterns match text only, not 150
        ({"$imt": {"v": "X"}}, "..T....."),
        ({"$ex": {"v": 1}}, "TTTTTTT."),
        ({"$nex": {"v": 1}}, ".......T"),
        ({"$and": [{"$gt": {"v": 10}}, {"$lt": {"v": 200}}]}, "TT......"),
        ({"$or": [{"v": "x"}, {"v": 150}]}, "T.T....."),
    ],
)
def test_comparisons_are_type_strict(condition: dict[str, Any], expected: str, evaluator: str) -> None:
    assert check_condition(condition) == []
    assert _row(condition, VALUES, evaluator) == expected


LISTS = [[150, 5], [150, "x"], ["x", "y"], [True], [], None, "x"]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        #                                              [150,5] [150,'x'] ['x','y'] [true] [] missing 'x'
        ({"$iany": {"v": {"$gt": {"$i": 100}}}}, "TT....."),
        ({"$iall": {"v": {"$gt": {"$i": 1}}}}, "T......"),  # "x" is not a number over 1
        ({"$iany": {"v": {"$eq": {"$i": "x"}}}}, ".TT...."),
        ({"$iall": {"v": {"$neq": {"$i": 5}}}}, ".TTT..."),  # an empty list: false
        ({"$iany": {"v": {"$eq": {"$i": True}}}}, "...T..."),
        ({"$iany": {"v": {"$mt": {"$i": "x|y"}}}}, ".TT...."),
    ],
)
def test_list_items_compare_type_strictly(condition: dict[str, Any], expected: str, evaluator: str) -> None:
    assert check_condition(condition) == []
    assert _row(condition, LISTS, evaluator) == expected


def test_ordering_a_boolean_is_rejected() -> None:
    assert check_condition({"$lt": {"v": True}}) == [("$lt.v", "$lt compares with a number or text")]


def test_a_big_deal_condition_no_longer_matches_text(write_rules, tmp_path: Path, evaluator: str) -> None:
    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "b.yaml": "bots:\n  - {id: inbound, users: [anna], trigger: {where: {$gte: {value: 100}}}}\n",
        }
    )
    with Engine(folder, tmp_path / "s.db", conditions=evaluator) as engine:
        assert engine.rules.conditions.matches("default/inbound", {"value": 100.0}) is True
        assert engine.rules.conditions.matches("default/inbound", {"value": "x"}) is False
        assert engine.rules.conditions.matches("default/inbound", {"title": "x"}) is False


# Items, nested objects and control characters: the same answer from both evaluators -----


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        #                                   [{r:x}] [{r:null}] [5] [null] []  {r:x} missing
        ({"$iany": {"v": {"$ex": {"$i": 1}}}}, "TTT...."),
        ({"$iany": {"v": {"$nex": {"$i": 1}}}}, "...T..."),
        ({"$iany": {"v": {"$ex": {"$i.r": 1}}}}, "T......"),
        ({"$iany": {"v": {"$eq": {"$i.r": "x"}}}}, "T......"),
        ({"$iany": {"v": {"$i.r": "x"}}}, "T......"),
        ({"$iall": {"v": {"$neq": {"$i.r": "x"}}}}, ".TTT..."),
        ({"$ex": {"v": 1}}, "TTTTTT."),
    ],
)
def test_items_and_objects(condition: dict[str, Any], expected: str, evaluator: str) -> None:
    assert check_condition(condition) == []
    values = [[{"r": "x"}], [{"r": None}], [5], [None], [], {"r": "x"}, None]
    assert _row(condition, values, evaluator) == expected


def test_a_dotted_name_is_a_field_name_not_a_path(evaluator: str) -> None:
    conditions = ConditionSet({"k": {"$ex": {"a.b": 1}}, "e": {"a.b": 1}}, evaluator)
    assert conditions.matches("k", {"a": {"b": 1}}) is False  # objects are not searched
    assert conditions.matches("k", {"a.b": 1}) is True
    assert conditions.matches("e", {"a.b": 1}) is True
    assert conditions.matches("e", {"a": {"b": 1}}) is False


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("a.c", "a\tc", True),  # durable-rules' own engine: false, but true for a.*c
        ("a[^b]c", "a\nc", True),
        ("a[a-z]c", "a\nc", False),
        ("a.c", "a\x7fc", True),
        ("a.c", "a😀c", True),
        (".*x.*", "line\nx", True),
        ("a.{2}c", "a\x00\x1fc", True),
        ("a.c", "a\uf709c", True),  # once a stand-in for a control character, as any other
        (".*a.", "aaaab", True),  # durable-rules' own engine: false
        ("[a-z]", "b" * 65_537, False),  # durable-rules' own engine: true (65,537 mod 65,536)
    ],
)
def test_dot_matches_any_character_control_characters_too(
    pattern: str, text: str, expected: bool, evaluator: str
) -> None:
    assert _matches("$mt", pattern, text, evaluator) is expected


@pytest.mark.parametrize(
    ("condition", "record", "expected"),
    [
        # durable alone compares texts escaped ("\n" as backslash-n): "0" < "\n" was true.
        ({"$lt": {"a": "\n"}}, {"a": "0"}, False),
        ({"$gt": {"a": "\n"}}, {"a": "0"}, True),
        ({"$gte": {"a": "\t"}}, {"a": "\n"}, True),
        ({"$lte": {"a": "a\x00"}}, {"a": "a"}, True),
        ({"$lt": {"a": "\\"}}, {"a": "\x1f"}, True),
        ({"$gt": {"a": "ł"}}, {"a": "😀"}, True),
        ({"$iany": {"tags": {"$lt": {"$i": "\n"}}}}, {"tags": ["0", "a"]}, False),
        ({"$iany": {"tags": {"$lt": {"$i": "\n"}}}}, {"tags": ["0", "\t"]}, True),
    ],
)
def test_texts_order_by_code_point_control_characters_too(
    condition: dict[str, Any], record: dict[str, Any], expected: bool, evaluator: str
) -> None:
    conditions = ConditionSet({"k": condition}, evaluator)
    try:
        assert conditions.matches("k", record) is expected
    finally:
        conditions.close()


@pytest.mark.parametrize(
    ("condition", "path", "message"),
    [
        (
            {"$iany": {"v": {"$eq": {"r": 1}}}},
            "$iany.v.$eq.r",
            "inside $iall/$iany, name the item $i (or $i.<key> for a key of an object item)",
        ),
        (
            {"$iany": {"v": {"r": 1}}},
            "$iany.v.r",
            "inside $iall/$iany, name the item $i (or $i.<key> for a key of an object item)",
        ),
        (
            {"$iany": {"v": {"$iany": {"$i": {"$i": 1}}}}},
            "$iany.v.$iany.$i",
            "$iall/$iany cannot be nested: lists inside list items are not searched",
        ),
        ({"$eq": {"$i": 1}}, "$eq.$i", "$i names a list item: use it only inside $iall/$iany"),
    ],
)
def test_item_names_are_checked(condition: dict[str, Any], path: str, message: str) -> None:
    assert check_condition(condition) == [(path, message)]
