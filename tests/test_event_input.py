"""Events from outside are bounded and total: a poison event is one ``EventError`` naming
the event and the field, nothing is written, and the events after it go on."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cli_runner import salesbot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factories import NO_DURABLE, PYDANTIC, TEAM, Message, deal_event
from salesbot_core import Engine, Event, EventError, IdempotencyConflict
from salesbot_core.conditions import durable_available
from salesbot_core.limits import MAX_INT, NotJSON, _plain, _walk, canonical_json, parse_json
from salesbot_core.models import FROM_STORE, list_event_id, utc_iso

RULES = (
    TEAM
    + """
settings: {multiple_owners: true}
bots:
  - {id: inbound, users: [anna, bartek]}
  - {id: big, users: [celina], trigger: {where: {$gte: {value: 100}}}}
"""
)


@pytest.fixture
def rules(write_rules) -> Path:
    return write_rules(**{"r.yaml": RULES})


@pytest.fixture
def engine(rules: Path, tmp_path: Path) -> Iterator[Engine]:
    with Engine(rules, tmp_path / "s.db") as engine:
        yield engine


def nested(depth: int) -> Any:
    """``depth`` objects, one inside the other."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def snapshot(engine: Engine) -> tuple[object, ...]:
    return (
        engine.store.get_record("default", "deal", "d1"),
        engine.store.assignment_counts(),
        engine.outbox(),
    )


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            deal_event(1, fields={"x": float("nan")}),
            "event 'e1': field 'record.fields.x': nan is not a finite number",
        ),
        (deal_event(1, value=float("inf")), "event 'e1': field 'record.value': inf is not a finite number"),
        (
            deal_event(1, fields={"x": [1, {"y": -float("inf")}]}),
            "event 'e1': field 'record.fields.x.1.y': -inf is not a finite number",
        ),
        (
            deal_event(1, title="ab\ud800"),
            "event 'e1': field 'record.title': text holds a lone surrogate \\ud800 at position 2",
        ),
        (
            deal_event(1, fields={"k\udc00": 1}),
            "event 'e1': field 'record.fields.k\\udc00': key holds a lone surrogate \\udc00 at position 1",
        ),
        (
            {**deal_event(1), "id": "e\ud800"},
            "event 'e\\ud800': field 'id': text holds a lone surrogate \\ud800 at position 1",
        ),
        (
            deal_event(1, fields={"x": 10**5000}),
            "event 'e1': field 'record.fields.x': integer out of range: at most ±9007199254740991 "
            "(send larger numbers as text)",
        ),
        (
            deal_event(1, fields={"x": [MAX_INT, -MAX_INT - 1]}),
            "event 'e1': field 'record.fields.x.1': integer out of range: at most ±9007199254740991 "
            "(send larger numbers as text)",
        ),
        (
            deal_event(1, fields=nested(31)),  # the event is level 1, fields level 3
            "event 'e1': field 'record.fields" + ".a" * 30 + "': nested deeper than 32 levels",
        ),
        (
            deal_event(1, fields=nested(100_000)),
            "event 'e1': field 'record.fields" + ".a" * 30 + "': nested deeper than 32 levels",
        ),
        (
            {**deal_event(1), "at": "0001-01-01T00:00:00"},
            "event 'e1': field 'at': must be from 1970-01-01T00:00:00Z up to (not including) "
            "2200-01-01T00:00:00Z",
        ),
        (
            {**deal_event(1), "at": "9999-12-31T23:59:59-05:00"},
            "event 'e1': field 'at': must be from 1970-01-01T00:00:00Z up to (not including) "
            "2200-01-01T00:00:00Z",
        ),
        (
            {**deal_event(1), "at": "1969-12-31T23:59:59.999999"},
            "event 'e1': field 'at': must be from 1970-01-01T00:00:00Z up to (not including) "
            "2200-01-01T00:00:00Z",
        ),
        (
            {**deal_event(1), "at": "2200-01-01T00:00:00Z"},
            "event 'e1': field 'at': must be from 1970-01-01T00:00:00Z up to (not including) "
            "2200-01-01T00:00:00Z",
        ),
        (
            deal_event(1, title="x" * 1024 * 1024),
            "event 'e1': field 'record': 1048729 bytes as canonical JSON; at most 1048576 (1 MiB)",
        ),
        (
            deal_event(1, tags=[f"t{n}" for n in range(101)]),
            "event 'e1': field 'record.tags': 101 items; at most 100",
        ),
        (deal_event(1, tags=["x" * 101]), "event 'e1': field 'record.tags.0': 101 characters; at most 100"),
        (
            {**deal_event(1), "changed": ["title"] * 101},
            Message(f"event 'e1': field 'changed': {PYDANTIC}100{PYDANTIC}"),
        ),
        (
            deal_event(1, fields={"x": object()}),
            "event 'e1': field 'record.fields.x': object is not a JSON value",
        ),
        (deal_event(1, fields={1: "one"}), "event 'e1': field 'record.fields': key 1 is not text"),
        ([deal_event(1)], "event: not a JSON object but an array"),
        ("e1", "event: not a JSON object but a string"),
        (17, "event: not a JSON object but a number"),
        (None, "event: not a JSON object but null"),
        (
            {**deal_event(1), "id": "list/op/deal/d1"},
            "event 'list/op/deal/d1': field 'id': ids starting with 'list/' are reserved for list "
            "operations (Engine.assign_list)",
        ),
    ],
)
def test_an_unbounded_event_is_an_event_error_naming_the_field(
    engine: Engine, event: Any, message: str
) -> None:
    before = snapshot(engine)
    with pytest.raises(EventError) as info:
        engine.handle(event)
    assert str(info.value) == message
    with pytest.raises(EventError) as again:
        engine.handle_many([deal_event(2), event])
    assert str(again.value) == message
    assert snapshot(engine) == before
    assert engine.handle(deal_event(3)).owners_after == ["anna"]  # nothing blocked, rotation untouched


