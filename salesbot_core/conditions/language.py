"""The condition language of ``trigger.where``: its checking and its meaning.

Why this split: the language is one concept and lives here (``check_condition``,
``pattern_problem``, the operators); how it is evaluated is another, with two
implementations that must give the same answer for every checked condition and record,
each importing only this module (the ``ConditionSet`` facade of the package picks one):

- ``durable`` (:mod:`salesbot_core.conditions.durable`): durable-rules 2.0.28, the default
  where it runs (Python 3.11 and 3.12), behind its adapter, the only module importing
  ``durable``;
- ``python`` (:mod:`salesbot_core.conditions.python`): a plain-Python evaluator of the
  same language, the only one on Python 3.13 and later (durable-rules' C extension no
  longer loads there).

The semantics both follow (pinned by tests/test_condition_semantics.py): comparisons are
type-strict (a number only matches a number, text text, a boolean a boolean); a
comparison on a missing field (or ``null``) is false, except ``$neq``, true whenever the
field does not hold that exact value; ``$ex``/``$nex`` test presence; ``$mt``/``$imt``
match the whole text with the pattern subset ``pattern_problem`` allows (``.`` matches
any character, a newline too; ``$imt`` folds ASCII letters only); ``$iall``/``$iany``
test each item of a list through ``$i`` (``$i.<key>`` for a key of an object item),
``$iall`` being false for an empty list. Nested objects are not searched: ``a.b`` is the
name of a field, not a path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ..errors import SalesbotError
from ..safetext import excerpt

COMPARISONS = {"$eq", "$neq", "$lt", "$lte", "$gt", "$gte", "$mt", "$imt"}
EXISTENCE = {"$ex", "$nex"}
ARRAY = {"$iall", "$iany"}
LOGICAL = {"$and", "$or"}
OPERATORS = COMPARISONS | EXISTENCE | ARRAY | LOGICAL
_SCALARS = (str, int, float, bool)

#: The longest text a condition compares with: durable-rules reads a text of 64 KiB or
#: more modulo 65,536, and an ordered one is compared as a shadow six times as long.
MAX_TEXT_OPERAND = 4096
_LONG_OPERAND = f"a text to compare with may be at most {MAX_TEXT_OPERAND} characters long"
#: The longest ``$mt``/``$imt`` pattern, and the most repeats ``{m,n}`` may ask for.
MAX_PATTERN_LENGTH = 200
MAX_REPEAT = 100
#: Repeats nested in one another multiply their counts (``{m,n}``: n, ``{m}`` and ``{m,}``:
#: m; ``*``, ``+`` and ``?`` count 1): ``(a{10}){100}`` is 1,000, the most RE2, which
#: matches patterns (see ``patterns``), takes.
MAX_NESTED_REPEAT = 1000
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is outside the pattern language, or ``None``.

    The language is the subset of regular expressions on which durable-rules 2.0.28's
    own engine, which matched patterns until it was found to crash and answer wrongly,
    agreed with ``re.fullmatch``: literal characters, ``.``, classes ``[a-z0-9_]`` and
    ``[^...]``, groups ``( )``, alternatives ``|`` and the repeats ``* + ? {m} {m,}
    {m,n}``, always matching the whole text. Rejected: ``^`` and ``$``, every backslash
    escape (``\\d``, ``\\.``, ``\\n``), ``(?...)`` groups (lookarounds, flags), ``%``,
    ``{0}``, empty groups or alternatives, ``]`` first in a class, ``-`` anywhere but
    last in a class, control characters. Patterns are matched by RE2 now (see
    ``patterns``), which takes every such pattern whose nested repeats multiply to at
    most ``MAX_NESTED_REPEAT``; the language stays as it was, so that every ruleset
    means what it meant.
    """
    if not pattern:
        return "an empty pattern is not allowed"
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"a pattern may be at most {MAX_PATTERN_LENGTH} characters long"
    if any(ord(char) < 0x20 for char in pattern):
        return "control characters (U+0000-U+001F) are not supported in a pattern"
    depth = 0
    can_repeat = False  # the previous item is a character, class or group
    empty = True  # the current alternative has nothing in it yet
    # Per open group (the pattern itself the outermost): the largest product of nested
    # repeats in it, and that of its last item (what a repeat multiplies).
    repeats = [[1, 1]]
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char in "^$":
            return f"{char!r} is not supported: a pattern always matches the whole text (use .* for any text)"
        if char == "\\":
            return "backslash escapes are not supported: write a class instead ([0-9] for \\d, [.] for \\.)"
        if char == "%":
            return "'%' is not supported"
        if char == "(":
            if pattern.startswith("(?", i):
                return "(?...) groups (lookarounds, flags, non-capturing) are not supported"
            depth, can_repeat, empty = depth + 1, False, True
            repeats.append([1, 1])
        elif char == ")":
            if depth == 0:
                return "unbalanced ')'"
            if empty:
                return "empty groups and alternatives are not supported: make a part optional with ?"
            depth, can_repeat = depth - 1, True
            _add_item(repeats, repeats.pop()[0])
        elif char == "|":
            if empty:
                return "empty groups and alternatives are not supported: make a part optional with ?"
            can_repeat, empty = False, True
        elif char in "*+?{":
            repeat = _REPEAT.match(pattern, i) if char == "{" else None
            if char == "{" and repeat is None:
                return "a repeat is written {m}, {m,} or {m,n}"
            if not can_repeat:
                return f"{char!r} must follow the character, class or group it repeats, once"
            count = 1
            if repeat is not None:
                low = int(repeat[1])
                high = low if repeat[2] is None else int(repeat[3]) if repeat[3] else None
                if max(low, high or 0) > MAX_REPEAT or (high is not None and (high < 1 or high < low)):
                    return f"a repeat {{m,n}} needs 1 <= n, m <= n and both at most {MAX_REPEAT}"
                i = repeat.end() - 1
                count = low if high is None else high
            can_repeat = False
            group = repeats[-1]
            group[1] *= count
            group[0] = max(group[0], group[1])
            if group[1] > MAX_NESTED_REPEAT:
                return f"repeats nested in one another multiply to {group[1]}; at most {MAX_NESTED_REPEAT}"
        elif char == "[":
            closed = _class_end(pattern, i)
            if isinstance(closed, str):
                return closed
            i, can_repeat, empty = closed, True, False
            _add_item(repeats, 1)
        else:  # "." or a character matching itself (including "]" and "}")
            can_repeat, empty = True, False
            _add_item(repeats, 1)
        i += 1
    if depth:
        return "unbalanced '('"
    if empty:
        return "empty groups and alternatives are not supported: make a part optional with ?"
    return None


