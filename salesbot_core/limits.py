"""The bounds on what comes in from outside: events from a host, a JSON Lines file, a
list operation.

Every event is checked against these before anything is written, so a poison event (a
``NaN``, a lone surrogate, a number or a nesting no store or rules engine can take, a
record of many megabytes) is one ``EventError`` naming the event and the field, and never
blocks the events after it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

from pydantic import BaseModel
from pydantic_core import PydanticCustomError

from .errors import EventError, SalesbotError
from .safetext import excerpt

#: Integers are within ±(2**53 - 1): the range every JSON parser (JavaScript's included)
#: reads exactly, and the one durable-rules compares exactly (it compares as doubles).
#: Larger numbers (64-bit ids) should be sent as text.
MAX_INT = 2**53 - 1
#: Objects and arrays nest at most this deep, the event object itself being level 1
#: (so ``record.fields`` is level 3).
MAX_DEPTH = 32
#: ``at`` is from this instant (included)...
MIN_AT = datetime(1970, 1, 1, tzinfo=UTC)
#: ...up to this one (excluded). A naive ``at`` is taken as UTC.
MAX_AT = datetime(2200, 1, 1, tzinfo=UTC)
#: A record is at most 1 MiB as canonical JSON (UTF-8).
MAX_RECORD_BYTES = 1024 * 1024
#: At most this many owners on a record in an event.
MAX_OWNERS = 100
#: At most this many tags on a record in an event...
MAX_TAGS = 100
#: ...each at most this many characters (as a bot's ``actions.tag``).
MAX_TAG_LENGTH = 100
#: An update's ``changed`` lists at most this many field names...
MAX_CHANGED = 100
#: ...each at most this many characters.
MAX_CHANGED_NAME = 200
#: ``salesbot run`` reads lines of at most this many bytes (a record of ``MAX_RECORD_BYTES``
#: and the event around it); a longer line is skipped without being held in memory.
MAX_LINE_BYTES = 2 * MAX_RECORD_BYTES
#: Row ids the stores hand out (outbox notifications) are positive 64-bit integers: a
#: larger one cannot exist, and the drivers refuse to send it.
MAX_ROW_ID = 2**63 - 1
#: Event ids (and so list-operation ids with their prefix) are at most this long.
MAX_EVENT_ID = 200


def parse_instant(text: str, option: str) -> datetime:
    """An ISO 8601 date or time from ``MIN_AT`` up to ``MAX_AT`` (a naive one is UTC), as
    an aware UTC instant; ``SalesbotError`` naming ``option`` otherwise (a year 1 or 9999
    that no offset can move is refused too, not an ``OverflowError``)."""
    try:
        moment = datetime.fromisoformat(text.strip())
        moment = (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        moment = None
    if moment is None or not MIN_AT <= moment < MAX_AT:
        raise SalesbotError(
            f"{option}: {excerpt(text)} is not an ISO 8601 date or time (2026-11-01, "
            "2026-11-01T09:00+01:00) from 1970 to 2199"
        )
    return moment


def canonical_json(data: Any) -> str:
    """The one JSON text of ``data``: sorted keys, no spaces, no ``NaN``."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _label(data: object) -> str:
    event_id = data.get("id") if isinstance(data, Mapping) else None
    return f"event {excerpt(event_id, MAX_EVENT_ID)}" if isinstance(event_id, str) else "event"


def _kind(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else type(value).__name__)


def check_payload(data: object) -> None:
    """Raise ``EventError`` naming the field if a raw event is not a bounded JSON value.

    One iterative walk (a deep payload cannot exhaust the stack): every value is JSON
    (objects with text keys, arrays, text, finite numbers, booleans, null; a datetime for a
    Python caller's ``at``), text has no lone surrogates, integers are within
    ``MAX_INT``, and nothing nests deeper than ``MAX_DEPTH``.
    """
    if not isinstance(data, Mapping):
        raise EventError(f"event: not a JSON object but {_kind(data)}")
    if not _plain(data):
        _walk(data)


def _walk(data: Mapping[str, Any]) -> None:
    """``check_payload``'s full walk, which names the field at fault."""
    label = _label(data)

    def fail(path: tuple[object, ...], message: str) -> NoReturn:
        raise EventError(f"{label}: field {excerpt('.'.join(map(str, path)), MAX_EVENT_ID)}: {message}")

    stack: list[tuple[tuple[object, ...], object]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, BaseModel):  # a Python caller's record model: check its values
            value = value.model_dump()
        if isinstance(value, Mapping | list | tuple):
            # Levels are containers: the path to a value holds its level's keys.
            if len(path) >= MAX_DEPTH:
                fail(path, f"nested deeper than {MAX_DEPTH} levels")
            if isinstance(value, Mapping):
                for key, item in value.items():
                    if not isinstance(key, str):
                        fail(path, f"key {key!r} is not text")
                    if problem := _text_problem(key):
                        fail((*path, key), f"key {problem}")
                    stack.append(((*path, key), item))
            else:
                stack.extend(((*path, i), item) for i, item in enumerate(value))
        elif isinstance(value, str):
            if problem := _text_problem(value):
                fail(path, f"text {problem}")
        elif isinstance(value, bool) or value is None or isinstance(value, datetime):
            continue
        elif isinstance(value, int):
            if not -MAX_INT <= value <= MAX_INT:
                fail(path, f"integer out of range: at most ±{MAX_INT} (send larger numbers as text)")
        elif isinstance(value, float):
            if not math.isfinite(value):
                fail(path, f"{value} is not a finite number")
        else:
            fail(path, f"{type(value).__name__} is not a JSON value")


