"""The durable-rules evaluator: the only module that imports ``durable``.

Why a module of its own: durable-rules 2.0.28 (no release since 2020) builds a C
extension that does not load on Python 3.13 and later, so nothing else in salesbot may
import it at module level; :mod:`salesbot_core.conditions` imports this module only when
the ``durable`` evaluator is chosen. The condition language itself (checking, meaning) is
defined in :mod:`salesbot_core.conditions`; this module makes durable-rules evaluate it
exactly, and keeps its traps away from the rest of salesbot:

- a ruleset of more than ~512 rules hangs: rules are split into chunks of ``CHUNK_SIZE``;
- an exception in an action is swallowed into the returned state: the state is checked;
- posting an event that matches no rule raises ``MessageNotHandledException``: that is
  how "condition false" is read;
- its C state has no locking: every call into it holds ``_DURABLE_LOCK``;
- every ``Host`` starts two timer threads that re-arm themselves forever (3 -> 13 threads
  after five reloads) and call into the C state without any lock: ``_Host`` starts none
  (they dispatch queued messages and durable timers, which salesbot never uses, since a
  post runs its actions synchronously), and :meth:`DurableConditions.close` frees the C
  rulesets, so a reload leaks no threads (only durable's session state, see ``close``);
- ``set_rulesets`` mutates the dicts it is given: it always gets fresh copies;
- it compares loosely (``{$gte: {value: 100}}`` is true for "x"): comparisons are compiled
  against typed shadow fields (see ``_typed``);
- it reads a nested object as dotted names (``$ex: {a.b: 1}`` true for ``{a: {b: 1}}``)
  and has no presence test for a list item: a field's own name carries only a presence
  marker, and items carry one too (see ``_typed_object``);
- its regular-expression engine crashes the process (a class of 4,097 characters, an
  optional part repeated: fixed arrays with no bound check), answers wrongly (``.*a.``
  is false for ``aaaab``) and can take minutes to compile: it is given no pattern. Each
  ``$mt``/``$imt`` is matched by RE2 (:mod:`salesbot_core.conditions.patterns`) before
  the message is posted, and the rule tests the answer, a boolean shadow field (see
  ``_PatternTest``);
- it orders texts after escaping them (``"0" < "\\n"`` is true): ``$lt``, ``$lte``,
  ``$gt`` and ``$gte`` on a text compare a shadow that spells each character as its code
  point in hex (``_ordered``, posted only for a text the condition orders), which sorts
  as Python compares texts;
- it reads a text of 64 KiB or more modulo 65,536 (``"hot" + "b" * 65536`` equals
  ``"hot"``), and an object of more than 255 properties fails (error 302): a record whose
  message would hold either is tested by the Python evaluator instead (``_fits``), and a
  condition's own texts are at most ``MAX_TEXT_OPERAND`` characters;
- its message key ``RULE_KEY`` and the shadows are marked with U+001F, which a field name
  may not hold (``check_condition``), so a record's field cannot pose as either;
- a number JSON writes with an exponent but no point (``1e+16``, ``1e-05``) fails to parse
  (error 204): a message holds only the fields its condition reads, integral floats as
  integers, and any other failure is a ``ConditionError``, never a crash;
- it is C code with fixed-size arrays and few bound checks, so a condition it was never
  tried on may still corrupt its memory and kill the process: conditions that come from
  outside (over HTTP) are compiled first in a short-lived child process
  (``check_in_child``), where a crash kills the child, not the worker serving every
  account, and names the condition.

A condition is posted as a message holding the record's fields plus ``RULE_KEY`` naming
the bot, and each rule's condition is ``$and`` of that key and the bot's ``where``; so one
chunk holds many bots and a message can only match its own bot's rule.
"""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import version
from typing import Any

import durable.engine as durable_engine
import durable_rules_engine

from .language import (
    ARRAY,
    COMPARISONS,
    EXISTENCE,
    LOGICAL,
    ConditionCompileError,
    ConditionError,
    fields_read,
    kind_of,
)
from .patterns import compile_pattern
from .python import PythonConditions