def _add_item(repeats: list[list[int]], product: int) -> None:
    """An item (a character, class or closed group) of the open group, whose nested
    repeats multiply to ``product``."""
    repeats[-1][1] = product
    repeats[-1][0] = max(repeats[-1][0], product)


def _class_end(pattern: str, start: int) -> int | str:
    """The index of the ``]`` closing the class opened at ``start``, or why it is not allowed."""
    i = start + 1 + pattern.startswith("^", start + 1)
    first = i
    while i < len(pattern) and pattern[i] != "]":
        char = pattern[i]
        if char in "\\[%":
            return f"{char!r} is not supported in a class [...]"
        if char == "-" and pattern[i + 1 : i + 2] != "]":
            return "'-' in a class [...] must be last, or form a range such as a-z"
        if pattern[i + 1 : i + 2] == "-" and pattern[i + 2 : i + 3] not in ("]", ""):
            high = pattern[i + 2]
            if high in "\\[]%-" or high < char:
                return f"bad range {char}-{high} in a class [...]"
            i += 2
        i += 1
    if i >= len(pattern):
        return "unbalanced '['"
    if i == first:
        return "an empty class [] or [^] is not supported (']' cannot be first in a class)"
    return i


def check_condition(condition: Any, path: str = "", items: bool = False) -> list[tuple[str, str]]:
    """Check the shape of a ``where`` condition; return ``(field path, message)`` problems.

    Both evaluators run exactly what this accepts, and report nothing else precisely
    (durable-rules gives an error code for a whole ruleset, and accepts some nonsense such
    as ``{"$or": []}``); this names the exact place instead. ``items``: the condition is
    tested on each item of a list (inside ``$iall``/``$iany``).
    """
    if not isinstance(condition, dict) or not condition:
        return [(path, "a condition must be a non-empty mapping")]
    problems: list[tuple[str, str]] = []
    for key, value in condition.items():
        here = f"{path}.{key}" if path else key
        if key in LOGICAL:
            if not isinstance(value, list) or not value:
                problems.append((here, f"{key} takes a non-empty list of conditions"))
                continue
            for i, item in enumerate(value):
                problems += check_condition(item, f"{here}.{i}", items)
        elif key in COMPARISONS | EXISTENCE | ARRAY:
            if not isinstance(value, dict) or len(value) != 1:
                problems.append((here, f"{key} takes a mapping of one field to a value"))
                continue
            ((field, operand),) = value.items()
            if (name_problem := _name_problem(field, items, key in ARRAY)) is not None:
                problems.append((f"{here}.{field}", name_problem))
            elif key in COMPARISONS and not isinstance(operand, _SCALARS):
                problems.append((f"{here}.{field}", f"{key} compares with a number, text or boolean"))
            elif key in ("$lt", "$lte", "$gt", "$gte") and isinstance(operand, bool):
                problems.append((f"{here}.{field}", f"{key} compares with a number or text"))
            elif isinstance(operand, str) and len(operand) > MAX_TEXT_OPERAND:
                problems.append((f"{here}.{field}", _LONG_OPERAND))
            elif key in ("$mt", "$imt") and not isinstance(operand, str):
                problems.append((f"{here}.{field}", f"{key} takes a regular expression"))
            elif key in ("$mt", "$imt") and (reason := pattern_problem(operand)) is not None:
                problems.append((f"{here}.{field}", f"pattern {excerpt(operand)}: {reason}"))
            elif key in ARRAY:
                problems += check_condition(operand, f"{here}.{field}", items=True)
        elif key.startswith("$") and not (items and (key == "$i" or key.startswith("$i."))):
            problems.append((here, f"unknown operator {excerpt(key)}; known: {', '.join(sorted(OPERATORS))}"))
        elif (name_problem := _name_problem(key, items, False)) is not None:
            problems.append((here, name_problem))
        elif not isinstance(value, _SCALARS):
            problems.append((here, "a field compares equal to a number, text or boolean"))
        elif isinstance(value, str) and len(value) > MAX_TEXT_OPERAND:
            problems.append((here, _LONG_OPERAND))
    return problems