def _plain(data: Mapping[str, Any]) -> bool:
    """True when ``check_payload`` will find nothing wrong: the same walk without the
    paths (a tuple per value, built for the error message only), for the events nearly
    all of which pass. False sends the payload to the full walk, which says what is wrong
    (or accepts it: a record model is checked there)."""
    stack: list[tuple[int, object]] = [(0, data)]
    while stack:
        depth, value = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and _text_problem(value):
                return False
        elif isinstance(value, dict):
            if depth >= MAX_DEPTH:
                return False
            for key, item in value.items():
                if not isinstance(key, str) or (not key.isascii() and _text_problem(key)):
                    return False
                stack.append((depth + 1, item))
        elif isinstance(value, list):
            if depth >= MAX_DEPTH:
                return False
            stack.extend((depth + 1, item) for item in value)
        elif value is None or isinstance(value, bool | datetime):
            continue
        elif isinstance(value, int):
            if not -MAX_INT <= value <= MAX_INT:
                return False
        elif isinstance(value, float):
            if not math.isfinite(value):
                return False
        else:
            return False  # anything else (a tuple, a model): the full walk decides
    return True


def _text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored as UTF-8 (a lone surrogate), or None."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds a lone surrogate \\u{ord(text[exc.start]):04x} at position {exc.start}"
    return None


def check_at(at: datetime) -> datetime:
    """``at`` in UTC if it is in ``[MIN_AT, MAX_AT)`` (naive taken as UTC)."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    if not MIN_AT <= aware < MAX_AT:
        raise PydanticCustomError("at_range", _AT_RANGE)
    # One form per instant: "10:00", "10:00Z" and "12:00+02:00" are the same payload (and
    # the same fingerprint) when a host's serialiser changes how it writes the zone.
    return aware.astimezone(UTC)


_AT_RANGE = f"must be from {MIN_AT:%Y-%m-%dT%H:%M:%SZ} up to (not including) {MAX_AT:%Y-%m-%dT%H:%M:%SZ}"


def check_lists(event_id: str, record: Mapping[str, Any]) -> str:
    """``EventError`` if a record has too many owners or tags, or too long a tag; else
    the start of an error message about the record's fields."""
    label = f"event {event_id!r}: field 'record"
    for name, bound in (("owners", MAX_OWNERS), ("tags", MAX_TAGS)):
        if len(record[name]) > bound:
            raise EventError(f"{label}.{name}': {len(record[name])} items; at most {bound}")
    for i, tag in enumerate(record["tags"]):
        if len(tag) > MAX_TAG_LENGTH:
            raise EventError(f"{label}.tags.{i}': {len(tag)} characters; at most {MAX_TAG_LENGTH}")
    return label


def check_event(event_id: str, data: dict[str, Any]) -> str:
    """The canonical JSON of a validated event's JSON form ``data`` (its fingerprint is
    the SHA-256 of it); ``EventError`` if its record is too large or has too many owners
    or tags."""
    record = data["record"]
    label = check_lists(event_id, record)
    canonical = canonical_json(data)
    # The event is its record plus a few bounded fields: only when the whole is over the
    # bound can the record be, so the record alone is serialised only then (characters
    # are at most 4 bytes: fewer than a quarter of the bound needs no encoding).
    if len(canonical) * 4 > MAX_RECORD_BYTES and len(canonical.encode("utf-8")) > MAX_RECORD_BYTES:
        size = len(canonical_json(record).encode("utf-8"))
        if size > MAX_RECORD_BYTES:
            raise EventError(f"{label}': {size} bytes as canonical JSON; at most {MAX_RECORD_BYTES} (1 MiB)")
    return canonical


def fingerprint(canonical: str) -> str:
    """The SHA-256 of an event's canonical JSON: the same payload, the same fingerprint."""
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class NotJSON(ValueError):
    """Bytes that are not one JSON value by the rules of ``parse_json``."""


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _parse_int(text: str) -> int:
    # Python refuses to read integers of more than 4,300 digits (and takes long on fewer);
    # no integer in bounds has more than 16.
    if len(text.lstrip("-")) > len(str(MAX_INT)):
        raise ValueError(f"integer {excerpt(text, 20)} is out of range: at most ±{MAX_INT}")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A key given twice is ambiguous: another parser may keep the first value, so the
    # sender and salesbot would disagree on the event. It is refused, named.
    found = dict(pairs)
    if len(found) < len(pairs):
        twice = next(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
        raise ValueError(f"the key {excerpt(twice)} is given twice in one object")
    return found


def parse_json(data: bytes) -> Any:
    """One JSON value from UTF-8 bytes, as ``salesbot run`` reads a line and ``salesbot
    serve`` a request body: ``NaN`` and ``Infinity``, integers beyond ``MAX_INT``, a key
    given twice in one object and nesting too deep for the parser are ``NotJSON`` saying
    what is wrong, never a crash."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotJSON(f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {exc.start + 1})") from None
    try:
        return json.loads(
            text, parse_constant=_reject_constant, parse_int=_parse_int, object_pairs_hook=_unique_keys
        )
    except ValueError as exc:  # JSONDecodeError included
        raise NotJSON(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise NotJSON(f"not valid JSON: nested deeper than {MAX_DEPTH} levels") from None
