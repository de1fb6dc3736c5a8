"""What if: the kept event payloads (both stores, retention, migration) and ``salesbot
replay`` of a window of them under candidate rules: a pool change, a new condition,
another strategy and caps, each with exact counts; list operations and routed events as
they ran; the bound; the command; and ``POST /v1/accounts/{account}/replay`` on a real
``salesbot serve`` process."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_runner import salesbot
from fastapi.testclient import TestClient
from store_queries import rows
from test_service import bearer, serve

from factories import TEAM
from salesbot_core import Engine, StoreError
from salesbot_core.engine import open_store
from salesbot_core.http.app import create_app
from salesbot_core.limits import canonical_json
from salesbot_core.models import Event
from salesbot_core.registry import make_plugin_manager
from salesbot_core.replay import ReplayResult, replay_store
from salesbot_core.store import RETENTION_VARIABLE, kept_payload
from salesbot_core.tokens import create_token
from salesbot_plugins.migrations import SCHEMA_VERSION
from salesbot_plugins.postgres_store import SCHEMA_VERSION as POSTGRES_VERSION
from salesbot_plugins.sqlite_store import SCHEMA_VERSION as SQLITE_VERSION

BOT = """
bots:
  - id: inbound
    users: [anna, bartek, celina]
"""
#: The window every test replays: November 2026.
SINCE = datetime(2026, 11, 1, tzinfo=UTC)
UNTIL = datetime(2026, 12, 1, tzinfo=UTC)
#: The tables a replay must leave as they were.
TABLES = ("records", "strategy_state", "outcomes", "assignments", "notifications", "event_payloads")


def folder(tmp_path: Path, name: str, text: str) -> Path:
    """A rulesets folder of one file ``r.yaml``: the team and ``text``."""
    path = tmp_path / name
    path.mkdir()
    (path / "r.yaml").write_text(TEAM + textwrap.dedent(text), encoding="utf-8")
    return path


def created(n: int, at: str, **fields: Any) -> dict[str, Any]:
    """Deal ``d<n>`` created with the inbound bot as its owner at ``at``."""
    record = {"entity": "deal", "id": f"d{n}", "owners": ["bot:inbound"], **fields}
    return {"id": f"e{n}", "kind": "created", "at": at, "record": record}


#: The events whose payloads are kept in outcome rows, in order.
KEPT_IDS = "SELECT event_id FROM outcomes WHERE payload IS NOT NULL ORDER BY seq"


def counts(url: str) -> dict[str, int]:
    return {table: rows(url, f"SELECT COUNT(*) FROM {table}")[0][0] for table in TABLES}


def day(n: int) -> str:
    """Event ``n``'s time: October 21 and 22 for 1 and 2 (before the window), then November n."""
    return f"2026-10-{20 + n}T10:00:00Z" if n <= 2 else f"2026-11-{n:02d}T10:00:00Z"


def run_replay(url: str, candidate: Path, since: datetime = SINCE, until: datetime = UNTIL) -> ReplayResult:
    """Replay the store at ``url`` under ``candidate``, checking that nothing was written."""
    before = counts(url)
    store = open_store(make_plugin_manager(), url, readonly=True)
    try:
        result = replay_store(store, candidate, "default", since, until)
    finally:
        store.close()
    assert counts(url) == before
    return result


def owners_changed(result: ReplayResult) -> list[tuple[str, list[str], list[str]]]:
    return [(c.event_id, c.actual, c.candidate) for c in result.changes]


def test_a_pool_change_from_the_rotation_as_it_was_when_the_window_began(
    tmp_path: Path, store_url: str
) -> None:
    actual = folder(tmp_path, "actual", BOT)
    with Engine(actual, store_url) as engine:
        for n in range(1, 9):  # e1, e2 in October: before the window
            engine.handle(created(n, day(n)))
    candidate = folder(tmp_path, "candidate", BOT.replace("[anna, bartek, celina]", "[anna, bartek]"))

    result = run_replay(store_url, candidate)

    assert result.events == 6 and not result.truncated and result.rejected == []
    assert result.distribution() == [
        ("inbound", "anna", 2, 3),
        ("inbound", "bartek", 2, 3),
        ("inbound", "celina", 2, 0),
    ]
    # The rotation went on after bartek (e2's pick) in both: e7 and e8 stay as they were.
    assert owners_changed(result) == [
        ("e3", ["celina"], ["anna"]),
        ("e4", ["anna"], ["bartek"]),
        ("e5", ["bartek"], ["anna"]),
        ("e6", ["celina"], ["bartek"]),
    ]
    first = result.changes[0]
    assert (first.entity, first.record_id, first.kind) == ("deal", "d3", "created")
    assert first.actual_reason == "bot 'inbound': assigned -> celina: next in rotation after 'bartek'"
    assert first.candidate_reason == "bot 'inbound': assigned -> anna: next in rotation after 'bartek'"
    assert first.bots == ["inbound"]
    assert result.candidate.statuses == {"assigned": 6}


