"""The stores write only what changed, on both stores, seen by triggers on the real tables.

A trigger logs every insert, update and delete of ``records`` and ``record_owners``; each
test then says exactly which rows an event wrote.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from store_queries import rows

from salesbot_core import Engine

TEAM = """
users:
  - {id: anna, name: Anna Nowak}
  - {id: bartek, name: Bartek Wiśniewski}
  - {id: celina, name: Celina Zając}
"""

SQLITE_TRIGGERS = """
CREATE TABLE writes (seq INTEGER PRIMARY KEY, tbl TEXT, op TEXT, ref TEXT);
CREATE TRIGGER records_i AFTER INSERT ON records
    BEGIN INSERT INTO writes (tbl, op, ref) VALUES ('records', 'insert', NEW.entity || ':' || NEW.id); END;
CREATE TRIGGER records_u AFTER UPDATE ON records
    BEGIN INSERT INTO writes (tbl, op, ref) VALUES ('records', 'update', NEW.entity || ':' || NEW.id); END;
CREATE TRIGGER owners_i AFTER INSERT ON record_owners
    BEGIN INSERT INTO writes (tbl, op, ref) VALUES ('owners', 'insert', NEW.record_id || ':' || NEW.user);
    END;
CREATE TRIGGER owners_u AFTER UPDATE ON record_owners
    BEGIN INSERT INTO writes (tbl, op, ref) VALUES ('owners', 'update', NEW.record_id || ':' || NEW.user);
    END;
CREATE TRIGGER owners_d AFTER DELETE ON record_owners
    BEGIN INSERT INTO writes (tbl, op, ref) VALUES ('owners', 'delete', OLD.record_id || ':' || OLD.user);
    END;
"""

POSTGRESQL_TRIGGERS = """
CREATE TABLE writes (seq BIGSERIAL PRIMARY KEY, tbl TEXT, op TEXT, ref TEXT);
CREATE FUNCTION log_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row RECORD := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
BEGIN
    IF TG_TABLE_NAME = 'records' THEN
        INSERT INTO writes (tbl, op, ref) VALUES ('records', lower(TG_OP), row.entity || ':' || row.id);
    ELSE
        INSERT INTO writes (tbl, op, ref) VALUES ('owners', lower(TG_OP), row.record_id || ':' || row."user");
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER records_w AFTER INSERT OR UPDATE ON records FOR EACH ROW EXECUTE FUNCTION log_write();
CREATE TRIGGER owners_w AFTER INSERT OR UPDATE OR DELETE ON record_owners
    FOR EACH ROW EXECUTE FUNCTION log_write();
"""


def watch(url: str) -> None:
    """Log the writes of ``records`` and ``record_owners`` from now on."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as conn:
            conn.execute(POSTGRESQL_TRIGGERS)
    else:
        conn = sqlite3.connect(url)
        conn.executescript(SQLITE_TRIGGERS)
        conn.close()


def writes(url: str) -> list[tuple[str, str, str]]:
    """The writes logged since the last call, in the order they were made."""
    logged = rows(url, "SELECT tbl, op, ref FROM writes ORDER BY seq")
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as conn:
            conn.execute("DELETE FROM writes")
    else:
        conn = sqlite3.connect(url)
        conn.execute("DELETE FROM writes")
        conn.commit()
        conn.close()
    return [tuple(row) for row in logged]  # type: ignore[misc]


def inbound(write_rules: Callable[..., Path], users: str, actions: str) -> Path:
    """The team and one deal bot, ``inbound``."""
    bot = f"bots:\n  - {{id: inbound, name: Inbound, entity: deal, users: {users}, actions: {actions}}}\n"
    return write_rules(**{"team.yaml": TEAM + bot})


def by_bot(n: int) -> dict[str, Any]:
    """Event ``e<n>``: deal ``d<n>`` of company c1, to be routed by the inbound bot."""
    record = {"entity": "deal", "id": f"d{n}", "company": "c1", "owners": ["bot:inbound"]}
    return {"id": f"e{n}", "kind": "created", "record": record}


def deal(n: int, owners: list[str], **fields: Any) -> dict[str, Any]:
    record = {"entity": "deal", "id": "d1", "company": "c1", "owners": owners, **fields}
    return {"id": f"e{n}", "kind": "created" if n == 1 else "updated", "record": record}


def test_a_linked_record_that_did_not_change_is_not_written_again(
    store_url: str, write_rules: Callable[..., Path]
) -> None:
    rules = inbound(write_rules, "[anna]", "{related: {company: true}, tag: inbound}")
    with Engine(rules, store_url) as engine:
        watch(store_url)
        engine.handle(by_bot(1))
        assert sorted(writes(store_url)) == [
            ("owners", "insert", "c1:anna"),
            ("owners", "insert", "d1:anna"),
            ("records", "insert", "company:c1"),
            ("records", "insert", "deal:d1"),
        ]
        # The company already has anna and the tag: only the new deal is written.
        engine.handle(by_bot(2))
        assert sorted(writes(store_url)) == [
            ("owners", "insert", "d2:anna"),
            ("records", "insert", "deal:d2"),
        ]
        # A redelivery writes no record at all.
        engine.handle(by_bot(2))
        assert writes(store_url) == []
        assert engine.record("default", "company", "c1").owners == ["anna"]  # type: ignore[union-attr]


