"""durable-rules never crashes on a checked condition, and patterns mean the same on
RE2 as on Python's ``re``: fuzz runs, durable-rules in a child process.

durable-rules is C code with fixed-size arrays and few bound checks. Its own
regular-expression engine crashed on a class of 4,097 characters (``[a-\\u1061]``) and,
within every bound tried since, on ``.(.{10}[Ā-ę一-丙]*.){10}``; so patterns are now matched
by RE2 and durable-rules only tests booleans. This test generates patterns (wide classes,
negated classes, optional parts under repeats, nested groups and alternatives) and records
with long texts (64 KiB ± 1, 128 KiB), Unicode and control characters and many fields, and
runs durable-rules on them in a child process (``check_in_child``), so that a crash fails
the test and names the condition instead of killing pytest; then both evaluators must
give the same answers in this process.

Patterns: 30 in the fast tests; 300 per seed in the slow ones, 400 under ``CI``. Skipped
where durable-rules does not run (Python 3.13+), but the RE2/``re`` test, which runs
everywhere.
"""

from __future__ import annotations

import os
import random
import re
from typing import Any

import pytest

from factories import NO_DURABLE
from salesbot_core.conditions import (
    MAX_NESTED_REPEAT,
    ConditionSet,
    check_condition,
    durable_available,
    pattern_problem,
)
from salesbot_core.conditions.patterns import compile_pattern, translate

durable_only = pytest.mark.skipif(not durable_available(), reason=NO_DURABLE)

#: Patterns per seed: the fast test's, and the slow tests' (more under CI).
PATTERNS_FAST = 30
PATTERNS = 400 if os.environ.get("CI") else 300
REFUSED = "durable-rules cannot compile"
#: Where classes start: ASCII, Latin, Greek, CJK, private use and past the BMP.
STARTS = [0x21, 0x30, 0x41, 0x61, 0xC0, 0x100, 0x391, 0x4E00, 0xE000, 0x10000]
#: How many characters a range spans, up to 4,097 (durable-rules' own engine crashed there).
SPANS = [1, 2, 10, 26, 100, 500, 1000, 4097]
LITERALS = list("aZ0 ł€中]}😀-")
REPEATS = ["", "", "?", "*", "+", "{1}", "{2,5}", "{1,}", "{10}", "{1,100}", "{100}"]


def _range(rng: random.Random) -> str:
    low = rng.choice(STARTS) + rng.randrange(3)
    high = low + rng.choice(SPANS) - 1
    return chr(low) if high == low else f"{chr(low)}-{chr(high)}"


def _atom(rng: random.Random, depth: int) -> str:
    kind = rng.randrange(6 if depth < 3 else 4)
    if kind == 0:
        return rng.choice(LITERALS)
    if kind == 1:
        return "."
    if kind in (2, 3):
        ranges = "".join(_range(rng) for _ in range(rng.randint(1, 3)))
        return f"[{'^' if rng.random() < 0.3 else ''}{ranges}]"
    return f"({_pattern(rng, depth + 1)})"


def _pattern(rng: random.Random, depth: int = 0) -> str:
    alternatives = [
        "".join(_atom(rng, depth) + rng.choice(REPEATS) for _ in range(rng.randint(1, 3)))
        for _ in range(rng.choice([1, 1, 1, 2, 3]))
    ]
    return "|".join(alternatives)