def test_the_same_rules_replayed_change_nothing(tmp_path: Path) -> None:
    actual = folder(tmp_path, "actual", BOT)
    db = str(tmp_path / "salesbot.db")
    with Engine(actual, db) as engine:
        for n in range(1, 8):
            engine.handle(created(n, day(n)))
    result = run_replay(db, actual)
    assert result.events == 5
    assert result.changes == [] and result.rejected == []
    assert result.distribution() == [
        ("inbound", "anna", 2, 2),
        ("inbound", "bartek", 1, 1),
        ("inbound", "celina", 2, 2),
    ]


def test_a_new_condition(tmp_path: Path, evaluator: str) -> None:
    actual = folder(tmp_path, "actual", BOT)
    db = str(tmp_path / "salesbot.db")
    with Engine(actual, db) as engine:
        for n, value in enumerate((5000, 20000, 15000, 3000), 1):
            engine.handle(created(n, f"2026-11-0{n}T10:00:00Z", value=value))
    candidate = folder(tmp_path, "candidate", BOT + "    trigger: {where: {$gte: {value: 10000}}}\n")
    before = counts(db)
    store = open_store(make_plugin_manager(), db, readonly=True)
    try:
        result = replay_store(store, candidate, "default", SINCE, UNTIL, conditions=evaluator)
    finally:
        store.close()
    assert counts(db) == before

    assert result.distribution() == [
        ("inbound", "anna", 2, 1),
        ("inbound", "bartek", 1, 1),
        ("inbound", "celina", 1, 0),
    ]
    assert owners_changed(result) == [
        ("e1", ["anna"], []),
        ("e2", ["bartek"], ["anna"]),
        ("e3", ["celina"], ["bartek"]),
        ("e4", ["anna"], []),
    ]
    assert result.changes[0].candidate_reason == (
        "bot 'inbound': not applied: the record does not match trigger.where"
    )
    assert result.candidate.statuses == {"assigned": 2, "not_applied": 2}


def test_another_strategy_sees_the_records_the_window_closed(tmp_path: Path) -> None:
    actual = folder(tmp_path, "actual", BOT)
    db = str(tmp_path / "salesbot.db")
    with Engine(actual, db) as engine:
        engine.handle(created(1, "2026-11-01T10:00:00Z"))
        engine.handle(created(2, "2026-11-02T10:00:00Z"))
        # bartek's deal is closed: an event with no bot, which a replay must replay too
        closed = {"entity": "deal", "id": "d2", "owners": ["bartek"], "open": False}
        engine.handle({"id": "close-d2", "kind": "updated", "at": "2026-11-03T10:00:00Z", "record": closed})
        engine.handle(created(4, "2026-11-04T10:00:00Z"))
        engine.handle(created(5, "2026-11-05T10:00:00Z"))
    candidate = folder(tmp_path, "candidate", BOT + "    strategy: least_loaded\n")

    result = run_replay(db, candidate)

    assert result.events == 5
    assert result.distribution() == [
        ("inbound", "anna", 2, 1),
        ("inbound", "bartek", 1, 2),
        ("inbound", "celina", 1, 1),
    ]
    assert owners_changed(result) == [("e5", ["anna"], ["bartek"])]
    assert (
        result.changes[0].candidate_reason
        == "bot 'inbound': assigned -> bartek: fewest open deal records (0)"
    )
    assert result.candidate.statuses == {"assigned": 4, "no_bot": 1}