def test_owners_are_written_by_difference(store_url: str, write_rules: Callable[..., Path]) -> None:
    rules = write_rules(**{"team.yaml": TEAM + "settings: {multiple_owners: true}\n"})
    with Engine(rules, store_url) as engine:
        engine.handle(deal(1, ["anna", "bartek"]))
        watch(store_url)
        engine.handle(deal(2, ["bartek", "celina"]))
        # bartek stays as he was: anna's row goes, celina's comes.
        assert writes(store_url) == [
            ("records", "update", "deal:d1"),
            ("owners", "delete", "d1:anna"),
            ("owners", "insert", "d1:celina"),
        ]
        engine.handle(deal(3, ["bartek", "celina"], open=False))
        assert sorted(writes(store_url)) == [
            ("owners", "update", "d1:bartek"),
            ("owners", "update", "d1:celina"),
            ("records", "update", "deal:d1"),
        ]
        with engine.store.transaction() as tx:
            assert tx.open_load("default", "deal", ["anna", "bartek", "celina"]) == {
                "anna": 0,
                "bartek": 0,
                "celina": 0,
            }
        engine.handle(deal(4, ["bartek", "celina"], open=False))  # the same again
        assert writes(store_url) == []
        assert rows(
            store_url, 'SELECT "user" FROM record_owners WHERE record_id = ? ORDER BY "user"', ("d1",)
        ) == [("bartek",), ("celina",)]


def traced(engine: Engine, run: Callable[[], Any]) -> list[str]:
    """The statements SQLite ran for ``run()`` on the engine's store."""
    statements: list[str] = []
    engine.store._conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    try:
        run()
    finally:
        engine.store._conn.set_trace_callback(None)  # type: ignore[attr-defined]
    return statements


def test_the_switches_are_read_once_per_transaction(deal_bot_rules: Path, tmp_path: Path) -> None:
    from factories import deal_event

    with Engine(deal_bot_rules, tmp_path / "s.db") as engine:
        engine.set_bot_active("default", "inbound", True)
        outcomes: list[Any] = []
        statements = traced(
            engine,
            lambda: outcomes.extend(engine.handle_many([deal_event(n) for n in range(1, 11)], batch_size=10)),
        )
    assert [o.owners_after for o in outcomes[:4]] == [["anna"], ["bartek"], ["celina"], ["anna"]]
    assert sum("FROM bot_switches" in s for s in statements) == 1


def test_a_batch_reads_a_rotation_state_once_and_builds_on_what_it_wrote(
    deal_bot_rules: Path, tmp_path: Path
) -> None:
    from factories import deal_event

    with Engine(deal_bot_rules, tmp_path / "s.db") as engine:
        outcomes: list[Any] = []
        statements = traced(
            engine,
            lambda: outcomes.extend(engine.handle_many([deal_event(n) for n in range(1, 8)], batch_size=7)),
        )
        assert [o.owners_after for o in outcomes] == [
            ["anna"], ["bartek"], ["celina"], ["anna"], ["bartek"], ["celina"], ["anna"]
        ]  # fmt: skip
        assert sum(s.startswith("SELECT state FROM strategy_state") for s in statements) == 1
        assert sum(s.startswith("INSERT INTO strategy_state") for s in statements) == 7
        # The next transaction reads what the batch left.
        assert engine.handle(deal_event(8)).owners_after == ["bartek"]


SLA_BOT = """
bots:
  - id: inbound
    name: Inbound leads
    entity: deal
    users: [anna, bartek, celina]
    sla: {within: 2h}
"""


@pytest.mark.parametrize("with_sla", [False, True], ids=["no-sla", "sla"])
def test_due_items_are_read_only_in_accounts_whose_bots_set_deadlines(
    write_rules: Callable[..., Path], tmp_path: Path, with_sla: bool
) -> None:
    """An account without deadlines pays no read for them; one with an SLA bot reads the
    record's due item, and an update by its owner meets (clears) it."""
    from factories import deal_event

    bot = SLA_BOT if with_sla else SLA_BOT.replace("    sla: {within: 2h}\n", "")
    rules = write_rules(**{"team.yaml": TEAM + bot})
    with Engine(rules, tmp_path / "s.db") as engine:
        engine.handle(deal_event(1))
        assert [item.owner for item in engine.store.due_items("default")] == (["anna"] if with_sla else [])
        update = deal_event(1, owners=["anna"], kind="updated") | {"id": "e2", "by": "anna"}
        statements = traced(engine, lambda: engine.handle(update))
        reads = [s for s in statements if s.startswith("SELECT") and "FROM due_items" in s]
        assert len(reads) == (1 if with_sla else 0)
        assert engine.store.due_items("default") == []