#: How ``salesbot validate`` names this evaluator.
DESCRIPTION = f"durable-rules {version('durable-rules')}"
#: Rules per durable ruleset; well under the ~512 at which durable-rules hangs.
CHUNK_SIZE = 400
#: The message key that routes a message to one bot's rule: marked as the shadows are, so
#: no field a condition may name collides with it (names with control characters are
#: refused when a ruleset loads).
RULE_KEY = "\x1frule"
#: What a message may hold for durable-rules to read it as posted: it reads a text of
#: 65,536 bytes or more modulo 65,536 (``"hot" + "b" * 65536`` as ``"hot"``), and an object
#: of more than 255 properties is an error (302). A record whose message would pass
#: either is tested by the Python evaluator instead, which gives the answer durable-rules
#: would give if it could (the evaluators agree on everything else).
MAX_TEXT_BYTES = 65_536
MAX_PROPERTIES = 240

# durable-rules keeps process-wide C state without locking, so calls from every engine
# in the process are serialised; this lock is the one piece of module state, by necessity.
_DURABLE_LOCK = threading.Lock()

# durable-rules compares loosely: {$gte: {value: 100}} is true for the text "x", and
# {value: 1} for true. Comparisons are made type-strict by posting each scalar field twice:
# under its own name as a presence marker (for $ex/$nex) and under a shadow name marked
# with its type, present only for that type ("value\x1fnum" for an int or float that is
# not a bool, "\x1fstr" for text, "\x1fbool" for a boolean). Each comparison is compiled
# against the shadow of its operand's type, so a value of another type is simply missing:
# a comparison is then false, and $neq true (the value is not equal). List items get the
# same, as objects in a shadow list "tags\x1fitems" ({"\x1fnum": 5, "\x1fex": 1} for an
# item 5, typed keys and "<key>\x1fex" markers for an object item).
_MARK = "\x1f"
#: The presence marker's value: the value itself is never posted under its own name, so
#: durable can neither trip on it nor see inside an object (``a.b``).
_PRESENT = 1
#: Operators that order texts: durable compares a text after escaping it (a newline as
#: backslash-n), which moves control characters in the order ("0" < "\n" would be true).
#: They compare a shadow instead, each character written as six hex digits of its code
#: point: plain ASCII that sorts as the code points do.
_ORDERING = ("$lt", "$lte", "$gt", "$gte")


def _ordered(text: str) -> str:
    return "".join(f"{ord(char):06x}" for char in text)


def _text_shadows(prefix: str, text: str, ordered: bool) -> dict[str, str]:
    """The shadows of a text field: its value, and what orderings see (six times its
    length, so only for a field the condition orders)."""
    if ordered:
        return {prefix + "str": text, prefix + "ord": _ordered(text)}
    return {prefix + "str": text}


def _fits(message: Mapping[str, Any]) -> bool:
    """Whether durable-rules reads ``message`` as it is (see ``MAX_TEXT_BYTES``)."""
    if len(message) > MAX_PROPERTIES:
        return False
    for value in message.values():
        if isinstance(value, str):
            # Fewer than a quarter of the limit in characters cannot reach it in UTF-8.
            if (
                len(value) * 4 >= MAX_TEXT_BYTES
                and len(value.encode("utf-8", "surrogatepass")) >= MAX_TEXT_BYTES
            ):
                return False
        elif isinstance(value, list) and not all(_fits(item) for item in value):
            return False
    return True


@dataclass(frozen=True, slots=True)
class _PatternTest:
    """One ``$mt``/``$imt`` of a condition: durable-rules tests ``shadow`` (``p<n>``) for
    ``true``, posted beside the text it was matched on."""

    #: The record's field: the text, or the list whose items are tested.
    field: str
    #: ``None``: the field itself; ``""``: each item of the list; else a key of each
    #: object item (``$i.<key>``).
    item: str | None
    shadow: str
    matches: Callable[[str], bool]

    def answer(self, fields: Mapping[str, Any], message: dict[str, Any]) -> None:
        """Add the answer for ``fields`` to their ``message`` (none for a missing or
        non-text value: the comparison is then false)."""
        value = fields.get(self.field)
        if self.item is None:
            if isinstance(value, str):
                message[f"{self.field}{_MARK}{self.shadow}"] = self.matches(value)
            return
        if not isinstance(value, list):
            return
        for item, typed in zip(value, message[self.field + _MARK + "items"], strict=True):
            text = item if self.item == "" else item.get(self.item) if isinstance(item, dict) else None
            if isinstance(text, str):
                typed[f"{self.item}{_MARK}{self.shadow}"] = self.matches(text)


@dataclass
class _Plan:
    """What one condition needs posted beyond presence markers and plain shadows: the
    patterns it matches, and the texts it orders, as ``(field, item)`` (``item`` as in
    ``_PatternTest``)."""

    patterns: list[_PatternTest] = field(default_factory=list)
    ordered: set[tuple[str, str | None]] = field(default_factory=set)

    def ordered_items(self, name: str) -> frozenset[str]:
        return frozenset(item for text, item in self.ordered if text == name and item is not None)