def _name_problem(name: str, items: bool, array: bool) -> str | None:
    """Why ``name`` cannot be tested here, or ``None``. In an item condition a name is the
    item ``$i`` or a key of an object item ``$i.<key>``; a list in a list is not searched."""
    if items and array:
        return "$iall/$iany cannot be nested: lists inside list items are not searched"
    if items and name != "$i" and not (name.startswith("$i.") and len(name) > 3):
        return "inside $iall/$iany, name the item $i (or $i.<key> for a key of an object item)"
    if not items and (name == "$i" or name.startswith("$i.")):
        return "$i names a list item: use it only inside $iall/$iany"
    if any(ord(char) < 0x20 for char in name):
        # The evaluators' internal names are marked with one (U+001F), so none collides.
        return "control characters (U+0000-U+001F) are not allowed in a field name"
    return None


def fields_read(condition: Mapping[str, Any]) -> frozenset[str]:
    """The record fields a condition reads: the names its comparisons name (a name is a
    whole field name, dots included: nested objects are not searched)."""
    names: set[str] = set()
    stack: list[Any] = [condition]
    while stack:
        for key, value in stack.pop().items():
            if key in LOGICAL:
                stack.extend(value)
            elif key in OPERATORS:
                names.update(value)  # {field: operand}; an array test's operand is per item
            else:
                names.add(key)
    return frozenset(names)


#: The longest condition a reason quotes: an audit names the condition, not a page of it.
QUOTED_CONDITION = 120


def quoted(condition: Mapping[str, Any]) -> str:
    """A condition as a reason quotes it: compact JSON, bounded and escaped."""
    return excerpt(json.dumps(condition, sort_keys=True, ensure_ascii=False), QUOTED_CONDITION)


def kind_of(value: Any) -> str | None:
    """The type a comparison is strict about: ``num`` (an int or float, not a bool),
    ``str``, ``bool``; ``None`` for any other value (which no comparison matches)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "num"
    if isinstance(value, str):
        return "str"
    return None


class ConditionCompileError(Exception):
    """An evaluator rejected some conditions; ``errors`` maps each bot key to why."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class ConditionError(Exception):
    """An evaluator could not test a record (durable-rules: a value it cannot read)."""


class EvaluatorError(SalesbotError):
    """The condition evaluator asked for is unknown, or does not run on this Python."""
