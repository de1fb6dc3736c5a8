"""One contract for every store: the same behaviour on SQLite and on PostgreSQL.

Each test runs twice through the ``store_url`` fixture: once on a SQLite file, once on a
fresh PostgreSQL database.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from store_queries import rows

from factories import TEAM, deal_event
from salesbot_core import (
    Engine,
    EventError,
    Outcome,
    SalesbotError,
    StoreError,
    TransientStoreError,
    hookimpl,
)
from salesbot_core.models import Company

RULES = (
    TEAM
    + """
settings: {multiple_owners: true}
bots:
  - id: inbound
    name: Inbound leads
    users: [anna, bartek, celina]
    actions:
      related: {company: true, mode: add}
      tag: routed
      note: "Assigned by {bot.name} to {owner.name}"
      notify: "New deal {record.title} is yours"
"""
)


@pytest.fixture
def rules(write_rules) -> Path:
    return write_rules(**{"r.yaml": RULES})


def test_rotation_is_exact_and_survives_a_restart(rules: Path, store_url: str) -> None:
    with Engine(rules, store_url) as engine:
        first = [engine.handle(deal_event(n)).owners_after[0] for n in range(14)]
    with Engine(rules, store_url) as engine:
        rest = [engine.handle(deal_event(n)).owners_after[0] for n in range(14, 30)]
        counts = engine.store.assignment_counts()
    assert first[:4] == ["anna", "bartek", "celina", "anna"]
    assert Counter(first + rest) == {"anna": 10, "bartek": 10, "celina": 10}
    assert counts == [
        ("default", "inbound", "anna", 10),
        ("default", "inbound", "bartek", 10),
        ("default", "inbound", "celina", 10),
    ]


def test_a_redelivery_returns_the_first_outcome(rules: Path, store_url: str) -> None:
    with Engine(rules, store_url) as engine:
        first = engine.handle(deal_event(1))
        again = engine.handle(deal_event(1))
        explained = engine.explain("default", "deal", "d1")
    assert again.duplicate and again.model_copy(update={"duplicate": False}) == first
    assert explained == [first]


def test_records_links_tags_notes_and_outbox(rules: Path, store_url: str) -> None:
    with Engine(rules, store_url) as engine:
        engine.handle(
            {
                "id": "c1",
                "kind": "created",
                "record": {"entity": "company", "id": "warsztat", "name": "Warsztat", "owners": ["jan"]},
            }
        )
        engine.handle(deal_event(1, ["jan", "bot:inbound"], title="Lift", company="warsztat"))
        deal, company = (
            engine.record("default", "deal", "d1"),
            engine.record("default", "company", "warsztat"),
        )
        walls = [
            [(n.text, n.bot, n.event_id) for n in engine.wall("default", entity, rid)]
            for entity, rid in [("deal", "d1"), ("company", "warsztat")]
        ]
        pending = engine.outbox()
        first = pending[0].id
        assert engine.mark_delivered("acme", [first]) == ([], [first])  # not acme's
        assert engine.mark_delivered("default", [first, first, 999_999]) == ([first], [999_999])
        assert engine.mark_delivered("default", [first]) == ([], [first])
        assert engine.outbox() == []
    assert (deal.owners, deal.tags, deal.title) == (["jan", "anna"], ["routed"], "Lift")
    assert (company.owners, company.tags, company.name) == (["jan", "anna"], ["routed"], "Warsztat")
    note = ("Assigned by Inbound leads to Anna Nowak", "inbound", "e1")
    assert walls == [[note], [note]]
    assert [(n.account, n.user, n.text, n.event_id, n.entity, n.record_id) for n in pending] == [
        ("default", "anna", "New deal Lift is yours", "e1", "deal", "d1")
    ]
    assert pending[0].created_at.endswith("Z") and pending[0].delivered_at is None


def test_a_record_row_an_older_salesbot_wrote_is_read_and_written_back_as_pydantics_json(
    rules: Path, store_url: str
) -> None:
    # Up to schema 12 a record was stored as json.dumps of its dict (spaces, non-ASCII
    # escaped, the owners a bot gave last); such a row is put here as it was, text as is.
    company = Company(id="warsztat", name="Warsztat Żółw", owners=["jan"], fields={"nip": 1e16})
    older = json.dumps({**company.model_dump(mode="json"), "given_by": {"jan": "inbound"}})
    with Engine(rules, store_url) as engine:
        with engine.store.transaction() as tx:
            tx.put_record("default", company, older)
        assert rows(store_url, "SELECT data FROM records") == [(older,)]
        engine.handle(deal_event(1, title="Lift ą", company="warsztat"))
        stored = engine.store.get_record("default", "company", "warsztat")
    # Read: the company got the pick beside jan, and the owner a bot gave kept.
    assert stored == {
        **company.model_dump(mode="json"),
        "owners": ["jan", "anna"],
        "tags": ["routed"],
        "given_by": {"jan": "inbound"},
    }
    assert sorted(rows(store_url, "SELECT id, data FROM records")) == [
        (
            "d1",
            '{"id":"d1","owners":["anna"],"tags":["routed"],"open":true,"fields":{},"entity":"deal",'
            '"title":"Lift ą","process":null,"value":null,"persons":[],"company":"warsztat",'
            '"given_by":{"anna":"inbound"}}',
        ),
        (
            "warsztat",
            '{"id":"warsztat","owners":["jan","anna"],"tags":["routed"],"open":true,"fields":{"nip":1e+16},'
            '"entity":"company","name":"Warsztat Żółw","given_by":{"jan":"inbound"}}',
        ),
    ]


@pytest.mark.parametrize("limit", [0, -1, 10_001, True])
def test_an_outbox_limit_out_of_range_is_an_error(rules: Path, store_url: str, limit: int) -> None:
    with Engine(rules, store_url) as engine:
        engine.handle(deal_event(1))
        with pytest.raises(SalesbotError) as info:
            engine.outbox(limit=limit)
        assert [n.record_id for n in engine.outbox(limit=10_000)] == ["d1"]
    assert str(info.value) == f"outbox limit must be a whole number from 1 to 10,000: {limit!r}"


def test_outbox_ids_no_store_can_hold_are_refused_or_not_pending(rules: Path, store_url: str) -> None:
    # schemathesis found these: 2**63 reached the SQLite driver and overflowed.
    with Engine(rules, store_url) as engine:
        engine.handle(deal_event(1))
        with pytest.raises(SalesbotError) as info:
            engine.outbox(after=2**63)
        assert str(info.value) == f"outbox 'after' must be a notification id from 0 to {2**63 - 1}: {2**63}"
        (pending,) = engine.outbox()
        delivered = engine.mark_delivered("default", [2**63, -1, pending.id])
        assert (delivered.marked, delivered.not_pending) == ([pending.id], [2**63, -1])


def test_bot_switches(rules: Path, store_url: str) -> None:
    with Engine(rules, store_url) as engine:
        engine.set_bot_active("default", "inbound", False)
        assert engine.store.get_switches("default") == {"inbound": False}
        assert engine.handle(deal_event(1)).decisions[0].reason == "the bot is switched off"
        engine.set_bot_active("default", "inbound", True)
        assert engine.store.get_switches("default") == {"inbound": True}
        assert engine.handle(deal_event(2)).owners_after == ["anna"]


def test_an_ended_session_is_kept_until_it_expires(rules: Path, store_url: str) -> None:
    with Engine(rules, store_url) as engine:
        store = engine.store
        assert store.session_ended("a") is False
        for _ in range(2):  # twice: no error
            store.end_session("a", "2030-01-01T12:00:00.000000Z", "2030-01-01T00:00:00.000000Z")
        assert (store.session_ended("a"), store.session_ended("b")) == (True, False)
        # Ending another session later forgets those whose cookies have expired since.
        store.end_session("b", "2030-01-02T12:00:00.000000Z", "2030-01-02T00:00:00.000000Z")
        assert (store.session_ended("a"), store.session_ended("b")) == (False, True)


def test_load_and_assignments_since(rules: Path, store_url: str) -> None:
    monday = datetime(2026, 11, 23, 10, tzinfo=UTC)
    with Engine(rules, store_url) as engine:
        for n, owners in enumerate([["anna"], ["anna", "jan"], ["bartek"]]):
            engine.handle(deal_event(n, owners))
        engine.handle(
            deal_event(3, ["celina"]) | {"record": {**deal_event(3, ["celina"])["record"], "open": False}}
        )
        for n in range(4, 7):
            engine.handle(deal_event(n) | {"at": monday.isoformat()})
        with engine.store.transaction() as tx:
            load = tx.open_load("default", "deal", ["anna", "bartek", "celina", "olga"])
            tuesday = datetime(2026, 11, 24, tzinfo=UTC)
            on_monday = tx.count_assigned("default", "anna", monday, tuesday)
            before_monday = tx.count_assigned("default", "anna", datetime(2026, 11, 1, tzinfo=UTC), monday)
            since_later = tx.count_assigned("default", "anna", tuesday, datetime(2026, 12, 1, tzinfo=UTC))
    # the three routed deals went anna, bartek, celina
    assert load == {"anna": 3, "bartek": 2, "celina": 1, "olga": 0}
    assert (on_monday, before_monday, since_later) == (1, 0, 0)


@pytest.mark.slow  # a refused connection may be a server restarting: it is tried for ~13 s
def test_an_unreachable_store_is_a_clear_error(rules: Path, tmp_path: Path) -> None:
    with pytest.raises(TransientStoreError) as info:
        Engine(rules, "postgresql://nobody:secret@127.0.0.1:9/nowhere?connect_timeout=1")
    assert str(info.value).startswith(
        "cannot open PostgreSQL store 'postgresql://nobody:***@127.0.0.1:9/nowhere"
    )
    assert "secret" not in str(info.value)


#: Every table of both stores.
TABLES = (
    "records",
    "record_owners",
    "strategy_state",
    "outcomes",
    "outcome_records",
    "assignments",
    "notes",
    "notifications",
    "bot_switches",
)
AT = {"at": "2026-11-23T10:00:00+00:00"}


def table_rows(url: str) -> dict[str, list[str]]:
    """Every row of every table, sorted, as text: what a dry run must leave as it was."""
    return {table: sorted(map(repr, rows(url, f"SELECT * FROM {table}"))) for table in TABLES}


def test_a_dry_run_writes_nothing_and_decides_as_a_real_run(rules: Path, store_url: str) -> None:
    company = {"entity": "company", "id": "warsztat", "name": "Warsztat", "owners": ["jan"]}
    with Engine(rules, store_url) as engine:
        engine.handle({"id": "c1", "kind": "created", "record": company})
        for n in range(4):  # anna, bartek, celina, anna
            engine.handle(deal_event(n, title=f"Deal {n}") | AT)
        engine.set_bot_active("default", "inbound", True)
    before = table_rows(store_url)
    assert [len(before[t]) for t in ("outcomes", "notes", "notifications", "bot_switches")] == [5, 4, 4, 1]
    events = [
        deal_event(4, company="warsztat", title="Lift") | AT,
        deal_event(5, title="Deal 5") | AT,
        deal_event(2, title="Deal 2") | AT,  # processed before: a duplicate
        deal_event(6, ["zofia"]),  # not a user: rejected, and the run goes on
        deal_event(7, title="Deal 7") | AT,
        deal_event(4, ["jan"], kind="updated", company="warsztat") | AT | {"id": "e4-again"},
    ]
    seen: list[Outcome] = []

    class Observer:
        @hookimpl
        def salesbot_after_assign(self, outcome: Outcome) -> None:
            seen.append(outcome)

    with Engine(rules, store_url, dry_run=True, plugins=[Observer()]) as engine:
        dry = engine.simulate(events)
        again = engine.simulate(events)
    assert table_rows(store_url) == before
    assert seen == [] and [str(o) for o in again] == [str(o) for o in dry]
    rejected = dry[3]
    assert isinstance(rejected, EventError)
    assert str(rejected) == "event 'e6': field 'record.owners.0': 'zofia' is not a user of account 'default'"
    decided = [o for o in dry if isinstance(o, Outcome)]
    assert [(o.record_id, o.owners_after, o.duplicate) for o in decided] == [
        ("d4", ["bartek"], False),
        ("d5", ["celina"], False),  # the rotation state the dry run wrote is read back
        ("d2", ["celina"], True),
        ("d7", ["anna"], False),
        ("d4", ["jan"], False),
    ]
    with Engine(rules, store_url, plugins=[Observer()]) as engine:
        real = [engine.handle(event) for n, event in enumerate(events) if n != 3]
    assert real == decided
    assert len(seen) == 4  # the real run tells observers: the duplicate excepted


def test_a_dry_run_of_a_store_that_does_not_exist_creates_nothing(rules: Path, store_url: str) -> None:
    with Engine(rules, store_url, dry_run=True) as engine:
        dry = engine.simulate([deal_event(n) | AT for n in range(4)])
        with pytest.raises(StoreError):  # only a dry run writes
            engine.handle(deal_event(9))
    assert [o.owners_after for o in dry if isinstance(o, Outcome)] == [
        ["anna"],
        ["bartek"],
        ["celina"],
        ["anna"],
    ]
    if store_url.startswith("postgresql://"):
        assert rows(store_url, "SELECT to_regclass('outcomes'), to_regclass('salesbot_schema')") == [
            (None, None)
        ]
    else:
        assert sorted(p.name for p in Path(store_url).parent.iterdir()) == ["rulesets"]


def test_a_dry_run_leaves_no_file_beside_a_sqlite_store(rules: Path, tmp_path: Path) -> None:
    db = tmp_path / "salesbot.db"
    with Engine(rules, db) as engine:
        engine.handle(deal_event(1))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["rulesets", "salesbot.db"]
    with Engine(rules, db, dry_run=True) as engine:
        (outcome,) = engine.simulate([deal_event(2)])
        assert isinstance(outcome, Outcome) and outcome.owners_after == ["bartek"]
    assert sorted(p.name for p in tmp_path.iterdir()) == files