def test_caps(tmp_path: Path) -> None:
    actual = folder(tmp_path, "actual", BOT)
    db = str(tmp_path / "salesbot.db")
    with Engine(actual, db) as engine:
        for n in range(1, 7):
            engine.handle(created(n, f"2026-11-02T1{n}:00:00Z"))
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    capped = TEAM.replace("{id: anna, name: Anna Nowak}", "{id: anna, name: Anna Nowak, caps: {day: 1}}")
    (candidate / "r.yaml").write_text(capped + textwrap.dedent(BOT), encoding="utf-8")

    result = run_replay(db, candidate)

    assert result.distribution() == [
        ("inbound", "anna", 2, 1),
        ("inbound", "bartek", 2, 3),
        ("inbound", "celina", 2, 2),
    ]
    assert owners_changed(result) == [
        ("e4", ["anna"], ["bartek"]),
        ("e5", ["bartek"], ["celina"]),
        ("e6", ["celina"], ["bartek"]),
    ]


def test_list_operations_and_routed_events_are_replayed_as_they_ran(tmp_path: Path) -> None:
    actual = folder(tmp_path, "actual", BOT)
    db = str(tmp_path / "salesbot.db")
    with Engine(actual, db) as engine:
        for n in (1, 2, 3):
            record = {"entity": "deal", "id": f"d{n}", "owners": ["jan"]}
            engine.handle({"id": f"c{n}", "kind": "created", "at": "2026-11-01T09:00:00Z", "record": record})
        engine.assign_list("default", "deal", ["d1", "d2", "d3"], "inbound", "op1")
        routed = {"entity": "deal", "id": "d4", "owners": []}
        engine.route({"id": "r4", "kind": "created", "at": "2026-11-02T09:00:00Z", "record": routed})
        # Not routed: no bot may take it in the replay either.
        kept = {"entity": "deal", "id": "d5", "owners": []}
        engine.handle({"id": "h5", "kind": "created", "at": "2026-11-02T10:00:00Z", "record": kept})
    candidate = folder(tmp_path, "candidate", BOT.replace("[anna, bartek, celina]", "[celina, bartek]"))

    result = run_replay(db, candidate, until=datetime(2100, 1, 1, tzinfo=UTC))

    assert result.events == 8
    # The list operation's events are the records as stored then with the bot set; the
    # routed event is routed again; the unrouted one without a bot stays without one.
    assert owners_changed(result) == [
        ("list/op1/deal/d1", ["anna"], ["celina"]),
        ("r4", ["anna"], ["bartek"]),
    ]
    assert result.distribution() == [
        ("inbound", "anna", 2, 0),
        ("inbound", "bartek", 1, 2),
        ("inbound", "celina", 1, 2),
    ]


def test_events_the_candidate_rules_reject_are_listed_by_their_own_id(tmp_path: Path) -> None:
    actual = folder(tmp_path, "actual", BOT)
    db = str(tmp_path / "salesbot.db")
    with Engine(actual, db) as engine:
        engine.handle(created(3, day(3)))
    candidate = folder(tmp_path, "candidate", BOT.replace("id: inbound", "id: renamed"))
    result = run_replay(db, candidate)
    assert [(r.event_id, r.message) for r in result.rejected] == [
        ("e3", "event 'e3': field 'record.owners.0': 'bot:inbound' is not a bot of account 'default'")
    ]
    assert result.changes == []
    assert result.distribution() == [
        ("inbound", "anna", 1, 0),
        ("renamed", "anna", 0, 0),
        ("renamed", "bartek", 0, 0),
        ("renamed", "celina", 0, 0),
    ]


