"""Safe placeholders in a bot's texts: its tag, wall note and notification.

Bot texts such as ``"Assigned by {bot.name} to {owner.name}"`` are written by account
admins, not by developers, so they are untrusted. Python's ``str.format`` cannot render
them: a placeholder may walk attributes and index (``{record.__class__}``,
``{owner.__init__.__globals__}``, ``{record[0]}``), which reaches far beyond the record
and can leak secrets held by the objects it starts from.

This module allows only ``{object.field}`` placeholders (optionally with a format spec,
``{record.value:,.0f}``), where the object is ``bot``, ``owner`` or ``record`` and the
field is one that object may show. :func:`check_template` lists what is wrong with a
text, so a ruleset can be rejected when it is loaded, and :func:`render` fills a checked
text from plain dicts: it looks every value up with ``dict.get`` and never calls
``getattr`` on anything, so even a text that slipped past validation cannot leak.

Rendering happens when an event arrives, long after the ruleset loaded, on values the
admin never saw: it must not fail. Format specs are limited to the parts that cannot
crash or explode on any value (no ``c``: ``{record.n:c}`` with 10**9 raised), any error
formatting a value falls back to its plain text, lone surrogates are replaced, and the
result is cut to a size limit.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Iterator, Mapping
from typing import Any

from .safetext import excerpt

__all__ = ["OBJECTS", "check_template", "record_values", "render"]

#: The objects a placeholder can name and the fields each one may show. ``None`` means any
#: field whose name is a valid Python identifier not starting with ``_``: records have
#: per-entity and custom fields, which are only known at render time.
OBJECTS: dict[str, frozenset[str] | None] = {
    "bot": frozenset({"id", "name", "entity"}),
    "owner": frozenset({"id", "name", "email"}),
    "record": None,
}

#: The largest width or precision a format spec may ask for.
MAX_SPEC_NUMBER = 200
#: The longest text (in characters) a note or notification template may be.
MAX_TEMPLATE_LENGTH = 2000
#: The most UTF-8 bytes of a rendered wall note and notification: ``{record.title}``
#: repeated 71,000 times rendered a 71 MB note.
MAX_NOTE_BYTES = 4096
MAX_NOTIFICATION_BYTES = 1024
#: What ends a rendering that was cut to its limit.
ELLIPSIS = "…"

#: The format specs allowed: [[fill]align][sign][0][width][grouping][.precision][type],
#: with a type among d f e g % (numbers) and s (text), or none. Left out: c (a code
#: point: OverflowError or a lone surrogate), x X o b n, # and z.
_SPEC = re.compile(
    r"(?:(?P<fill>.)?(?P<align>[<>=^]))?(?P<sign>[-+ ])?0?\d*"
    r"(?P<grouping>[,_])?(?:\.\d+)?(?P<type>[dfeg%s]?)",
    re.DOTALL,
)
_SPEC_HELP = (
    "a spec may have fill and alignment (< > ^ =), a sign, a width, ',' or '_', "
    "a precision and a type d, f, e, g, % or s"
)
_SURROGATES = re.compile("[\ud800-\udfff]")

_USE = "use bot.<field>, owner.<field> or record.<field>"

#: One replacement field of a text: (field name, format spec, conversion).
_Field = tuple[str, str, str | None]


def _parse(text: str) -> Iterator[tuple[str, _Field | None]]:
    """Split ``text`` into (literal text, replacement field or ``None``) pairs.

    Raises ``ValueError`` for unbalanced braces.
    """
    for literal, field_name, spec, conversion in string.Formatter().parse(text):
        if field_name is None:
            yield literal, None
        else:
            yield literal, (field_name, spec or "", conversion)


def _placeholder(field: _Field) -> str:
    """The placeholder as it could be written in the text, for error messages."""
    name, spec, conversion = field
    return (
        "{" + name + (f"!{conversion}" if conversion is not None else "") + (f":{spec}" if spec else "") + "}"
    )


def _field_problem(field: _Field) -> str | None:
    """Why a replacement field is not allowed, or ``None`` if it is."""
    name, spec, conversion = field
    if conversion is not None:
        return "conversions (!r, !s, !a) are not allowed"
    if "{" in spec or "}" in spec:
        return "a format spec cannot contain placeholders or braces"
    if any(int(number) > MAX_SPEC_NUMBER for number in re.findall(r"\d+", spec)):
        # "{record.title:>999999999}" would render a gigabyte of padding.
        return f"a format spec's width and precision cannot exceed {MAX_SPEC_NUMBER}"
    parts = _SPEC.fullmatch(spec)
    if parts is None:
        return f"format spec {excerpt(spec)} is not allowed; {_SPEC_HELP}"
    if parts["type"] == "s" and (parts["sign"] or parts["grouping"] or parts["align"] == "="):
        return "type 's' (text) takes no sign, grouping or '=' alignment"
    if "[" in name:
        return "indexing with [...] is not allowed; " + _USE
    obj, dot, attr = name.partition(".")
    if obj not in OBJECTS or not dot:
        return _USE
    if "." in attr:
        return f"only one field can be named: {obj}.<field>"
    if attr.startswith("_"):
        return "field names cannot start with '_'"
    allowed = OBJECTS[obj]
    if allowed is None:
        if not attr.isidentifier():
            return f"{attr!r} is not a valid field name"
    elif attr not in allowed:
        return f"{obj} has only {', '.join(sorted(allowed))}"
    return None


def check_template(text: str) -> list[str]:
    """Return the problems of a bot text, one human-readable line each; empty if it is valid.

    Every placeholder must be ``{object.field}`` or ``{object.field:spec}``, with the object
    and field allowed by :data:`OBJECTS`. Literal braces are written ``{{`` and ``}}``.
    """
    if len(text) > MAX_TEMPLATE_LENGTH:
        return [f"a text may be at most {MAX_TEMPLATE_LENGTH} characters long; this one has {len(text)}"]
    try:
        parts = list(_parse(text))
    except ValueError as exc:
        return [str(exc)]
    problems: list[str] = []
    for _, field in parts:
        if field is None:
            continue
        reason = _field_problem(field)
        if reason is not None:
            problem = f"placeholder {excerpt(_placeholder(field))} is not allowed: {reason}"
            if problem not in problems:
                problems.append(problem)
    return problems


@functools.lru_cache(maxsize=4096)
def _checked(text: str) -> tuple[tuple[str, _Field | None], ...]:
    """The parsed parts of a valid text, cached: a bot's texts are rendered once per
    assignment, and parsing and checking them each time showed in the event profile."""
    problems = check_template(text)
    if problems:
        raise ValueError("invalid template: " + "; ".join(problems))
    return tuple(_parse(text))


def render(text: str, values: Mapping[str, Mapping[str, Any]], limit: int | None = None) -> str:
    """Fill the placeholders of a bot text from plain dicts.

    ``values`` maps ``"bot"``, ``"owner"`` and ``"record"`` to dicts of their fields (see
    :func:`record_values` for a record). A missing value, or ``None``, renders as the empty
    string; a value that the format spec does not fit (or whose formatting fails in any
    way) renders with ``str``. Lone surrogates are replaced with U+FFFD, so the result can
    always be encoded as UTF-8. With ``limit``, a result of more than ``limit`` UTF-8 bytes
    is cut at a character boundary to at most ``limit - 3`` bytes and ends with ``…`` (3
    bytes): at most ``limit`` bytes in all.

    Raises ``ValueError`` if :func:`check_template` finds problems in ``text``.
    """
    out: list[str] = []
    length = 0
    for literal, field in _checked(text):
        out.append(literal)
        length += len(literal)
        if limit is not None and length > limit:
            break  # already too long in characters, so in bytes: stop building it
        if field is None:
            continue
        name, spec, _ = field
        obj, _, attr = name.partition(".")
        value = values.get(obj, {}).get(attr)
        if value is None:
            continue
        try:
            piece = format(value, spec)
        except Exception:  # a value the spec does not fit; rendering must not fail
            piece = str(value)
        out.append(piece)
        length += len(piece)
    rendered = _SURROGATES.sub("\ufffd", "".join(out))
    if limit is None:
        return rendered
    encoded = rendered.encode("utf-8")
    if len(encoded) <= limit:
        return rendered
    cut = encoded[: max(limit - len(ELLIPSIS.encode()), 0)].decode("utf-8", "ignore")
    return cut + ELLIPSIS


def record_values(record_dump: Mapping[str, Any]) -> dict[str, Any]:
    """The ``"record"`` dict for :func:`render`, from a record's ``model_dump()``.

    Custom ``fields`` are merged under the model's own fields (a model field wins over a
    custom field of the same name); ``owners``, ``tags`` and ``fields`` are left out, also
    when a custom field has one of those names.
    """
    merged = {**(record_dump.get("fields") or {}), **record_dump}
    for key in ("owners", "tags", "fields"):
        merged.pop(key, None)
    return merged
