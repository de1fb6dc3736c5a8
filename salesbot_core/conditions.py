"""The durable-rules adapter: the only module that imports ``durable``.

Ruleset ``where`` conditions are durable-rules JSON conditions. durable-rules 2.0.28 has
traps this module keeps away from the rest of salesbot:

- a ruleset of more than ~512 rules hangs: rules are split into chunks of ``CHUNK_SIZE``;
- an exception in an action is swallowed into the returned state: the state is checked;
- posting an event that matches no rule raises ``MessageNotHandledException``: that is
  how "condition false" is read;
- its C state has no locking: every call into it holds ``_DURABLE_LOCK``;
- every ``Host`` starts two timer threads that re-arm themselves forever (3 -> 13 threads
  after five reloads) and call into the C state without any lock: ``_Host`` starts none
  (they dispatch queued messages and durable timers, which salesbot never uses, since a
  post runs its actions synchronously), and :meth:`ConditionSet.close` frees the C
  rulesets, so a reload leaks no threads (only durable's session state, see ``close``);
- ``set_rulesets`` mutates the dicts it is given: it always gets fresh copies;
- it compares loosely (``{$gte: {value: 100}}`` is true for "x"): comparisons are compiled
  against typed shadow fields (see ``_typed``);
- its regular expressions differ from Python's: ``pattern_problem`` allows only the
  subset that behaves as ``re.fullmatch``;
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
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

import durable.engine as durable_engine
import durable_rules_engine

from .safetext import excerpt

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

#: The longest ``$mt``/``$imt`` pattern, and the most repeats ``{m,n}`` may ask for:
#: durable-rules compiles a pattern to a state machine that grows with both.
MAX_PATTERN_LENGTH = 200
MAX_REPEAT = 100
#: Characters with a meaning in a pattern; every other character matches itself.
_PATTERN_SPECIAL = set("\\^$.|?*+()[]{}%")
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")


def pattern_problem(pattern: str) -> str | None:
    """Why durable-rules cannot run ``pattern`` as Python's ``re.fullmatch`` would, or ``None``.

    durable-rules 2.0.28 has its own regular-expression engine. Probed construct by
    construct against ``re.fullmatch``, it agrees on: literal characters, ``.``, classes
    ``[a-z0-9_]`` and ``[^...]``, groups ``( )``, alternatives ``|`` and the repeats
    ``* + ? {m} {m,} {m,n}``. It always matches the whole text. It differs or fails on
    everything else, which this rejects: ``^`` and ``$`` (accepted, then never match),
    every backslash escape (``\\d``, ``\\.``, ``\\n``: never match), ``(?...)`` groups
    (lookarounds, flags), ``%``, ``{0}``, empty groups or alternatives, ``]`` first in a
    class, ``-`` anywhere but last in a class. Odd classes (``[]``, ``[^]``) even
    corrupted its memory. What is allowed is allowed strictly, so it behaves as Python's.
    """
    if not pattern:
        return "an empty pattern is not allowed"
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"a pattern may be at most {MAX_PATTERN_LENGTH} characters long"
    depth = 0
    can_repeat = False  # the previous item is a character, class or group
    empty = True  # the current alternative has nothing in it yet
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char in "^$":
            return f"{char!r} is not supported: a pattern always matches the whole text (use .* for any text)"
        if char == "\\":
            return "backslash escapes are not supported: write a class instead ([0-9] for \\d, [.] for \\.)"
        if char == "%":
            return "'%' is not supported by durable-rules"
        if char == "(":
            if pattern.startswith("(?", i):
                return "(?...) groups (lookarounds, flags, non-capturing) are not supported"
            depth, can_repeat, empty = depth + 1, False, True
        elif char == ")":
            if depth == 0:
                return "unbalanced ')'"
            if empty:
                return "empty groups and alternatives are not supported: make a part optional with ?"
            depth, can_repeat = depth - 1, True
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
            if repeat is not None:
                low = int(repeat[1])
                high = low if repeat[2] is None else int(repeat[3]) if repeat[3] else None
                if max(low, high or 0) > MAX_REPEAT or (high is not None and (high < 1 or high < low)):
                    return f"a repeat {{m,n}} needs 1 <= n, m <= n and both at most {MAX_REPEAT}"
                i = repeat.end() - 1
            can_repeat = False
        elif char == "[":
            end = _class_end(pattern, i)
            if isinstance(end, str):
                return end
            i, can_repeat, empty = end, True, False
        else:  # "." or a character matching itself (including "]" and "}")
            can_repeat, empty = True, False
        i += 1
    if depth:
        return "unbalanced '('"
    if empty:
        return "empty groups and alternatives are not supported: make a part optional with ?"
    return None


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
            elif key in ("$lt", "$lte", "$gt", "$gte") and isinstance(operand, bool):
                problems.append((f"{here}.{field}", f"{key} compares with a number or text"))
            elif key in ("$mt", "$imt") and not isinstance(operand, str):
                problems.append((f"{here}.{field}", f"{key} takes a regular expression"))
            elif key in ("$mt", "$imt") and (reason := pattern_problem(operand)) is not None:
                problems.append((f"{here}.{field}", f"pattern {excerpt(operand)}: {reason}"))
            elif key in _ARRAY:
                problems += check_condition(operand, f"{here}.{field}")
        elif key.startswith("$"):
            problems.append((here, f"unknown operator {excerpt(key)}; known: {', '.join(sorted(OPERATORS))}"))
        elif not isinstance(value, _SCALARS):
            problems.append((here, "a field compares equal to a number, text or boolean"))
    return problems


# durable-rules compares loosely: {$gte: {value: 100}} is true for the text "x", and
# {value: 1} for true. Comparisons are made type-strict by posting each scalar field twice:
# as itself (for $ex/$nex) and under a shadow name marked with its type, present only for
# that type ("value\x1fnum" for an int or float that is not a bool, "\x1fstr" for text,
# "\x1fbool" for a boolean). Each comparison is compiled against the shadow of its
# operand's type, so a value of another type is simply missing: a comparison is then
# false, and $neq true (the value is not equal). List items get the same, as objects in a
# shadow list "tags\x1fitems" ({"\x1fnum": 5} for an item 5, typed keys for an object).
_MARK = "\x1f"


def _kind(value: Any) -> str | None:
    """The type a shadow field is marked with, or ``None`` for a value that gets none."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "num"
    if isinstance(value, str):
        return "str"
    return None