def test_the_bounds_themselves_are_accepted(engine: Engine) -> None:
    event = deal_event(
        1,
        fields={"deep": nested(29), "big": MAX_INT, "small": -MAX_INT, "text": "zażółć 🦊"},
        tags=[f"t{n}" for n in range(100)],
        title="x" * (1024 * 1024 - 2000),
    )
    for at in ("1970-01-01T00:00:00Z", "2199-12-31T23:59:59.999999", "2200-01-01T01:00:00+02:00"):
        outcome = engine.handle({**event, "id": at, "at": at})
        assert [d.status for d in outcome.decisions] == ["assigned"]


def test_a_python_caller_s_nan_and_a_bad_at_are_event_errors(engine: Engine) -> None:
    with pytest.raises(EventError) as info:
        Event(id="e1", kind="created", record={"entity": "deal", "id": "d1", "value": float("nan")})
    assert str(info.value) == "event 'e1': field 'record.value': nan is not a finite number"
    with pytest.raises(EventError) as info:
        engine.handle({**deal_event(1), "at": datetime(1, 1, 1)})
    assert str(info.value) == (
        "event 'e1': field 'at': must be from 1970-01-01T00:00:00Z up to (not including) 2200-01-01T00:00:00Z"
    )


@pytest.mark.parametrize(
    ("value", "fields", "owners"),
    [
        (1e16, {}, ["celina"]),  # JSON writes 1e16 as 1e+16, which durable-rules cannot parse
        (99, {"ratio": 1e-05}, []),  # a field the condition does not read
        (150, {f"f{n}": n for n in range(300)}, ["celina"]),  # more fields than durable takes
    ],
)
def test_a_where_bot_tests_records_durable_rules_alone_cannot_read(
    engine: Engine, value: float, fields: dict[str, Any], owners: list[str]
) -> None:
    outcome = engine.handle(deal_event(1, ["bot:big"], value=value, fields=fields))
    assert outcome.owners_after == owners


@pytest.mark.skipif(not durable_available(), reason=NO_DURABLE)
@pytest.mark.skipif(os.environ.get("SALESBOT_CONDITIONS") == "python", reason="durable-rules only")
def test_a_value_durable_rules_cannot_read_is_an_event_error(engine: Engine) -> None:
    with pytest.raises(EventError) as info:
        engine.handle(deal_event(1, ["bot:big"], value=1e-05))
    assert str(info.value) == (
        "event 'e1': field 'record': bot 'big' cannot test its trigger.where on this record: "
        "Could not assert event, error code: 204"
    )
    assert snapshot(engine) == (None, [], [])