def test_a_replay_takes_at_most_max_replay_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    actual = folder(tmp_path, "actual", BOT)
    db = str(tmp_path / "salesbot.db")
    with Engine(actual, db) as engine:
        for n in range(3, 8):
            engine.handle(created(n, day(n)))
    monkeypatch.setattr("salesbot_core.replay.MAX_REPLAY_EVENTS", 3)
    result = run_replay(db, actual)
    assert (result.events, result.truncated) == (3, True)
    assert result.distribution() == [
        ("inbound", "anna", 1, 1),
        ("inbound", "bartek", 1, 1),
        ("inbound", "celina", 1, 1),
    ]
    assert run_replay(db, actual, until=datetime(2026, 11, 6, tzinfo=UTC)).truncated is False  # e3 to e5
    sizes = [n for (n,) in rows(db, "SELECT size FROM outcomes WHERE payload IS NOT NULL ORDER BY seq")]
    monkeypatch.setattr("salesbot_core.replay.MAX_REPLAY_EVENTS", 10)
    monkeypatch.setattr("salesbot_core.replay.MAX_REPLAY_BYTES", sum(sizes[:2]))  # room for two
    result = run_replay(db, actual)
    assert (result.events, result.truncated) == (2, True)
    done = salesbot("replay", "-r", str(actual), "--db", db, "--since", "2026-11-01", "--json", cwd=tmp_path)
    assert (done.exit_code, json.loads(done.stdout)["events"]) == (0, 2)
    assert done.stderr == (
        "warning: the window holds more than a replay takes (10 events, 0 MiB of payloads): "
        "the first 2 were replayed\n"
    )


# --- What the stores keep ------------------------------------------------------------


def test_each_processed_event_is_kept_as_decided(tmp_path: Path, store_url: str) -> None:
    actual = folder(tmp_path, "actual", BOT)
    with Engine(actual, store_url) as engine:
        engine.handle(created(3, "2026-11-03T12:00:00+02:00", value=5))
        engine.handle(created(3, "2026-11-03T10:00:00Z", value=5))  # a redelivery: kept once
        engine.route({"id": "r4", "kind": "created", "record": {"entity": "deal", "id": "d4"}})
        before = datetime.now(UTC)
        end = datetime(2200, 1, 1, tzinfo=UTC)
        kept = engine.store.kept_events("default", SINCE, end, 10, 10**6)
        assert engine.store.kept_events("beta", SINCE, end, 10, 10**6) == []
        assert engine.store.kept_events("default", SINCE, end, 1, 10**6) == kept[:1]
        assert engine.store.kept_events("default", SINCE, UNTIL, 10, 10**6) == kept[:1]  # r4 is now
        # No more after the one that brings the sizes to max_bytes: it is the first here.
        assert engine.store.kept_events("default", SINCE, end, 10, kept[0].size) == kept[:1]
        assert engine.store.kept_events("default", SINCE, end, 10, kept[0].size + 1) == kept
    assert [k.routed for k in kept] == [False, True]
    assert kept[0].payload == {
        "account": "default",
        "at": "2026-11-03T10:00:00Z",
        "changed": None,
        "id": "e3",
        "kind": "created",
        "record": {
            "company": None,
            "entity": "deal",
            "fields": {},
            "id": "d3",
            "open": True,
            "owners": ["bot:inbound"],
            "persons": [],
            "process": None,
            "tags": [],
            "title": "",
            "value": 5.0,
        },
    }
    assert kept[0].outcome.owners_after == ["anna"]
    # An event that gave no time is kept with the engine's: a replay decides it then.
    assert kept[1].payload["at"] == kept[1].outcome.at.isoformat().replace("+00:00", "Z")  # type: ignore[union-attr]
    assert kept[1].outcome.at is not None and kept[1].outcome.at <= before
    # In the outcome row (schema 12): no row of event_payloads is written.
    stored, size = rows(store_url, "SELECT payload, size FROM outcomes WHERE event_id = 'e3'")[0]
    assert rows(store_url, "SELECT COUNT(*) FROM event_payloads") == [(0,)]
    assert stored == json.dumps(kept[0].payload, sort_keys=True, separators=(",", ":"))  # compact, canonical
    assert size == kept[0].size == len(stored)  # all ASCII here


@pytest.mark.parametrize(
    "event",
    [
        created(3, "2026-11-03T12:00:00+02:00", value=5, fields={"at": None}),
        {"id": "e1", "kind": "updated", "account": "x.y@z-1", "record": {"entity": "task", "id": "t1"}},
    ],
)
def test_the_kept_payload_is_the_events_json_form_with_the_time_it_was_decided_at(
    event: dict[str, Any],
) -> None:
    valid = Event.model_validate(event)
    at = valid.at or datetime(2026, 11, 5, 8, 30, 0, 123456, tzinfo=UTC)
    written = canonical_json(valid.model_copy(update={"at": at}).json_form())
    assert kept_payload(valid, at) == written
    assert json.loads(written)["at"] in ("2026-11-03T10:00:00Z", "2026-11-05T08:30:00.123456Z")