def _typed_object(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` plus the typed shadow of each scalar and list (``None`` left out)."""
    message: dict[str, Any] = {}
    for name, raw in fields.items():
        if raw is None:
            continue
        value = _readable(raw)
        message[name] = value
        kind = _kind(value)
        if kind is not None:
            message[name + _MARK + kind] = value
        elif isinstance(value, list):
            message[name + _MARK + "items"] = [_typed_item(item) for item in value]
    return message


def _typed_item(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        return {f"{k}{_MARK}{kind}": v for k, v in item.items() if (kind := _kind(v)) is not None}
    kind = _kind(item)
    return {} if kind is None else {_MARK + kind: item}


def _typed(condition: Mapping[str, Any], items: bool = False) -> dict[str, Any]:
    """``condition`` compiled against the typed shadow fields (``items``: of a list item)."""

    def field(name: str, kind: str | None) -> str:
        return f"$i.{_MARK}{kind}" if items and name == "$i" else f"{name}{_MARK}{kind}"

    parts: list[dict[str, Any]] = []
    for key, value in condition.items():
        if key in _LOGICAL:
            parts.append({key: [_typed(item, items) for item in value]})
        elif key in _EXISTENCE:
            parts.append({key: dict(value)})
        elif key in _ARRAY:
            ((name, inner),) = value.items()
            parts.append({key: {name + _MARK + "items": _typed(inner, items=True)}})
        elif key in _COMPARISONS:
            ((name, operand),) = value.items()
            typed = field(name, "str" if key in ("$mt", "$imt") else _kind(operand))
            if key == "$neq":  # true also when the field is missing or of another type
                parts.append({"$or": [{"$nex": {typed: 1}}, {"$neq": {typed: operand}}]})
            else:
                parts.append({key: {typed: operand}})
        else:  # {field: value}: equality
            parts.append({field(key, _kind(value)): value})
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _rule(key: str, condition: Mapping[str, Any]) -> dict[str, Any]:
    return {"all": [{"m": {"$and": [{RULE_KEY: key}, _typed(copy.deepcopy(dict(condition)))]}}], "run": key}


class _Host(durable_engine.Host):
    """A durable host whose actions record which rule matched the last message."""

    def __init__(self) -> None:
        self.matched: list[str] = []
        super().__init__()

    def _run(self) -> None:
        """Start no dispatch threads (see the module docstring)."""

    def close(self) -> None:
        """Free the C rulesets; the host is not used again."""
        for ruleset in self._ruleset_list:
            # Not delete_state: it crashes the process (SIGSEGV) once a message matched no
            # rule; so the session state (about 700 KB per chunk once a message was
            # posted) stays allocated, a known leak per reload.
            durable_rules_engine.delete_ruleset(ruleset._handle)
        self._ruleset_list.clear()
        self._ruleset_directory.clear()

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
    if isinstance(value, list):
        return [_readable(item) for item in value]
    if isinstance(value, dict):
        return {k: _readable(v) for k, v in value.items()}
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
                errors = self._find_culprits(conditions)
                self._host.close()
                raise ConditionCompileError(errors) from None

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

    def close(self) -> None:
        """Free durable's state for these conditions; ``matches`` then raises.

        Called when an engine's rules are replaced (reload) or the engine closes.
        """
        with _DURABLE_LOCK:
            if self._host is not None:
                self._host.close()
                self._host = None

    def __contains__(self, key: str) -> bool:
        return key in self._chunk_of

    def matches(self, key: str, fields: Mapping[str, Any]) -> bool:
        """Whether the record ``fields`` satisfy the condition stored under ``key``.

        A key with no condition always matches. ``ConditionError`` if durable-rules
        cannot read the fields.
        """
        chunk = self._chunk_of.get(key)
        if chunk is None:
            return True
        message = _typed_object({name: fields[name] for name in self._reads[key] if name in fields})
        message[RULE_KEY] = key
        with _DURABLE_LOCK:
            if self._host is None:  # closed: its C rulesets are freed
                raise RuntimeError("these conditions were closed")
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