def checked_patterns(seed: int, count: int) -> list[str]:
    """``count`` generated patterns that ``pattern_problem`` accepts, some of them
    rejected ones trimmed until accepted."""
    rng = random.Random(seed)
    found: list[str] = []
    while len(found) < count:
        pattern = _pattern(rng)
        while pattern and pattern_problem(pattern) is not None and rng.random() < 0.5:
            pattern = pattern[: len(pattern) * 3 // 4]  # often unbalanced: then tried again
        if pattern and pattern_problem(pattern) is None:
            found.append(pattern)
    return found


def records(rng: random.Random, pattern: str) -> list[dict[str, object]]:
    """Records that reach deep into a pattern's state machine: texts made of its own
    characters, long ones around durable-rules' 64 KiB, and many fields."""
    own = [c for c in pattern if c not in "()|*+?{}[]^"] or ["a"]
    texts = ["", "".join(rng.choice(own) for _ in range(rng.randint(1, 50))), "a\n\x00\x1f😀"]
    texts += [rng.choice(own) * size for size in (65_535, 65_536, 65_537, 131_072)]
    return [{"title": text, **{f"f{i}": text[:10] for i in range(60)}} for text in texts]


def survey(
    conditions: dict[str, dict[str, Any]], sample: list[dict[str, object]], timeout: float
) -> dict[str, str]:
    """``check_in_child`` over every condition: after one that stops the child (a crash,
    or longer than ``timeout``), again from the next one."""
    from salesbot_core.conditions.durable import check_in_child

    verdicts: dict[str, str] = {}
    keys = list(conditions)
    while keys:
        errors = check_in_child({key: conditions[key] for key in keys}, sample, timeout)
        verdicts |= errors
        stopped = [key for key, why in errors.items() if not why.startswith(REFUSED) and key in keys]
        if not stopped:
            return verdicts
        keys = keys[keys.index(stopped[0]) + 1 :]
    return verdicts


def fuzz(seed: int, count: int) -> None:
    rng = random.Random(seed)
    patterns = checked_patterns(seed, count)
    conditions = {}
    for i, pattern in enumerate(patterns):
        fields = ({"$ex": {f"f{j}": 1}} for j in range(i % 70))  # past durable's 63 fields too
        condition = {"$and": [{"$imt" if i % 2 else "$mt": {"title": pattern}}, *fields]}
        assert check_condition(condition) == []
        conditions[f"c{i}"] = condition
    sample = records(rng, "".join(patterns[:20]))
    assert survey(conditions, sample, timeout=60) == {}
    durable, python = ConditionSet(conditions, "durable"), ConditionSet(conditions, "python")
    for record in sample:
        for key in conditions:
            assert durable.matches(key, record) == python.matches(key, record), (conditions[key], record)


@durable_only
def test_durable_rules_survives_checked_conditions() -> None:
    fuzz(0, PATTERNS_FAST)


@pytest.mark.slow
@durable_only
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_durable_rules_survives_many_checked_conditions(seed: int) -> None:
    fuzz(seed, PATTERNS)


def small_pattern(rng: random.Random) -> str:
    """A pattern Python's ``re`` matches in little time on a short text: one level of
    groups, small repeats (it backtracks, which is why it no longer matches patterns)."""
    atoms = [
        *LITERALS,
        ".",
        "[a-c]",
        "[^0-9]",
        "[Łł]",
        "[a-c-]",
        "[^a]",
        "[A-Z]",
        "[Z-b]",
        "(a|b)",
        "(ł|x.)",
        "(ab)",
    ]
    atoms += [f"[{'^' if rng.random() < 0.3 else ''}{_range(rng)}]" for _ in range(3)]
    repeats = ["", "", "*", "+", "?", "{2}", "{1,3}", "{2,}"]
    return "".join(rng.choice(atoms) + rng.choice(repeats) for _ in range(rng.randint(1, 4)))


@pytest.mark.parametrize("seed", [4, 5])
def test_re2_means_what_python_re_means_on_checked_patterns(seed: int) -> None:
    rng = random.Random(seed)
    tried = 0
    while tried < 200:
        pattern = small_pattern(rng)
        if pattern_problem(pattern) is not None:
            continue
        tried += 1
        own = [c for c in pattern if c not in "()|*+?{}[]^"]
        for fold in (False, True):
            flags = re.DOTALL | (re.IGNORECASE | re.ASCII if fold else 0)
            python = re.compile(translate(pattern, fold), flags)
            matches = compile_pattern(pattern, fold)
            for _ in range(20):
                text = "".join(rng.choice([*own, "A", "\n", "ſ", "\u212a"]) for _ in range(rng.randint(0, 8)))
                assert matches(text) == (python.fullmatch(text) is not None), (pattern, fold, text)


def test_nested_repeats_are_bounded_as_re2_bounds_them() -> None:
    """RE2 refuses nested repeats multiplying to more than 1,000; the check refuses them
    first, naming the product, and RE2 compiles every pattern the check accepts."""
    assert MAX_NESTED_REPEAT == 1000
    accepted = ["(a{10}){100}", "(a{10,}){100}", "((a{10})*){100}", "(a{10}b{10}){100}", "[a-\u1061]{100}"]
    for pattern in accepted:
        assert pattern_problem(pattern) is None
        compile_pattern(pattern)
    assert pattern_problem("(a{11}){100}") == "repeats nested in one another multiply to 1100; at most 1000"
    assert (
        pattern_problem("(a{1,11}|b){100}") == "repeats nested in one another multiply to 1100; at most 1000"
    )
    assert (
        pattern_problem("((a{2}){25}){25}") == "repeats nested in one another multiply to 1250; at most 1000"
    )
    for pattern in checked_patterns(6, PATTERNS_FAST):
        compile_pattern(pattern)
        compile_pattern(pattern, fold_ascii=True)