def test_pruning_removes_the_oldest_payloads_in_batches_and_keeps_the_outcomes(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RETENTION_VARIABLE, "30")
    # Every 10th kept event prunes up to 4 (both stores run the one SQL layer's statements).
    monkeypatch.setattr("salesbot_plugins.sql.PRUNE_EVERY", 10)
    monkeypatch.setattr("salesbot_plugins.sql.PRUNE_BATCH", 4)
    actual = folder(tmp_path, "actual", BOT)
    recent = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    with Engine(actual, store_url) as engine:
        for n in range(1, 10):  # 7 from 2020, then 2 of yesterday
            engine.handle(created(n, f"2020-01-0{n}T10:00:00Z" if n <= 7 else recent))
        assert engine.store.prune_events(datetime(2020, 1, 5, tzinfo=UTC), limit=2) == 2
        assert rows(store_url, KEPT_IDS)[0] == ("e3",)  # the oldest went
        # The 10th kept event prunes, in the event's transaction, the 4 oldest of those over 30 days.
        engine.handle(created(10, recent))
    assert rows(store_url, KEPT_IDS) == [
        ("e7",),
        ("e8",),
        ("e9",),
        ("e10",),
    ]
    assert rows(store_url, "SELECT COUNT(*) FROM outcomes") == [(10,)]


def test_a_retention_of_zero_keeps_no_payloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RETENTION_VARIABLE, "0")
    db = str(tmp_path / "salesbot.db")
    with Engine(folder(tmp_path, "actual", BOT), db) as engine:
        assert engine.handle(created(3, day(3))).owners_after == ["anna"]
    assert rows(db, "SELECT COUNT(*) FROM event_payloads") == [(0,)]
    assert rows(db, "SELECT COUNT(*) FROM outcomes WHERE payload IS NOT NULL") == [(0,)]


@pytest.mark.parametrize("value", ["-1", "3661", "ninety", "1e3"])
def test_a_bad_retention_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(RETENTION_VARIABLE, value)
    with pytest.raises(StoreError) as caught:
        Engine(folder(tmp_path, "actual", BOT), str(tmp_path / "salesbot.db"))
    assert str(caught.value) == (
        "SALESBOT_EVENT_RETENTION_DAYS must be a whole number of days from 0 (keep no event payloads) "
        f"to 3660: {value!r}"
    )