def _typed_object(fields: Mapping[str, Any], plan: _Plan) -> dict[str, Any]:
    """A presence marker for each field, plus the typed shadow of each scalar and list
    (``None`` left out: a missing field), and the answer of each pattern of ``plan``."""
    message: dict[str, Any] = {}
    for name, raw in fields.items():
        if raw is None:
            continue
        value = _readable(raw)
        message[name] = _PRESENT
        kind = kind_of(value)
        if kind == "str":
            message.update(_text_shadows(name + _MARK, value, (name, None) in plan.ordered))
        elif kind is not None:
            message[name + _MARK + kind] = value
        elif isinstance(value, list):
            ordered = plan.ordered_items(name)
            message[name + _MARK + "items"] = [_typed_item(item, ordered) for item in value]
    for pattern in plan.patterns:
        pattern.answer(fields, message)
    return message


def _typed_item(item: Any, ordered: frozenset[str]) -> dict[str, Any]:
    """A list item's shadows; ``ordered`` names the texts a condition orders (``""``: the
    item itself, else a key of an object item)."""
    if item is None:
        return {}
    typed: dict[str, Any] = {_MARK + "ex": _PRESENT}
    if isinstance(item, dict):
        for key, value in item.items():
            if value is not None:
                typed[f"{key}{_MARK}ex"] = _PRESENT
                if (kind := kind_of(value)) == "str":
                    typed.update(_text_shadows(f"{key}{_MARK}", value, key in ordered))
                elif kind is not None:
                    typed[f"{key}{_MARK}{kind}"] = value
    elif (kind := kind_of(item)) == "str":
        typed.update(_text_shadows(_MARK, item, "" in ordered))
    elif kind is not None:
        typed[_MARK + kind] = item
    return typed


def _typed(condition: Mapping[str, Any], plan: _Plan, array: str | None = None) -> dict[str, Any]:
    """``condition`` compiled against the typed shadow fields (``array``: of an item of
    that list field); what its message needs beyond them is added to ``plan``."""
    items = array is not None

    def where(name: str) -> tuple[str, str | None]:
        """The ``(field, item)`` of a name (see ``_PatternTest``)."""
        return (name, None) if array is None else (array, "" if name == "$i" else name[3:])

    def field(name: str, kind: str | None) -> str:
        return f"$i.{_MARK}{kind}" if items and name == "$i" else f"{name}{_MARK}{kind}"

    parts: list[dict[str, Any]] = []
    for key, value in condition.items():
        if key in LOGICAL:
            parts.append({key: [_typed(item, plan, array) for item in value]})
        elif key in EXISTENCE:
            ((name, operand),) = value.items()
            parts.append({key: {field(name, "ex") if items else name: operand}})
        elif key in ARRAY:
            ((name, inner),) = value.items()
            parts.append({key: {name + _MARK + "items": _typed(inner, plan, name)}})
        elif key in ("$mt", "$imt"):
            ((name, operand),) = value.items()
            shadow = f"p{len(plan.patterns)}"
            matches = compile_pattern(operand, fold_ascii=key == "$imt")
            plan.patterns.append(_PatternTest(*where(name), shadow, matches))
            parts.append({field(name, shadow): True})
        elif key in COMPARISONS:
            ((name, operand),) = value.items()
            kind = kind_of(operand)
            if key in _ORDERING and kind == "str":
                kind, operand = "ord", _ordered(operand)
                plan.ordered.add(where(name))
            typed = field(name, kind)
            if key == "$neq":  # true also when the field is missing or of another type
                parts.append({"$or": [{"$nex": {typed: 1}}, {"$neq": {typed: operand}}]})
            else:
                parts.append({key: {typed: operand}})
        else:  # {field: value}: equality
            parts.append({field(key, kind_of(value)): value})
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _rule(key: str, condition: Mapping[str, Any], plan: _Plan) -> dict[str, Any]:
    typed = _typed(copy.deepcopy(dict(condition)), plan)
    return {"all": [{"m": {"$and": [{RULE_KEY: key}, typed]}}], "run": key}


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