def test_the_fingerprint_is_the_canonical_json_of_the_event_with_its_defaults() -> None:
    short = Event.model_validate(deal_event(1))
    spelled = Event.model_validate(
        {
            **deal_event(1, tags=[], open=True, fields={}, title="", persons=[]),
            "account": "default",
            "at": None,
        }
    )
    assert short.fingerprint == spelled.fingerprint
    canonical = canonical_json(short.json_form()).encode()
    assert short.fingerprint == hashlib.sha256(canonical).hexdigest()
    assert Event.model_validate(deal_event(1, title="x")).fingerprint != short.fingerprint


@pytest.mark.parametrize(
    "changed",
    [
        {"record": {"entity": "deal", "id": "d2", "owners": ["bot:inbound"]}},
        {"record": {"entity": "deal", "id": "d1", "owners": ["bot:inbound", "jan"]}},
        {"record": {"entity": "deal", "id": "d1", "owners": ["bot:inbound"], "fields": {"x": 1}}},
        {"kind": "updated"},
        {"at": "2026-01-05T10:00:00Z"},
    ],
)
def test_a_reused_event_id_with_another_payload_is_a_conflict_on_every_store(
    rules: Path, store_url: str, changed: dict[str, Any]
) -> None:
    with Engine(rules, store_url) as engine:
        first = engine.handle(deal_event(1))
        same = engine.handle(
            {**deal_event(1, tags=[], fields={}), "account": "default"}  # defaults spelled out
        )
        assert same == first.model_copy(update={"duplicate": True})
        with pytest.raises(IdempotencyConflict) as info:
            engine.handle({**deal_event(1), **changed})
        assert str(info.value) == (
            "event 'e1': field 'id': already processed with a different payload; the first "
            "delivery's outcome stands (a new event needs a new id)"
        )
        assert engine.store.get_record("default", "deal", "d2") is None
        assert engine.store.get_record("default", "deal", "d1")["owners"] == ["anna"]
        assert engine.store.assignment_counts() == [("default", "inbound", "anna", 1)]
        assert [o.event_id for o in engine.explain("default", "deal", "d1")] == ["e1"]
        assert engine.handle(deal_event(2)).owners_after == ["bartek"]


def test_a_list_operation_never_meets_a_host_event(engine: Engine) -> None:
    engine.handle({**deal_event(1, ["jan"]), "id": "webhook:d1"})
    engine.handle(
        {"id": "p1", "kind": "created", "record": {"entity": "person", "id": "d1", "owners": ["jan"]}}
    )
    outcomes = engine.assign_list("default", "deal", ["d1"], "inbound", "webhook")
    assert [(o.event_id, o.duplicate, o.owners_after) for o in outcomes] == [
        ("list/webhook/deal/d1", False, ["jan", "anna"])
    ]
    # The same operation over person d1 is another event; over deal d1 again, a repeat.
    person = engine.assign_list("default", "person", ["d1"], "inbound", "webhook")
    assert [(o.event_id, o.duplicate) for o in person] == [("list/webhook/person/d1", False)]
    again = engine.assign_list("default", "deal", ["d1"], "inbound", "webhook")
    assert [(o.event_id, o.duplicate, o.owners_after) for o in again] == [
        ("list/webhook/deal/d1", True, ["jan", "anna"])
    ]


def test_a_list_operation_id_reused_with_another_bot_is_a_conflict(write_rules, tmp_path: Path) -> None:
    bots = "bots:\n  - {id: inbound, users: [anna, bartek]}\n  - {id: outbound, users: [celina]}\n"
    with Engine(write_rules(**{"r.yaml": TEAM + bots}), tmp_path / "s.db") as engine:
        engine.handle(deal_event(1, ["jan"]))
        engine.assign_list("default", "deal", ["d1"], "inbound", "bulk")
        with pytest.raises(IdempotencyConflict) as info:
            engine.assign_list("default", "deal", ["d1"], "outbound", "bulk")
        assert str(info.value).startswith("event 'list/bulk/deal/d1': field 'id': already processed")
        assert engine.record("default", "deal", "d1").owners == ["anna"]
        assert [o.duplicate for o in engine.assign_list("default", "deal", ["d1"], "inbound", "bulk")] == [
            True
        ]


