"""The durable-rules adapter: the only module that imports ``durable``.

Ruleset ``where`` conditions are durable-rules JSON conditions. durable-rules 2.0.28 has
traps this module keeps away from the rest of salesbot:

- a ruleset of more than ~512 rules hangs: rules are split into chunks of ``CHUNK_SIZE``;
- an exception in an action is swallowed into the returned state: the state is checked;
- posting an event that matches no rule raises ``MessageNotHandledException``: that is
  how "condition false" is read;
- its C state has no locking: every call into it holds ``_DURABLE_LOCK``;
- every ``Host`` starts timer threads that never stop: one host per ``ConditionSet``
  (one per engine), created only when some bot has a condition;
- ``set_rulesets`` mutates the dicts it is given: it always gets fresh copies;
- a message of more than ~250 fields fails (error 302), and a number JSON writes with an
  exponent but no point (``1e+16``, ``1e-05``) fails to parse (error 204): a message holds
  only the fields its condition reads, integral floats as integers, and any other
  failure is a ``ConditionError``, never a crash.

A condition is posted as a message holding the record's fields plus ``RULE_KEY`` naming
the bot, and each rule's condition is ``$and`` of that key and the bot's ``where``; so one
chunk holds many bots and a message can only match its own bot's rule.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from typing import Any

import durable.engine as durable_engine

#: Rules per durable ruleset; well under the ~512 at which durable-rules hangs.
CHUNK_SIZE = 400
#: The message key that routes a message to one bot's rule.
RULE_KEY = "salesbot_rule"

# durable-rules keeps process-wide C state without locking, so calls from every engine
# in the process are serialised; this lock is the one piece of module state, by necessity.
_DURABLE_LOCK = threading.Lock()

_COMPARISONS = {"$eq", "$neq", "$lt", "$lte", "$gt", "$gte", "$mt", "$imt"}
_EXISTENCE = {"$ex", "$nex"}
_ARRAY = {"$iall", "$iany"}
_LOGICAL = {"$and", "$or"}
OPERATORS = _COMPARISONS | _EXISTENCE | _ARRAY | _LOGICAL
_SCALARS = (str, int, float, bool)


def check_condition(condition: Any, path: str = "") -> list[tuple[str, str]]:
    """Check the shape of a ``where`` condition; return ``(field path, message)`` problems.

    durable-rules reports a bad condition only as an error code for a whole ruleset, and
    accepts some nonsense (``{"$or": []}``); this names the exact place instead.
    """
    if not isinstance(condition, dict) or not condition:
        return [(path, "a condition must be a non-empty mapping")]
    problems: list[tuple[str, str]] = []
    for key, value in condition.items():
        here = f"{path}.{key}" if path else key
        if key in _LOGICAL:
            if not isinstance(value, list) or not value:
                problems.append((here, f"{key} takes a non-empty list of conditions"))
                continue
            for i, item in enumerate(value):
                problems += check_condition(item, f"{here}.{i}")
        elif key in _COMPARISONS | _EXISTENCE | _ARRAY:
            if not isinstance(value, dict) or len(value) != 1:
                problems.append((here, f"{key} takes a mapping of one field to a value"))
                continue
            ((field, operand),) = value.items()
            if key in _COMPARISONS and not isinstance(operand, _SCALARS):
                problems.append((f"{here}.{field}", f"{key} compares with a number, text or boolean"))
            elif key in ("$mt", "$imt") and not isinstance(operand, str):
                problems.append((f"{here}.{field}", f"{key} takes a regular expression"))
            elif key in _ARRAY:
                problems += check_condition(operand, f"{here}.{field}")
        elif key.startswith("$"):
            problems.append((here, f"unknown operator {key!r}; known: {', '.join(sorted(OPERATORS))}"))
        elif not isinstance(value, _SCALARS):
            problems.append((here, "a field compares equal to a number, text or boolean"))
    return problems


def _rule(key: str, condition: Mapping[str, Any]) -> dict[str, Any]:
    return {"all": [{"m": {"$and": [{RULE_KEY: key}, copy.deepcopy(dict(condition))]}}], "run": key}


class _Host(durable_engine.Host):
    """A durable host whose actions record which rule matched the last message."""

    def __init__(self) -> None:
        self.matched: list[str] = []
        super().__init__()

    def get_action(self, action_name: str) -> Callable[[Any], None]:
        def record_match(closure: Any) -> None:
            self.matched.append(action_name)

        return record_match


class ConditionCompileError(Exception):
    """durable-rules rejected some conditions; ``errors`` maps each bot key to why."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class ConditionError(Exception):
    """durable-rules could not test a record (a value it cannot read)."""


