"""Text that came from outside (file names, record titles, values from ruleset files)
made safe to print on a terminal or quote in an error message.

A file name or a CRM value may hold control characters: an ESC sequence printed raw can
rewrite the terminal, hide lines or fake output. Everything salesbot prints that it did
not write itself goes through :func:`escape`; values quoted in error messages go through
:func:`excerpt`, which also bounds their length so an error never echoes a file's
contents.
"""

from __future__ import annotations

import re

__all__ = ["escape", "excerpt"]

#: C0 and C1 controls, DEL, and the Unicode marks that reorder or hide text (bidi
#: overrides and isolates, zero-width joiners, line and paragraph separators).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]|[\ud800-\udfff]")

#: How many characters of a value an error message quotes.
EXCERPT_LENGTH = 40


def _code(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\t":
        return "\\t"
    if char == "\n":
        return "\\n"
    if char == "\r":
        return "\\r"
    point = ord(char)
    return f"\\x{point:02x}" if point <= 0xFF else f"\\u{point:04x}"


def escape(text: str) -> str:
    """``text`` with every control or invisible character written as an escape (``\\x1b``)."""
    return _UNSAFE.sub(_code, text)


def excerpt(value: object, limit: int = EXCERPT_LENGTH) -> str:
    """A short, escaped, quoted excerpt of ``value`` for an error message: at most
    ``limit`` characters of it, with ``…`` when it was cut."""
    text = value if isinstance(value, str) else repr(value)
    cut = text[:limit] + ("…" if len(text) > limit else "")
    return "'" + escape(cut).replace("'", "\\'") + "'"