def test_a_list_operation_id_is_bounded(engine: Engine) -> None:
    engine.handle(deal_event(1, ["jan"]))
    assert list_event_id("x" * 187, "deal", "d1") == "list/" + "x" * 187 + "/deal/d1"
    for operation in ("x" * 188, ""):
        with pytest.raises(EventError) as info:
            engine.assign_list("default", "deal", ["d1"], "inbound", operation)
        assert str(info.value) == (
            f"list operation {operation!r}: the operation id must be 1 to 187 characters long "
            "(event ids, 'list/<operation>/deal/d1', are at most 200)"
        )
    assert engine.store.get_record("default", "deal", "d1")["owners"] == ["jan"]


def test_instants_are_stored_zero_padded_so_they_sort_as_time_does() -> None:
    assert utc_iso(datetime(999, 6, 1, tzinfo=UTC)) == "0999-06-01T00:00:00.000000Z"
    assert utc_iso(datetime(2026, 1, 5, 11, 30, 0, 5)) == "2026-01-05T11:30:00.000005Z"
    assert sorted(map(utc_iso, [datetime(2026, 1, 1, tzinfo=UTC), datetime(999, 1, 1, tzinfo=UTC)])) == [
        "0999-01-01T00:00:00.000000Z",
        "2026-01-01T00:00:00.000000Z",
    ]


def test_both_stores_count_assignments_since_an_early_instant(rules: Path, store_url: str) -> None:
    with Engine(rules, store_url) as engine:
        engine.handle({**deal_event(1), "at": "2026-01-05T10:00:00Z"})
        with engine.store.transaction() as tx:
            end = datetime(2200, 1, 1, tzinfo=UTC)
            assert tx.count_assigned("default", "anna", datetime(999, 1, 1, tzinfo=UTC), end) == 1
            assert tx.count_assigned("default", "anna", datetime(2026, 1, 5, 10, tzinfo=UTC), end) == 1
            assert tx.count_assigned("default", "anna", datetime(2026, 1, 5, 11, tzinfo=UTC), end) == 0


def test_an_instant_written_in_another_zone_is_the_same_payload(engine: Engine) -> None:
    first = engine.handle({**deal_event(1), "at": "2026-03-10T10:00:00"})
    for at in ("2026-03-10T10:00:00Z", "2026-03-10T12:00:00+02:00"):
        again = engine.handle({**deal_event(1), "at": at})
        assert (again.duplicate, again.at) == (True, datetime(2026, 3, 10, 10, tzinfo=UTC))
    assert first.at == datetime(2026, 3, 10, 10, tzinfo=UTC)
    with pytest.raises(IdempotencyConflict):
        engine.handle({**deal_event(1), "at": "2026-03-10T10:00:01Z"})


def test_an_error_quotes_a_hostile_key_bounded_and_escaped(engine: Engine) -> None:
    key = "\x1b[2J" + "k" * 10_000
    with pytest.raises(EventError) as info:
        engine.handle({**deal_event(1), key: 1})
    message = str(info.value)
    assert message == Message("event 'e1': field '\\x1b[2J" + "k" * 196 + f"…': {PYDANTIC}")


def test_a_list_operations_event_is_bounded_but_not_walked_or_fingerprinted_again() -> None:
    """``assign_list`` builds its events from stored records, which were walked and
    bounded when they were stored: validated ``FROM_STORE``, they skip the payload walk
    and the fingerprint (a repeat is told by its id), but not the owner and tag bounds."""
    event = {
        "id": "list/x/deal/d1",
        "kind": "list",
        "record": {"entity": "deal", "id": "d1", "owners": ["a"]},
    }
    assert len(Event.model_validate(event).fingerprint) == 64
    assert Event.model_validate(event, context={FROM_STORE: True}).fingerprint == ""
    # The walk is skipped: a float NaN is not refused here (a stored record has none).
    nan = {**event, "record": {**event["record"], "value": float("nan")}}
    with pytest.raises(EventError, match="is not a finite number"):
        Event.model_validate(nan)
    assert Event.model_validate(nan, context={FROM_STORE: True}).record.id == "d1"
    # The bound on owners holds: the bot a list operation adds can be one too many.
    crowded = {**event, "record": {**event["record"], "owners": [f"u{i}" for i in range(101)]}}
    with pytest.raises(EventError) as info:
        Event.model_validate(crowded, context={FROM_STORE: True})
    assert str(info.value) == "event 'list/x/deal/d1': field 'record.owners': 101 items; at most 100"