def _fields_read(condition: Mapping[str, Any]) -> frozenset[str]:
    """The record fields a condition reads: the names its comparisons name (and the
    first part of a dotted name)."""
    names: set[str] = set()
    stack: list[Any] = [condition]
    while stack:
        for key, value in stack.pop().items():
            if key in _LOGICAL:
                stack.extend(value)
            elif key in OPERATORS:
                names.update(value)  # {field: operand}; an array test's operand is per item
            else:
                names.add(key)
    return frozenset(names | {name.split(".")[0] for name in names})


def _readable(value: Any) -> Any:
    # An integral float is the same number to durable-rules as an int, which it can parse
    # whatever the size (a float such as 1e16 is written "1e+16", which it cannot).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class ConditionSet:
    """Compiled ``where`` conditions of many bots, evaluated one record at a time."""

    def __init__(self, conditions: Mapping[str, Mapping[str, Any]]):
        """``conditions`` maps a key (unique per bot) to its durable-rules condition."""
        self._chunk_of: dict[str, str] = {}
        self._reads = {key: _fields_read(condition) for key, condition in conditions.items()}
        self._host: _Host | None = None
        if not conditions:
            return
        definitions: dict[str, dict[str, Any]] = {}
        for i, (key, condition) in enumerate(conditions.items()):
            chunk = f"chunk{i // CHUNK_SIZE}"
            definitions.setdefault(chunk, {})[f"r{i}"] = _rule(key, condition)
            self._chunk_of[key] = chunk
        with _DURABLE_LOCK:
            self._host = _Host()
            try:
                self._host.set_rulesets(definitions)
            except Exception:  # durable raises a bare Exception with an error code
                raise ConditionCompileError(self._find_culprits(conditions)) from None

    def _find_culprits(self, conditions: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
        # durable names no rule in its error; compiling each condition alone in its own
        # ruleset names the bot at fault.
        assert self._host is not None
        errors: dict[str, str] = {}
        for i, (key, condition) in enumerate(conditions.items()):
            try:
                self._host.set_rulesets({f"check{i}": {"r": _rule(key, condition)}})
            except Exception as exc:
                errors[key] = f"durable-rules cannot compile this condition ({exc})"
        return errors or {"*": "durable-rules rejected the ruleset"}

    def __contains__(self, key: str) -> bool:
        return key in self._chunk_of

    def matches(self, key: str, fields: Mapping[str, Any]) -> bool:
        """Whether the record ``fields`` satisfy the condition stored under ``key``.

        A key with no condition always matches. ``ConditionError`` if durable-rules
        cannot read the fields.
        """
        chunk = self._chunk_of.get(key)
        if chunk is None or self._host is None:
            return True
        message = {k: _readable(fields[k]) for k in self._reads[key] if fields.get(k) is not None}
        message[RULE_KEY] = key
        with _DURABLE_LOCK:
            self._host.matched.clear()
            try:
                state = self._host.post(chunk, message)
            except durable_engine.MessageNotHandledException:
                return False
            except Exception as exc:  # durable raises a bare Exception with an error code
                raise ConditionError(str(exc)) from None
            if state and "exception" in state:
                raise RuntimeError(f"durable-rules action failed: {state['exception']}")
            return key in self._host.matched
