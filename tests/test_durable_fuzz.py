"""durable-rules never crashes on a checked condition: a fuzz run in a child process.

durable-rules is C code with fixed-size arrays and few bound checks. A pattern naming
too many characters (``[a-\\u1061]``: 4,097) corrupted its memory and killed the process
that compiled it, a ``salesbot serve`` worker included. ``pattern_problem`` now bounds
patterns (``MAX_PATTERN_WEIGHT``); this test generates patterns up to that bound, biased
to its edge (wide classes, negated classes, optional parts under repeats, nested groups
and alternatives), keeps those the check accepts, and runs durable-rules on them in a
child process (``check_in_child``), so that a crash fails the test and names the pattern
instead of killing pytest. Each is also tried on records with long texts (64 KiB ± 1,
128 KiB), Unicode and control characters, and on many fields at once.

Some checked patterns take durable-rules minutes to compile (``((.*.*)*){10}``): a child
that takes more than 10 seconds is stopped and the run goes on from the next pattern;
that is a refusal (as the service makes it), not a crash. Patterns: 60 in the fast test;
300 per seed in the slow ones, 800 under ``CI``. Skipped where durable-rules does not run
(Python 3.13+).
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

from factories import NO_DURABLE
from salesbot_core.conditions import MAX_PATTERN_WEIGHT, check_condition, durable_available, pattern_problem

pytestmark = pytest.mark.skipif(not durable_available(), reason=NO_DURABLE)

#: Patterns per seed: the fast test's, and the slow tests' (more under CI).
PATTERNS_FAST = 60
PATTERNS = 800 if os.environ.get("CI") else 300
#: How the patterns fared (printed by the slow tests under ``-s``).
PATTERNS_SEEN = {"compiled": 0, "refused": 0, "too slow": 0}
REFUSED = "durable-rules cannot compile"
#: Where classes start: ASCII, Latin, Greek, CJK, private use and past the BMP.
STARTS = [0x21, 0x30, 0x41, 0x61, 0xC0, 0x100, 0x391, 0x4E00, 0xE000, 0x10000]
#: How many characters a range spans, up to the whole bound.
SPANS = [1, 2, 10, 26, 100, 333, 500, 999, MAX_PATTERN_WEIGHT]
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
    """``count`` generated patterns that ``pattern_problem`` accepts, half of them
    rejected ones trimmed until accepted (so many sit just under the bound)."""
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
    or longer than ``timeout`` to compile), again from the next one."""
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
    verdicts = survey(conditions, records(rng, "".join(patterns[:20])), timeout=10)
    crashed = {patterns[int(key[1:])] if key != "*" else key: why for key, why in verdicts.items()}
    # A refusal (an error code: a state machine past its 4,096 states...) or a compile
    # that takes too long is an error naming the condition; a crash is the bug.
    assert {p: why for p, why in crashed.items() if "crashed" in why or "exit status" in why} == {}
    PATTERNS_SEEN["refused"] += sum(why.startswith(REFUSED) for why in verdicts.values())
    PATTERNS_SEEN["too slow"] += sum("took more than" in why for why in verdicts.values())
    PATTERNS_SEEN["compiled"] += len(patterns) - len(verdicts)


def test_durable_rules_survives_checked_patterns() -> None:
    fuzz(0, PATTERNS_FAST)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_durable_rules_survives_many_checked_patterns(seed: int) -> None:
    fuzz(seed, PATTERNS)
    print(PATTERNS_SEEN)


def test_the_bound_is_exact() -> None:
    """At the bound a pattern is accepted; one character more, refused, naming the bound."""
    assert pattern_problem("[a-j]{100}") is None  # 10 x 100
    assert pattern_problem("[a-j]{100}x") is not None
    assert pattern_problem("([a-e]|[f-j]){100}") is None
    assert pattern_problem("[^a-j]{90}") is None  # (10 + 1) x 90 = 990
    assert pattern_problem("[^a-j]{91}") is not None
    assert pattern_problem("[a-y]+" * 20) is None  # 25 x 2 x 20
    assert pattern_problem("[a-y]+" * 21) is not None
    assert pattern_problem("(a|b)*a(a|b){6}") is None
