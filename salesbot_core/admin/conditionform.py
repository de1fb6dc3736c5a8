"""The condition builder of the bot form: a ``trigger.where`` condition as rows of field,
operator and value, and back.

The builder shows the common cases (a field equals, differs, is greater or less, is one
of a few values, contains a text, matches a pattern, is present or absent), all of the
rows or any of them. A condition it cannot show as rows (nested ``$and``/``$or``, list
tests, ``$imt``) stays in the raw YAML or JSON text, which the form always has. Pure
functions: what a condition means is the condition language's
(``salesbot_core.conditions``), and it is checked there, as files are.

A value typed in a row is a number when it reads as one (``10000``, ``2.5``), a boolean
for ``true`` and ``false``, else a text; a text that would read as a number or boolean is
written in double quotes (``"123"``). "One of" takes values separated by commas.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..conditions import check_condition
from ..rulebook import FieldProblem

#: The operators of a row: its name in the form, and what the page says.
OPERATORS: dict[str, str] = {
    "eq": "equals",
    "neq": "is not",
    "gt": "is greater than",
    "gte": "is at least",
    "lt": "is less than",
    "lte": "is at most",
    "oneof": "is one of",
    "contains": "contains",
    "matches": "matches the pattern",
    "present": "is present",
    "absent": "is absent",
}
#: The operators of rows that compare with one value, and their condition operator.
_COMPARE = {
    "eq": "$eq",
    "neq": "$neq",
    "gt": "$gt",
    "gte": "$gte",
    "lt": "$lt",
    "lte": "$lte",
    "matches": "$mt",
}
_PRESENCE = {"present": "$ex", "absent": "$nex"}
#: How the rows combine: all of them (``$and``) or any (``$or``).
JOINS = {"all": "$and", "any": "$or"}
#: The most rows the builder takes (a longer condition is written as text).
MAX_ROWS = 50
#: Characters that mean something in a pattern, written as a class of one (``[.]``) when a
#: "contains" row looks for them; ``^``, ``\\`` and ``%`` have no such form.
_SPECIAL = ".[(){}|*+?$"
_UNWRITABLE = "^\\%"
#: Where the builder's own problems are named: the condition's field of the bot.
FIELD = "trigger.where"


@dataclass(frozen=True)
class Row:
    """One row of the builder, as typed."""

    field: str = ""
    op: str = "eq"
    value: str = ""


@dataclass(frozen=True)
class Built:
    """Rows and how they combine: what the builder shows."""

    join: str = "all"
    rows: tuple[Row, ...] = ()


def _scalar_text(value: Any) -> str | None:
    """A value as a row shows it (see the module's docstring), or None for a value a row
    cannot hold."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if not isinstance(value, str):
        return None
    return json.dumps(value, ensure_ascii=False) if _reads_as_other(value) else value


def _reads_as_other(text: str) -> bool:
    """Whether a text, typed in a row as it is, would read as something else."""
    return _scalar(text) != text or text != text.strip()


def _scalar(text: str) -> Any:
    """A value typed in a row: a number, a boolean, a quoted text, or the text itself."""
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    if text[:1] == '"':
        try:
            quoted = json.loads(text)
        except ValueError:
            return text
        return quoted if isinstance(quoted, str) else text
    try:
        number = json.loads(text)
    except ValueError:
        return text
    return number if isinstance(number, int | float) and not isinstance(number, bool) else text


def _contains_pattern(text: str) -> str:
    return ".*" + "".join(f"[{c}]" if c in _SPECIAL else c for c in text) + ".*"


def _contained(pattern: str) -> str | None:
    """The text a "contains" row looks for, if ``pattern`` is one's, else None."""
    if not (pattern.startswith(".*") and pattern.endswith(".*") and len(pattern) > 4):
        return None
    body, text, i = pattern[2:-2], [], 0
    while i < len(body):
        if body[i] == "[" and i + 2 < len(body) and body[i + 2] == "]" and body[i + 1] in _SPECIAL:
            text.append(body[i + 1])
            i += 3
        elif body[i] in _SPECIAL or body[i] in _UNWRITABLE:
            return None
        else:
            text.append(body[i])
            i += 1
    return "".join(text)


def _one(condition: Any) -> Row | None:
    """The row of a condition that is one test, or None."""
    if not isinstance(condition, dict) or len(condition) != 1:
        return None
    ((key, value),) = condition.items()
    if key == "$or" and isinstance(value, list) and len(value) > 1:
        # One of: every item equals, on the same field.
        items = [_one(item) for item in value]
        if all(r is not None and r.op == "eq" for r in items) and len({r.field for r in items if r}) == 1:
            values = [r.value for r in items if r]
            if not any("," in v for v in values):
                return Row(items[0].field if items[0] else "", "oneof", ", ".join(values))
        return None
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((field, operand),) = value.items()
    if not isinstance(field, str) or field.startswith("$"):
        return None
    if key in _PRESENCE.values():
        return Row(field, next(op for op, k in _PRESENCE.items() if k == key)) if operand == 1 else None
    if key == "$mt" and isinstance(operand, str) and (text := _contained(operand)) is not None:
        return Row(field, "contains", text)
    op = next((op for op, k in _COMPARE.items() if k == key), None)
    shown = _scalar_text(operand)
    if op is None or shown is None or (op == "matches" and not isinstance(operand, str)):
        return None
    return Row(field, op, operand if op == "matches" else shown)


def rows_of(condition: Mapping[str, Any] | None) -> Built | None:
    """The rows that make exactly ``condition`` (none for no condition), or None when the
    builder cannot show it: it is then edited as text."""
    if not condition:
        return Built()
    built: Built | None = None
    if (one := _one(condition)) is not None:
        built = Built("all", (one,))
    elif len(condition) == 1:
        ((key, items),) = condition.items()
        join = next((j for j, k in JOINS.items() if k == key), None)
        if join is not None and isinstance(items, list) and 1 < len(items) <= MAX_ROWS:
            rows = [_one(item) for item in items]
            if all(r is not None for r in rows):
                built = Built(join, tuple(r for r in rows if r is not None))
    # The rows must say it exactly as written: what the builder shows is what it writes.
    if built is None or condition_of(built) != (condition, []):
        return None
    return built


def _row_condition(row: Row, number: int) -> tuple[dict[str, Any] | None, list[FieldProblem]]:
    where = f"row {number} ({row.field or 'no field'})"
    if row.op in _PRESENCE:
        return {_PRESENCE[row.op]: {row.field: 1}}, []
    if row.op not in OPERATORS:
        return None, [FieldProblem(FIELD, f"{where}: unknown operator {row.op[:40]!r}")]
    if not row.value.strip():
        return None, [FieldProblem(FIELD, f"{where}: {OPERATORS[row.op]} needs a value")]
    if row.op == "oneof":
        values = [_scalar(v) for v in row.value.split(",") if v.strip()]
        tests = [{"$eq": {row.field: v}} for v in values]
        return ({"$or": tests} if len(tests) > 1 else tests[0]), []
    if row.op == "contains":
        if any(c in _UNWRITABLE or ord(c) < 0x20 for c in row.value):
            why = "cannot look for ^, \\, % or control characters: write the pattern in the text below"
            return None, [FieldProblem(FIELD, f"{where}: contains {why}")]
        return {"$mt": {row.field: _contains_pattern(row.value)}}, []
    if row.op == "matches":
        return {"$mt": {row.field: row.value}}, []
    return {_COMPARE[row.op]: {row.field: _scalar(row.value)}}, []


def condition_of(built: Built) -> tuple[dict[str, Any] | None, list[FieldProblem]]:
    """The condition the rows make (None for no row), and what stops them from making one
    (a row without a value, too many rows); rows without a field are left out."""
    rows = [row for row in built.rows if row.field.strip() or row.value.strip()]
    if len(rows) > MAX_ROWS:
        return None, [
            FieldProblem(FIELD, f"the builder takes at most {MAX_ROWS} rows: write the condition below")
        ]
    tests: list[dict[str, Any]] = []
    problems: list[FieldProblem] = []
    for number, row in enumerate(rows, 1):
        if not row.field.strip():
            problems.append(FieldProblem(FIELD, f"row {number}: a value needs a field"))
            continue
        test, found = _row_condition(Row(row.field.strip(), row.op, row.value), number)
        problems += found
        if test is not None:
            tests.append(test)
    if problems or not tests:
        return None, problems
    if len(tests) == 1:
        return tests[0], []
    return {JOINS.get(built.join, "$and"): tests}, []


def from_post(posted: Mapping[str, Sequence[str]]) -> Built:
    """The rows as posted: ``cond_field``, ``cond_op`` and ``cond_value``, one of each per
    row, and ``cond_join``."""
    fields, ops, values = (list(posted.get(f"cond_{part}", [])) for part in ("field", "op", "value"))
    count = max(len(fields), len(ops), len(values))

    def at(items: list[str], i: int, default: str = "") -> str:
        return items[i] if i < len(items) else default

    rows = tuple(Row(at(fields, i), at(ops, i, "eq"), at(values, i)) for i in range(count))
    join = (posted.get("cond_join") or ["all"])[0]
    return Built(join if join in JOINS else "all", rows)


def check(condition: Any) -> list[FieldProblem]:
    """The problems of a condition as the loader finds them in a file, at their path
    (``trigger.where.$and.0.$mt.title``)."""
    return [FieldProblem(path, message) for path, message in check_condition(condition, FIELD)]
