"""The plain-Python evaluator of ``trigger.where`` conditions.

Why a module of its own: it is the second implementation of the language defined in
:mod:`salesbot_core.conditions`, with no dependency, so salesbot runs on every Python
(durable-rules does not load on 3.13 and later). Each condition is compiled once into a
tree of closures; a record is then tested by calling it, with no message to build, no
C state, no lock and no chunking. It must answer exactly as the durable-rules evaluator
(:mod:`salesbot_core.conditions.durable`) does on every checked condition: a differential
test holds both to that.

The semantics, as the module docstring of :mod:`salesbot_core.conditions` states them:
type-strict comparisons, a missing (or ``null``) field fails every comparison but
``$neq``, and patterns matching the whole text, where ``.`` matches any character (a
newline too) and ``$imt`` folds ASCII letters only, matched by RE2 as the durable-rules
evaluator's are (:mod:`salesbot_core.conditions.patterns`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from .language import ARRAY, COMPARISONS, EXISTENCE, LOGICAL, kind_of
from .patterns import compile_pattern

#: A compiled condition: a function of a record's fields (or of one list item).
Test = Callable[[Any], bool]

_MISSING = object()
_ORDER = {"$lt": operator.lt, "$lte": operator.le, "$gt": operator.gt, "$gte": operator.ge}


def _lookup(name: str, items: bool) -> Callable[[Any], Any]:
    """How to read ``name`` from a record's fields, or from a list item (``$i``, ``$i.key``)."""
    if items:
        if name == "$i":
            return lambda item: _MISSING if item is None else item
        key = name[3:]
        return lambda item: item.get(key, _MISSING) if isinstance(item, dict) else _MISSING
    return lambda fields: fields.get(name, _MISSING)


def compile_condition(condition: Mapping[str, Any], items: bool = False) -> Test:
    """A checked condition as a test of a record's fields (``items``: of one list item)."""
    tests = [_compile_part(key, value, items) for key, value in condition.items()]
    if len(tests) == 1:
        return tests[0]
    return lambda subject: all(test(subject) for test in tests)


def _compile_part(key: str, value: Any, items: bool) -> Test:
    if key in LOGICAL:
        parts = [compile_condition(part, items) for part in value]
        if key == "$and":
            return lambda subject: all(test(subject) for test in parts)
        return lambda subject: any(test(subject) for test in parts)
    if key not in COMPARISONS | EXISTENCE | ARRAY:  # {field: value}: equality
        return _compile_part("$eq", {key: value}, items)
    ((name, operand),) = value.items()
    read = _lookup(name, items)
    if key in EXISTENCE:
        wanted = key == "$ex"
        return lambda subject: (read(subject) not in (_MISSING, None)) is wanted
    if key in ARRAY:
        inner = compile_condition(operand, items=True)
        every = key == "$iall"

        def array_test(subject: Any) -> bool:
            listed = read(subject)
            if not isinstance(listed, list):
                return False
            if every:
                return bool(listed) and all(inner(item) for item in listed)
            return any(inner(item) for item in listed)

        return array_test
    if key in ("$mt", "$imt"):
        matches = compile_pattern(operand, fold_ascii=key == "$imt")

        def match_test(subject: Any) -> bool:
            text = read(subject)
            return isinstance(text, str) and matches(text)

        return match_test
    kind = kind_of(operand)
    if key in ("$eq", "$neq"):
        equal = key == "$eq"

        def equality_test(subject: Any) -> bool:
            found = read(subject)
            return (kind_of(found) == kind and found == operand) is equal

        return equality_test
    compare = _ORDER[key]

    def order_test(subject: Any) -> bool:
        found = read(subject)
        return kind_of(found) == kind and bool(compare(found, operand))

    return order_test


class PythonConditions:
    """Conditions compiled into Python closures; nothing to free, safe across threads."""

    def __init__(self, conditions: Mapping[str, Mapping[str, Any]]):
        """``conditions`` maps a key (unique per bot) to its checked condition."""
        self._tests = {key: compile_condition(condition) for key, condition in conditions.items()}

    def close(self) -> None:
        """Nothing to free: the closures go with the object."""

    def matches(self, key: str, fields: Mapping[str, Any]) -> bool:
        """Whether ``fields`` satisfy the condition under ``key`` (a key it holds)."""
        return self._tests[key](fields)