def test_a_list_operation_logs_no_fingerprint_and_is_still_answered_once(engine: Engine) -> None:
    engine.handle(deal_event(1, ["jan"]))
    (first,) = engine.assign_list("default", "deal", ["d1"], "inbound", "bulk")
    with engine.store.transaction() as tx:
        logged = tx.outcome("default", "list/bulk/deal/d1")
    assert logged is not None and logged.fingerprint is None
    assert logged.outcome.owners_after == first.owners_after == ["jan", "anna"]
    (again,) = engine.assign_list("default", "deal", ["d1"], "inbound", "bulk")
    assert (again.duplicate, again.owners_after) == (True, ["jan", "anna"])


_TEXT = st.text(st.characters(codec=None, blacklist_categories=()), max_size=4)
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | _TEXT
    | st.tuples(st.integers())
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT | st.integers(0, 3), inner, max_size=3),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_TEXT, _VALUES, max_size=4), st.integers(0, 40))
def test_the_quick_payload_walk_passes_only_what_the_full_walk_passes(payload: dict, depth: int) -> None:
    """``check_payload`` first walks without building paths; only when that walk finds
    something does the full walk run and name it. The quick walk must never pass what
    the full one refuses (surrogates, NaN, big integers, non-text keys, tuples, depth)."""
    for _ in range(depth):
        payload = {"x": [payload]} if depth % 2 else {"x": payload}
    try:
        _walk(payload)
    except EventError:
        assert not _plain(payload)
    else:
        assert _plain(payload) or _has_tuple(payload)


def _has_tuple(value: object) -> bool:
    """Tuples pass the full walk, and go there: the quick one knows only JSON's types."""
    if isinstance(value, dict):
        return any(_has_tuple(v) for v in value.values())
    return isinstance(value, tuple) or (isinstance(value, list) and any(map(_has_tuple, value)))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"id": "a", "kind": "created", "id": "b"}', "id"),
        ('{"id": "e1", "kind": "created", "record": {"entity": "deal", "id": "d1", "id": "d2"}}', "id"),
        ('{"id": "e1", "record": {"fields": {"ł": 1, "ł": 2}}}', "ł"),
    ],
)
def test_a_key_given_twice_in_one_object_is_refused_naming_the_key(text: str, key: str) -> None:
    """Parsers disagree on which value of a repeated key wins: the event is ambiguous."""
    with pytest.raises(NotJSON) as raised:
        parse_json(text.encode())
    assert str(raised.value) == f"not valid JSON: the key '{key}' is given twice in one object"


def test_a_repeated_key_is_a_422_over_http_and_a_skipped_line_in_run(rules: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from test_service import bearer, tokens

    from salesbot_core.http.app import create_app

    body = b'{"id": "e1", "kind": "created", "id": "e2", "record": {"entity": "deal", "id": "d1"}}'
    db = str(tmp_path / "s.db")
    with Engine(rules, db), TestClient(create_app(rulesets=rules, db=db)) as client:
        headers = {**bearer(tokens(db)["events"]), "Content-Type": "application/json"}
        answer = client.post("/v1/accounts/default/events", content=body, headers=headers)
    assert answer.status_code == 422
    assert answer.json()["detail"] == "not valid JSON: the key 'id' is given twice in one object"
    events = tmp_path / "events.jsonl"
    events.write_bytes(body + b"\n")
    result = salesbot("run", str(events), "-r", str(rules), "--db", db)
    assert f"{events}:1: not valid JSON: the key 'id' is given twice in one object" in result.stderr