def execute(url: str, statements: list[str]) -> None:
    """Run statements, in one transaction, on a SQLite path or a PostgreSQL URL."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as conn:
            for statement in statements:
                conn.execute(statement)
        return
    conn = sqlite3.connect(url)
    try:
        with conn:
            for statement in statements:
                conn.execute(statement)
    finally:
        conn.close()


def set_version(url: str, version: int) -> str:
    """The statement recording a database's version on its store: PostgreSQL numbered
    its own history one behind until version 7 (``salesbot_plugins.migrations``)."""
    if url.startswith("postgresql://"):
        return f"UPDATE salesbot_schema SET version = {version - 1 if version <= 7 else version}"
    return f"PRAGMA user_version = {version}"


#: What version 12 changed, undone: a database this salesbot wrote, put back as version
#: 10 left it, its payloads in ``event_payloads`` (as a version-10 salesbot kept them).
AS_VERSION_10 = [
    "INSERT INTO event_payloads (account, event_id, at, routed, size, payload) "
    "SELECT account, event_id, kept_at, routed, size, payload FROM outcomes WHERE payload IS NOT NULL "
    "ORDER BY seq",
    "DROP INDEX outcomes_kept",
    "DROP INDEX outcomes_account_time",
    *(f"ALTER TABLE outcomes DROP COLUMN {name}" for name in ("payload", "routed", "kept_at", "size")),
    "CREATE INDEX outcomes_account ON outcomes (account, seq)",
    "CREATE INDEX outcomes_account_created ON outcomes (account, created_at)",
    "CREATE INDEX assignments_account_at ON assignments (account, at)",
]


def kept_ids(engine: Engine) -> list[str]:
    return [k.outcome.event_id for k in engine.store.kept_events("default", SINCE, UNTIL, 10, 10**6)]


def test_an_older_database_without_the_payload_table_gets_it(tmp_path: Path, store_url: str) -> None:
    """Version 5 (PostgreSQL's 4) kept no payloads: its events are not replayed, those
    after the upgrade are."""
    actual = folder(tmp_path, "actual", BOT)
    with Engine(actual, store_url) as engine:
        engine.handle(created(3, day(3)))
    execute(store_url, [*AS_VERSION_10, "DROP TABLE event_payloads", set_version(store_url, 5)])
    with Engine(actual, store_url) as engine:
        engine.handle(created(4, day(4)))
        assert kept_ids(engine) == ["e4"]
        assert [o.event_id for o in engine.explain("default", "deal", "d3")] == ["e3"]  # older data stays
    version = "SELECT version FROM salesbot_schema" if "://" in store_url else "PRAGMA user_version"
    assert rows(store_url, version) == [(SQLITE_VERSION,)] == [(POSTGRES_VERSION,)] == [(SCHEMA_VERSION,)]


def test_payloads_kept_before_version_11_are_replayed_after_the_upgrade(
    tmp_path: Path, store_url: str, request: pytest.FixtureRequest
) -> None:
    from test_migrations import schema

    actual = folder(tmp_path, "actual", BOT)
    with Engine(actual, store_url) as engine:
        for n in (3, 4):
            engine.handle(created(n, day(n)))
        engine.route({"id": "r5", "kind": "created", "at": day(5), "record": {"entity": "deal", "id": "d5"}})
        kept = engine.store.kept_events("default", SINCE, UNTIL, 10, 10**6)
    assert [(k.outcome.event_id, k.routed) for k in kept] == [("e3", False), ("e4", False), ("r5", True)]
    execute(store_url, [*AS_VERSION_10, set_version(store_url, 10)])
    assert rows(store_url, "SELECT COUNT(*) FROM event_payloads") == [(3,)]
    # A read-only command reads version 10 as it is, payloads and all.
    with Engine(actual, store_url, readonly=True) as engine:
        assert engine.store.kept_events("default", SINCE, UNTIL, 10, 10**6) == kept
    with Engine(actual, store_url) as engine:
        assert engine.store.kept_events("default", SINCE, UNTIL, 10, 10**6) == kept
        # Every bound as before: two events reach these bytes, one stays below them.
        assert engine.store.kept_events("default", SINCE, UNTIL, 10, kept[0].size + 1) == kept[:2]
        assert engine.store.kept_events("default", SINCE, UNTIL, 1, 10**6) == kept[:1]
    # Copied into their outcome rows, and kept where a version-10 salesbot reads them.
    assert rows(store_url, KEPT_IDS) == [("e3",), ("e4",), ("r5",)]
    assert rows(store_url, "SELECT COUNT(*) FROM event_payloads") == [(3,)]
    assert run_replay(store_url, actual).events == 3
    # The schema of a new database, up to column order.
    if store_url.startswith("postgresql://"):
        import pg_server

        for fresh in pg_server.database_factory(request.getfixturevalue("postgres_admin_url"))():
            Engine(actual, fresh).close()
            assert schema(store_url) == schema(fresh)
    else:
        Engine(actual, tmp_path / "fresh.db").close()
        assert schema(store_url) == schema(str(tmp_path / "fresh.db"))


def test_a_version_10_salesbot_still_running_keeps_its_payloads_where_it_did(
    tmp_path: Path, store_url: str
) -> None:
    """During a rolling upgrade a version-10 salesbot on the upgraded database logs its
    outcomes without a payload and keeps the payload in event_payloads: a replay takes
    those too, in the order the events were logged, and pruning removes them."""
    actual = folder(tmp_path, "actual", BOT)
    with Engine(actual, store_url) as engine:
        engine.handle(created(3, day(3)))
        engine.handle(created(4, day(4)))  # stands for the version-10 salesbot's event, below
        engine.handle(created(5, day(5)))
        kept = engine.store.kept_events("default", SINCE, UNTIL, 10, 10**6)
    # e4 as the version-10 salesbot wrote it: its outcome row without, the payload beside.
    execute(
        store_url,
        [
            "INSERT INTO event_payloads (account, event_id, at, routed, size, payload) "
            "SELECT account, event_id, kept_at, routed, size, payload FROM outcomes WHERE event_id = 'e4'",
            "UPDATE outcomes SET payload = NULL, routed = NULL, kept_at = NULL, size = NULL "
            "WHERE event_id = 'e4'",
        ],
    )
    with Engine(actual, store_url) as engine:
        assert engine.store.kept_events("default", SINCE, UNTIL, 10, 10**6) == kept
        assert engine.store.kept_events("default", SINCE, UNTIL, 2, 10**6) == kept[:2]
        assert run_replay(store_url, actual).events == 3
        # The two oldest: e3 from its outcome row, e4 from the table.
        assert engine.store.prune_events(datetime(2026, 11, 5, tzinfo=UTC)) == 2
        assert kept_ids(engine) == ["e5"]
    assert rows(store_url, "SELECT COUNT(*) FROM event_payloads") == [(0,)]
    assert rows(store_url, "SELECT COUNT(*) FROM outcomes") == [(3,)]


# --- The command and the service ------------------------------------------------------


def test_the_replay_command(tmp_path: Path) -> None:
    actual = folder(tmp_path, "actual", BOT)
    with Engine(actual, tmp_path / "salesbot.db") as engine:
        for n in range(3, 7):
            engine.handle(created(n, day(n)))
    candidate = folder(tmp_path, "candidate", BOT.replace("[anna, bartek, celina]", "[anna, bartek]"))
    window = ("--since", "2026-11-01", "--until", "2026-12-01")

    done = salesbot("replay", "-r", "candidate", *window, "--json", cwd=tmp_path)
    assert (done.exit_code, done.stderr) == (0, "")
    data = json.loads(done.stdout)
    assert data["events"] == 4 and data["truncated"] is False
    assert data["distribution"] == [
        {"bot": "inbound", "user": "anna", "actual": 2, "candidate": 2},
        {"bot": "inbound", "user": "bartek", "actual": 1, "candidate": 2},
        {"bot": "inbound", "user": "celina", "actual": 1, "candidate": 0},
    ]
    assert [(c["event_id"], c["actual"], c["candidate"]) for c in data["changes"]] == [
        ("e5", ["celina"], ["anna"]),
        ("e6", ["anna"], ["bartek"]),
    ]

    table = salesbot("replay", "-r", "candidate", *window, "--show", "1", cwd=tmp_path)
    assert table.exit_code == 0
    lines = [line.strip() for line in table.stdout.splitlines()]
    assert "│ inbound │ anna   │         2 │        2 │        │" in lines
    assert "│ inbound │ bartek │         1 │        2 │     +1 │" in lines
    assert "│ inbound │ celina │         1 │        0 │     -1 │" in lines
    row = "│ e5    │ deal d5 │ celina      │ anna     │ bot 'inbound': assigned -> celina: next in"
    assert any(line.startswith(row) for line in lines), table.stdout
    assert "2 records would get other owners" in table.stdout
    assert "... and 1 more (--show N, or --json)" in lines
    assert "4 events: 4 assigned (would be); 4 events: 4 assigned (was)" in lines
    assert "was written to salesbot.db" in table.stdout  # the caption, under the table

    (candidate / "r.yaml").write_text(TEAM + textwrap.dedent(BOT) + "    strategy: nope\n", encoding="utf-8")
    bad = salesbot("replay", "-r", "candidate", *window, cwd=tmp_path)
    assert bad.exit_code == 1 and bad.stdout == ""
    assert bad.stderr.startswith("error: candidate/r.yaml: bot 'inbound': field 'strategy': ")
    missing = salesbot("replay", "-r", "candidate", "--db", "none.db", cwd=tmp_path)
    assert (missing.exit_code, missing.stderr) == (1, "error: no database at 'none.db'\n")
    assert not (tmp_path / "none.db").exists()


def served(tmp_path: Path) -> tuple[Path, str, dict[str, str], dict[str, str]]:
    """Rules, a store, and tokens of the default account: one that manages, one that sends events."""
    rules = folder(tmp_path, "rulesets", BOT)
    db = str(tmp_path / "salesbot.db")
    with Engine(rules, db):
        pass
    store = open_store(make_plugin_manager(), db)
    try:
        manage = bearer(create_token(store, "default", "admin-page", ["manage"]))
        events = bearer(create_token(store, "default", "crm", ["events"]))
    finally:
        store.close()
    return rules, db, manage, events


#: The candidate of the HTTP tests: bartek alone in the pool.
CANDIDATE = TEAM + textwrap.dedent(BOT.replace("[anna, bartek, celina]", "[bartek]"))


@pytest.mark.slow
def test_replay_over_http_on_a_real_serve_process(tmp_path: Path) -> None:
    rules, db, manage, events = served(tmp_path)
    for client in serve(rules, db, tmp_path):
        for n in range(3, 9):
            sent = client.post("/v1/accounts/default/events", json=created(n, day(n)), headers=events)
            assert sent.status_code == 200, sent.text
        before = counts(db)
        body = {"files": {"candidate.yaml": CANDIDATE}, "since": "2026-11-01", "until": "2026-12-01"}
        done = client.post("/v1/accounts/default/replay", json=body, headers=manage)
        assert done.status_code == 200, done.text
        assert done.json()["distribution"] == [
            {"bot": "inbound", "user": "anna", "actual": 2, "candidate": 0},
            {"bot": "inbound", "user": "bartek", "actual": 2, "candidate": 6},
            {"bot": "inbound", "user": "celina", "actual": 2, "candidate": 0},
        ]
        assert [c["event_id"] for c in done.json()["changes"]] == ["e3", "e5", "e6", "e8"]
        assert counts(db) == before


def test_the_replay_endpoint_names_the_file_bot_and_field_of_bad_candidates(tmp_path: Path) -> None:
    rules, db, manage, events = served(tmp_path)
    with Engine(rules, db) as engine:
        for n in range(3, 5):
            engine.handle(created(n, day(n)))
    with TestClient(create_app(rulesets=rules, db=db)) as client:
        url = "/v1/accounts/default/replay"
        body: dict[str, Any] = {
            "files": {"candidate.yaml": CANDIDATE},
            "since": "2026-11-01",
            "until": "2026-12-01",
        }
        done = client.post(url, json=body, headers=manage)
        assert done.status_code == 200, done.text
        assert [(c["event_id"], c["candidate"]) for c in done.json()["changes"]] == [("e3", ["bartek"])]

        body["files"] = {"candidate.yaml": CANDIDATE + "    strategy: nope\n"}
        bad = client.post(url, json=body, headers=manage)
        assert bad.status_code == 422
        (error,) = bad.json()["errors"]
        assert error["field"] == "files.candidate.yaml"
        assert error["message"].startswith("candidate.yaml: bot 'inbound': field 'strategy': ")
        assert str(tmp_path) not in bad.text and "salesbot-replay-" not in bad.text  # no server path

        body["files"] = {"../etc/x.yaml": CANDIDATE}
        bad = client.post(url, json=body, headers=manage)
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["message"] == (
            "../etc/x.yaml: a file name is letters, digits, '_', '-', '.' ending in .yaml, .yml or .toml"
        )
        body = {"files": {"c.yaml": CANDIDATE}, "since": "yesterday"}
        bad = client.post(url, json=body, headers=manage)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "since"
        body = {"files": {"c.yaml": CANDIDATE}, "since": "2026-12-01", "until": "2026-11-01"}
        bad = client.post(url, json=body, headers=manage)
        assert bad.status_code == 422 and bad.json()["detail"].startswith("the window is empty")
        assert client.post(url, json=body, headers=events).status_code == 403


def test_the_table_escapes_what_came_from_outside(tmp_path: Path) -> None:
    actual = folder(tmp_path, "actual", BOT)
    with Engine(actual, tmp_path / "salesbot.db") as engine:
        for n, event_id in ((3, "e\u202eevil"), (4, "e\x9b31m")):
            engine.handle({**created(n, day(n)), "id": event_id})
    folder(tmp_path, "candidate", BOT.replace("[anna, bartek, celina]", "[celina]"))
    done = salesbot(
        "replay", "-r", "candidate", "--since", "2026-11-01", "--until", "2026-12-01", cwd=tmp_path
    )
    assert done.exit_code == 0
    assert "\u202e" not in done.stdout and "\x9b" not in done.stdout
    assert "e\\u202eevil" in done.stdout and "e\\x9b31m" in done.stdout