@pytest.mark.parametrize("table", ["assignments", "outcomes"])
def test_an_event_writes_only_the_indexes_a_query_reads(
    store_url: str, table: str, deal_bot_rules: Path
) -> None:
    """assignments: the caps' count by (account, user, at), which the page's count of a
    day's assignments reads too, and the page's two of a bot (its distribution since a
    moment, its latest assignments); outcomes: its unique (account, event_id) key, the
    page's one (account, created_at, seq), and the payloads kept for replays, by the time
    they were decided (a partial index: only the rows that keep one). Neither keeps an
    index of before: explain reads outcome_records."""
    Engine(deal_bot_rules, store_url).close()
    page = {
        "assignments": ["assignments_bot_at", "assignments_bot_seq", "assignments_user"],
        "outcomes": ["outcomes_account_time", "outcomes_kept"],
    }
    if store_url.startswith("postgresql://"):
        names = rows(store_url, "SELECT indexname FROM pg_indexes WHERE tablename = ?", (table,))
        keys = {"assignments": [], "outcomes": ["outcomes_account_event_id_key", "outcomes_pkey"]}
    else:
        names = rows(
            store_url, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (table,)
        )
        keys = {"assignments": [], "outcomes": ["sqlite_autoindex_outcomes_1"]}
    assert sorted(name for (name,) in names) == sorted(page[table] + keys[table])
    if table == "assignments" and not store_url.startswith("postgresql://"):
        plan = rows(
            store_url,
            'EXPLAIN QUERY PLAN SELECT COUNT(*) FROM assignments WHERE account = ? AND "user" = ? '
            "AND at >= ? AND at < ?",
            ("a", "u", "x", "y"),
        )
        assert [detail for *_, detail in plan] == [
            "SEARCH assignments USING COVERING INDEX assignments_user "
            "(account=? AND user=? AND at>? AND at<?)"
        ]


def test_the_admin_pages_counts_read_the_indexes_alone(tmp_path: Path, deal_bot_rules: Path) -> None:
    """The day's activity seeks each user of the account in the caps' index and counts a
    range of it, never reading a row of the tables; the latest outcomes walk the page's
    index of outcomes."""
    from salesbot_plugins import page_queries

    db = str(tmp_path / "s.db")
    Engine(deal_bot_rules, db).close()

    def plan(sql: str, params: tuple[object, ...]) -> list[str]:
        return [detail for *_, detail in rows(db, "EXPLAIN QUERY PLAN " + sql, params)]

    seen = plan(page_queries.ACTIVITY, page_queries.activity_params("a", "x"))
    assert [
        line for line in seen if "SEARCH outcomes" in line or "assignments" in line or "SEARCH a " in line
    ] == [
        "SEARCH outcomes USING COVERING INDEX outcomes_account_time (account=? AND created_at>?)",
        "SEARCH assignments USING COVERING INDEX assignments_user (account=?)",
        "SEARCH assignments USING COVERING INDEX assignments_user (account=? AND user>?)",
        "SEARCH a USING COVERING INDEX assignments_user (account=? AND user=? AND at>?)",
    ]
    assert plan(*page_queries.recent_params("a", 5, None, None)) == [
        "SEARCH outcomes USING INDEX outcomes_account_time (account=?)"
    ]
    assert plan(*page_queries.recent_params("a", 5, 7, None))[0] == (
        "SEARCH outcomes USING INDEX outcomes_account_time (account=? AND created_at<?)"
    )


def test_every_statement_of_an_event_stays_in_its_account(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    """What lets the tables be spread by account (docs/operations.md): each statement an
    event runs names the account, through its key or its columns."""
    rules = inbound(
        write_rules,
        "[anna, bartek]",
        '{related: {company: true}, tag: inbound, note: "To {owner.name}", notify: hi}',
    )
    with Engine(rules, tmp_path / "s.db") as engine:
        statements: list[str] = []
        engine.store._conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
        for n in (1, 2, 1):  # two events and a redelivery
            engine.handle(by_bot(n))
        engine.store._conn.set_trace_callback(None)  # type: ignore[attr-defined]
    data = [s for s in statements if s not in ("BEGIN IMMEDIATE", "COMMIT")]
    assert len(data) > 20
    assert [s for s in data if "account" not in s] == []


def test_the_sqlite_store_checkpoints_its_wal_at_sqlites_default_and_cuts_it_back(tmp_path: Path) -> None:
    from salesbot_plugins.sqlite_store import WAL_CHECKPOINT_PAGES, WAL_SIZE_LIMIT, SQLiteStore

    store = SQLiteStore(tmp_path / "s.db")
    try:
        (pages,) = store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()
        (limit,) = store._conn.execute("PRAGMA journal_size_limit").fetchone()
    finally:
        store.close()
    assert (pages, limit) == (WAL_CHECKPOINT_PAGES, WAL_SIZE_LIMIT) == (1000, 4 * 1024 * 1024)