class DurableConditions:
    """Conditions compiled into durable-rules rulesets (one ``Host``, chunks of rules)."""

    def __init__(self, conditions: Mapping[str, Mapping[str, Any]], isolate: float | None = None):
        """``conditions`` maps a key (unique per bot) to its checked condition;
        ``isolate``: they came from outside, so compile them in a child process first,
        allowed that many seconds (``check_in_child``), and raise
        ``ConditionCompileError`` for one that crashed it or took longer."""
        if isolate is not None and (errors := check_in_child(conditions, timeout=isolate)):
            raise ConditionCompileError(errors)
        self._chunk_of: dict[str, str] = {}
        self._reads = {key: fields_read(condition) for key, condition in conditions.items()}
        self._plans = {key: _Plan() for key in conditions}
        self._conditions = conditions
        self._host: _Host | None = None
        if not conditions:
            return
        definitions: dict[str, dict[str, Any]] = {}
        for i, (key, condition) in enumerate(conditions.items()):
            chunk = f"chunk{i // CHUNK_SIZE}"
            definitions.setdefault(chunk, {})[f"r{i}"] = _rule(key, condition, self._plans[key])
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
                self._host.set_rulesets({f"check{i}": {"r": _rule(key, condition, _Plan())}})
            except Exception as exc:
                errors[key] = f"durable-rules cannot compile this condition ({exc})"
        return errors or {"*": "durable-rules rejected the ruleset"}

    @cached_property
    def _twin(self) -> PythonConditions:
        """The Python evaluator of the same conditions, for a record durable-rules cannot
        read as posted (see ``MAX_TEXT_BYTES``): made on the first such record, not at
        every load."""
        return PythonConditions(self._conditions)

    def close(self) -> None:
        """Free durable's C rulesets for these conditions."""
        with _DURABLE_LOCK:
            if self._host is not None:
                self._host.close()
                self._host = None

    def matches(self, key: str, fields: Mapping[str, Any]) -> bool:
        """Whether ``fields`` satisfy the condition under ``key`` (a key it holds)."""
        chunk = self._chunk_of[key]
        # Patterns are matched here, outside durable-rules and its lock.
        message = _typed_object(
            {name: fields[name] for name in self._reads[key] if name in fields}, self._plans[key]
        )
        if not _fits(message):
            return self._twin.matches(key, fields)
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


def check_in_child(
    conditions: Mapping[str, Mapping[str, Any]],
    records: Sequence[Mapping[str, Any]] = ({},),
    timeout: float = 20.0,
) -> dict[str, str]:
    """Compile ``conditions`` in a child process, each alone and tested on ``records``,
    then all together; return why each key failed (empty if none did).

    A key that crashes the child (a signal, an abort), or takes more than ``timeout``
    seconds, fails with that said; so does one durable-rules refuses to compile. The
    child says which key it is on before it starts each, so a crash names its condition.
    """
    request = json.dumps({"conditions": conditions, "records": list(records)})
    command = [sys.executable, "-m", __name__]
    try:
        child = subprocess.run(command, input=request, capture_output=True, text=True, timeout=timeout)
        lines, code = child.stdout.splitlines(), child.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        lines, code = out.splitlines(), None
    errors: dict[str, str] = {}
    trying = "*"
    for line in lines:
        verb, _, data = line.partition(" ")
        if verb == "try":
            trying = json.loads(data)
        elif verb == "error":
            errors.update(json.loads(data))
        elif verb == "ok" and code == 0:
            return errors
    if code is None:
        why = f"took more than {timeout:g} s"
    elif code < 0:
        why = f"crashed ({signal.Signals(-code).name})"
    else:
        why = f"failed (exit status {code})"
    return errors | {trying: f"durable-rules {why} on this condition; it is refused"}


def _child() -> None:
    """The child of ``check_in_child``: a request on stdin, a line per step on stdout."""
    request = json.load(sys.stdin)
    conditions, records = request["conditions"], request["records"]

    def say(verb: str, data: Any) -> None:
        print(verb, json.dumps(data), flush=True)  # flushed: the parent reads what came before a crash

    for key, condition in conditions.items():
        say("try", key)
        try:
            alone = DurableConditions({key: condition})
        except ConditionCompileError as exc:
            say("error", exc.errors)
            continue
        for record in records:
            try:
                alone.matches(key, record)
            except ConditionError:  # a record it cannot read: the record's problem, not the condition's
                pass
        alone.close()
    if len(conditions) > 1:
        say("try", "*")
        try:
            DurableConditions(conditions).close()
        except ConditionCompileError as exc:
            say("error", exc.errors)
    print("ok", flush=True)


if __name__ == "__main__":
    _child()
