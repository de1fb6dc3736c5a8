"""The condition language of ``trigger.where`` and ``ConditionSet``, which evaluates it.

Why a package: the language (``language``: checking, meaning, operators) is one idea,
and its two evaluators another, each importing only ``language``:

- ``durable`` (:mod:`salesbot_core.conditions.durable`): durable-rules 2.0.28, the default
  where it runs (Python 3.11 and 3.12), behind its adapter, the only module importing
  ``durable``;
- ``python`` (:mod:`salesbot_core.conditions.python`): a plain-Python evaluator of the
  same language, the only one on Python 3.13 and later.

This facade picks one per ``ConditionSet`` (``Engine(..., conditions=...)``), else by the
``SALESBOT_CONDITIONS`` environment variable, else the default, and imports it only then:
importing the package never imports ``durable``, and no evaluator imports it back. The
language's names are re-exported, so callers import everything from here.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from typing import Any, Protocol

from ..safetext import excerpt
from ..vocabulary import EVALUATOR_VARIABLE as EVALUATOR_VARIABLE
from ..vocabulary import EVALUATORS as EVALUATORS
from .language import (
    ARRAY,
    COMPARISONS,
    EXISTENCE,
    LOGICAL,
    MAX_NESTED_REPEAT,
    MAX_PATTERN_LENGTH,
    MAX_REPEAT,
    MAX_TEXT_OPERAND,
    OPERATORS,
    QUOTED_CONDITION,
    ConditionCompileError,
    ConditionError,
    EvaluatorError,
    check_condition,
    fields_read,
    kind_of,
    pattern_problem,
    quoted,
)

__all__ = [
    "ARRAY",
    "COMPARISONS",
    "EVALUATORS",
    "EVALUATOR_VARIABLE",
    "EXISTENCE",
    "ISOLATION_SECONDS",
    "ISOLATION_VARIABLE",
    "LOGICAL",
    "MAX_NESTED_REPEAT",
    "MAX_PATTERN_LENGTH",
    "MAX_REPEAT",
    "MAX_TEXT_OPERAND",
    "OPERATORS",
    "QUOTED_CONDITION",
    "ConditionCompileError",
    "ConditionError",
    "ConditionSet",
    "EvaluatorError",
    "check_condition",
    "choose_evaluator",
    "durable_available",
    "fields_read",
    "isolation_seconds",
    "kind_of",
    "pattern_problem",
    "quoted",
]


def durable_available() -> bool:
    """Whether durable-rules is installed and loads on this Python (not on 3.13+)."""
    try:
        importlib.import_module("durable.engine")
    except ImportError:
        return False
    return True


def choose_evaluator(setting: str | None = None) -> str:
    """The evaluator to use: ``setting``, else ``SALESBOT_CONDITIONS``, else ``durable``
    where durable-rules runs and ``python`` elsewhere. ``EvaluatorError`` if the one asked
    for is unknown or cannot run here."""
    chosen = setting or os.environ.get(EVALUATOR_VARIABLE) or None
    if chosen is None:
        return "durable" if durable_available() else "python"
    if chosen not in EVALUATORS:
        source = "" if setting else f" (from {EVALUATOR_VARIABLE})"
        raise EvaluatorError(
            f"unknown condition evaluator {excerpt(chosen)}{source}; known: {', '.join(EVALUATORS)}"
        )
    if chosen == "durable" and not durable_available():
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        raise EvaluatorError(
            f"the 'durable' condition evaluator needs durable-rules, which is not installed or "
            f"does not load on Python {python} (it runs on 3.11 and 3.12); use 'python'"
        )
    return chosen


#: How long durable-rules may take to compile conditions from outside, in the child
#: process of ``ConditionSet(isolated=True)``: ordinary rules take well under a second, and
#: a caller over HTTP must not hold a worker's thread much longer.
ISOLATION_SECONDS = 20.0
ISOLATION_VARIABLE = "SALESBOT_ISOLATION_SECONDS"


def isolation_seconds() -> float:
    """``SALESBOT_ISOLATION_SECONDS``, else ``ISOLATION_SECONDS``; ``EvaluatorError`` for a
    value that is not a number of seconds above 0 and at most 3600."""
    text = os.environ.get(ISOLATION_VARIABLE)
    if text is None:
        return ISOLATION_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 3600:
        raise EvaluatorError(
            f"{ISOLATION_VARIABLE} must be seconds above 0 and at most 3600, not {excerpt(text)}"
        )
    return seconds


class _Evaluator(Protocol):
    def matches(self, key: str, fields: Mapping[str, Any]) -> bool: ...

    def close(self) -> None: ...


class ConditionSet:
    """Compiled ``where`` conditions of many bots, evaluated one record at a time."""

    def __init__(
        self,
        conditions: Mapping[str, Mapping[str, Any]],
        evaluator: str | None = None,
        isolated: bool = False,
    ):
        """``conditions`` maps a key (unique per bot) to its checked condition;
        ``evaluator`` is ``durable`` or ``python`` (default: see ``choose_evaluator``);
        ``isolated``: the conditions came from outside (over HTTP), so durable-rules
        compiles them in a child process first, where a crash or a compile longer than
        ``isolation_seconds()`` fails the condition instead of this process (the Python
        evaluator cannot crash).

        ``ConditionCompileError`` if the evaluator rejects some; ``EvaluatorError`` for a
        bad ``evaluator``.
        """
        #: ``durable`` or ``python``.
        self.evaluator = choose_evaluator(evaluator)
        self._keys = frozenset(conditions)
        self._closed = False
        self._impl: _Evaluator
        if self.evaluator == "durable":
            from .durable import DurableConditions

            self._impl = DurableConditions(conditions, isolation_seconds() if isolated else None)
        else:
            from .python import PythonConditions

            self._impl = PythonConditions(conditions)

    @property
    def description(self) -> str:
        """The evaluator in words, e.g. ``durable-rules 2.0.28`` or ``python``."""
        if self.evaluator == "durable":
            from .durable import DESCRIPTION

            return DESCRIPTION
        return "python"

    def close(self) -> None:
        """Free the evaluator's state for these conditions; ``matches`` then raises.

        Called when an engine's rules are replaced (reload) or the engine closes.
        """
        self._closed = True
        self._impl.close()

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def matches(self, key: str, fields: Mapping[str, Any]) -> bool:
        """Whether the record ``fields`` satisfy the condition stored under ``key``.

        A key with no condition always matches. ``ConditionError`` if the evaluator
        cannot read the fields.
        """
        if key not in self._keys:
            return True
        if self._closed:
            raise RuntimeError("these conditions were closed")
        return self._impl.matches(key, fields)
