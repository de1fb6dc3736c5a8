"""``$mt``/``$imt`` patterns, matched by RE2 for both evaluators.

Why RE2 (google-re2) and not durable-rules' own engine or Python's ``re``:

- durable-rules' regular-expression engine is C code with fixed-size arrays and no bound
  checks: a class of 4,097 characters, ``([a-zA-Z]?){100}`` or ``.(.{10}[Ā-ę一-丙]*.){10}``
  corrupt its memory and kill the process; it answers wrongly on small patterns
  (``.*a.`` is false for ``aaaab``) and on texts of 64 KiB or more (it reads the length
  modulo 65,536); and some patterns take it minutes to compile (``((.*.*)*){10}``);
- Python's ``re`` backtracks: ``(a|a)*b`` takes seconds on 26 characters, so one pattern
  in a ruleset could hold a worker for ever on a 1 MiB text;
- RE2 matches in time linear in the text, with memory bounded per pattern, and supports
  exactly the constructs of the checked subset (``pattern_problem``).

So durable-rules never sees a pattern: its adapter posts whether each pattern matched as a
boolean, computed here, and the Python evaluator calls the same function; the two agree on
patterns by construction.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import re2

#: The memory RE2 may use for one pattern's automata (its default is 8 MiB): the checked
#: subset (200 characters, repeats up to 100) compiles well under it.
MAX_PATTERN_MEMORY = 8 << 20

_OPTIONS = re2.Options()
_OPTIONS.dot_nl = True  # "." matches any character, a newline too
_OPTIONS.never_capture = True
_OPTIONS.max_mem = MAX_PATTERN_MEMORY
_OPTIONS.log_errors = False


def _fold(low: str, high: str) -> str:
    """The other case of the ASCII letters from ``low`` to ``high``, as class ranges."""
    extra = []
    for first, last, shift in (("a", "z", -32), ("A", "Z", 32)):
        start, end = max(low, first), min(high, last)
        if start <= end:
            extra.append(f"{chr(ord(start) + shift)}-{chr(ord(end) + shift)}")
    return "".join(extra)


def translate(pattern: str, fold_ascii: bool = False) -> str:
    """A checked pattern (see ``pattern_problem``) in RE2's syntax: literal characters
    escaped, groups not capturing; ``fold_ascii``: each ASCII letter matches either case
    (``$imt``), and no other character is folded (RE2's own case folding is Unicode's)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == ".":
            out.append(".")
        elif char == "(":
            out.append("(?:")
        elif char in ")|*+?":
            out.append(char)
        elif char == "{" and (repeat := re.match(r"\{\d+(,\d*)?\}", pattern[i:])) is not None:
            out.append(repeat[0])
            i += len(repeat[0]) - 1
        elif char == "[":
            end = pattern.index("]", i + 2)  # a checked class is never empty
            out.append(_class(pattern[i + 1 : end], fold_ascii))
            i = end
        elif fold_ascii and char.isascii() and char.isalpha():
            out.append(f"[{char.lower()}{char.upper()}]")
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _class(body: str, fold_ascii: bool) -> str:
    negated = body.startswith("^")
    parts: list[str] = []
    j = 1 if negated else 0
    while j < len(body):
        if body[j + 1 : j + 2] == "-" and j + 2 < len(body):
            low, high = body[j], body[j + 2]
            j += 3
        else:
            low = high = body[j]
            j += 1
        parts.append(re.escape(low) if low == high else f"{re.escape(low)}-{re.escape(high)}")
        if fold_ascii:
            parts.append(_fold(low, high))
    return f"[{'^' if negated else ''}{''.join(parts)}]"


def compile_pattern(pattern: str, fold_ascii: bool = False) -> Callable[[str], bool]:
    """A checked pattern as a test of a whole text (``fold_ascii``: for ``$imt``)."""
    fullmatch = re2.compile(translate(pattern, fold_ascii), _OPTIONS).fullmatch
    return lambda text: fullmatch(text) is not None
