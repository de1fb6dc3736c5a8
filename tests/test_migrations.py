"""Upgrades from every schema that ever shipped, on both stores, through one history.

Each old database is built from the DDL that release shipped (``tests/fixtures/schemas``,
copied from its source, never read from git here) and filled with the rows of a real run:
two deals routed round robin, their company passed on, a wall, an outbox with one
notification delivered, a bot switch (``data.json``; each table gets the columns it had).
Opened by this salesbot, it must come out with the schema of a new database and with
every fact kept: processed ids answered as before, rotation going on where it stood, the
outbox, explain (the index of version 3, filled from the log), the owners index and
assignment times (version 2, filled from records and the log), the kept payloads of
replays (version 7, in the outcome rows from version 12 on).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from store_queries import rows

from salesbot_core import Engine
from salesbot_plugins.migrations import SCHEMA_VERSION

FIXTURES = Path(__file__).parent / "fixtures" / "schemas"
DATA: dict[str, list[dict[str, Any]]] = json.loads((FIXTURES / "data.json").read_text(encoding="utf-8"))
SQLITE_SHIPPED = [
    "sqlite-0-first",
    "sqlite-0-sales",
    "sqlite-0-caps",
    "sqlite-2",
    "sqlite-3",
    "sqlite-4",
    "sqlite-5",
    "sqlite-6",
    "sqlite-7",
]
POSTGRESQL_SHIPPED = [
    "postgresql-1",
    "postgresql-2",
    "postgresql-3",
    "postgresql-4",
    "postgresql-5",
    "postgresql-6",
]
#: PostgreSQL's own numbers for the versions it shipped, and where they sit on the one history.
ON_THE_HISTORY = {
    "postgresql-1": 2,
    "postgresql-2": 3,
    "postgresql-3": 4,
    "postgresql-4": 5,
    "postgresql-5": 6,
}

RULES = """
users:
  - {id: anna, name: Anna Nowak}
  - {id: bartek, name: Bartek Wiśniewski}
  - {id: celina, name: Celina Zając}
bots:
  - id: inbound
    name: Inbound leads
    entity: deal
    users: [anna, bartek, celina]
    strategy: round_robin
    actions:
      related: {company: true}
      tag: inbound-bot
      note: "Assigned by {bot.name} to {owner.name}"
      notify: "New deal {record.title}"
"""


def deal(n: int) -> dict[str, Any]:
    """The events of the run ``data.json`` holds (e1, e2), and the ones after it."""
    return {
        "id": f"e{n}",
        "kind": "created",
        "at": f"2026-11-0{n}T10:00:00Z",
        "record": {
            "entity": "deal",
            "id": f"d{n}",
            "title": f"Deal {n}",
            "company": "c1",
            "owners": ["bot:inbound"],
        },
    }


def statements(name: str) -> list[str]:
    text = (FIXTURES / f"{name}.sql").read_text(encoding="utf-8")
    return [s for s in text.split(";\n") if s.strip() and not s.strip().startswith("PRAGMA")]


def fill(execute: Callable[[str, list[Any]], None], tables: dict[str, list[str]], postgres: bool) -> None:
    """Insert the run's rows into the tables an old schema has, in the columns it has."""
    for table, records in DATA.items():
        if table not in tables:
            continue
        for record in records:
            names = [name for name in record if name in tables[table]]
            values = [bool(record[n]) if postgres and n in ("open", "active") else record[n] for n in names]
            columns = ", ".join(f'"{n}"' for n in names)
            execute(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['?'] * len(names))})", values)


def build_sqlite(path: Path, name: str) -> None:
    conn = sqlite3.connect(path)
    for statement in statements(name):
        conn.execute(statement)
    tables = {
        t: [c for (c,) in conn.execute("SELECT name FROM pragma_table_info(?)", (t,))]
        for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    fill(lambda sql, params: conn.execute(sql, params), tables, postgres=False)
    version = (FIXTURES / f"{name}.sql").read_text(encoding="utf-8").split("PRAGMA user_version = ")
    if len(version) > 1:
        conn.execute(f"PRAGMA user_version = {int(version[1].split(';')[0])}")
    conn.commit()
    conn.close()


def build_postgresql(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        for statement in statements(name):
            conn.execute(statement)
        tables: dict[str, list[str]] = {}
        for table, column in conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
        ):
            tables.setdefault(table, []).append(column)
        fill(lambda sql, params: conn.execute(sql.replace("?", "%s"), params), tables, postgres=True)
        # As a real database's would be: the serial counters past the rows there are.
        for table, column in (("outcomes", "seq"), ("notes", "seq"), ("notifications", "id")):
            if table in tables:
                conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), MAX({column})) "
                    f"FROM {table}"
                )


def schema(url: str) -> dict[str, Any]:
    """Tables with their columns, and index names: what a schema is, up to column order."""
    if url.startswith("postgresql://"):
        columns = rows(
            url,
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = 'public'",
        )
        indexes = rows(url, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
    else:
        columns = rows(
            url,
            'SELECT m.name, c.name, c.type, c."notnull" FROM sqlite_master m, pragma_table_info(m.name) c '
            "WHERE m.type = 'table'",
        )
        indexes = rows(url, "SELECT name FROM sqlite_master WHERE type = 'index'")
    return {"columns": sorted(columns), "indexes": sorted(i for (i,) in indexes)}


def check_upgraded(url: str, rules: Path, fresh: str, shipped_tables: set[str]) -> None:
    with Engine(rules, url) as engine:
        with engine.store.transaction() as tx:  # the owners index, filled from the records
            assert tx.open_load("default", "deal", ["anna", "bartek", "celina"]) == {
                "anna": 1,
                "bartek": 1,
                "celina": 0,
            }
            # Assignment times: kept, or (version 1) the time the event was logged.
            since, until = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
            assert tx.count_assigned("default", "anna", since, until) == 1
        # explain finds both events through the company they passed the owner on to.
        assert [o.event_id for o in engine.explain("default", "company", "c1")] == ["e1", "e2"]
        # A processed id is answered as the first time, nothing written again.
        again = engine.handle(deal(1))
        assert (again.duplicate, again.owners_after) == (True, ["anna"])
        if "notifications" in shipped_tables:  # the first release had no outbox
            assert [(n.id, n.user) for n in engine.outbox("default")] == [(2, "bartek")]
        if "bot_switches" in shipped_tables:
            assert engine.store.get_switches("default") == {"inbound": True}
        # Payloads kept before version 12 are replayed from where they are now.
        kept = engine.store.kept_events("default", since, until, 10, 10**6)
        if "event_payloads" in shipped_tables:
            assert [(k.outcome.event_id, k.payload, k.routed, k.size) for k in kept] == [
                (p["event_id"], json.loads(p["payload"]), False, p["size"]) for p in DATA["event_payloads"]
            ]
        else:  # kept by no release before
            assert kept == []
        # Rotation goes on where it stood: anna, bartek, then celina.
        assert engine.handle(deal(3)).owners_after == ["celina"]
        assert engine.record("default", "company", "c1").owners == ["celina"]  # type: ignore[union-attr]
        assert [(n.id, n.user) for n in engine.outbox("default")][-1][1] == "celina"
    assert schema(url) == schema(fresh)


@pytest.fixture
def rules(write_rules: Callable[..., Path]) -> Path:
    return write_rules(**{"team.yaml": RULES})


@pytest.mark.parametrize("name", SQLITE_SHIPPED)
def test_every_sqlite_schema_that_shipped_upgrades_keeping_every_fact(
    name: str, rules: Path, tmp_path: Path
) -> None:
    db, fresh = tmp_path / "old.db", tmp_path / "fresh.db"
    build_sqlite(db, name)
    shipped = {t for (t,) in rows(str(db), "SELECT name FROM sqlite_master WHERE type = 'table'")}
    Engine(rules, fresh).close()
    check_upgraded(str(db), rules, str(fresh), shipped)
    assert rows(str(db), "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(str(db), "PRAGMA integrity_check") == [("ok",)]


@pytest.mark.parametrize("name", POSTGRESQL_SHIPPED)
def test_every_postgresql_schema_that_shipped_upgrades_keeping_every_fact(
    name: str, rules: Path, postgres_url: str, postgres_admin_url: str
) -> None:
    import pg_server

    build_postgresql(postgres_url, name)
    shipped = {
        t for (t,) in rows(postgres_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    for fresh in pg_server.database_factory(postgres_admin_url)():
        Engine(rules, fresh).close()
        check_upgraded(postgres_url, rules, fresh, shipped)
    assert rows(postgres_url, "SELECT version FROM salesbot_schema") == [(SCHEMA_VERSION,)]


def test_postgresql_versions_are_read_on_the_one_history(postgres_url: str) -> None:
    import psycopg

    from salesbot_plugins.postgres_store import _schema_version

    for name, version in ON_THE_HISTORY.items():
        with psycopg.connect(postgres_url) as conn:
            conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            for statement in statements(name):
                conn.execute(statement)
            assert _schema_version(conn) == version


def test_a_version_7_database_is_read_without_upgrading(rules: Path, tmp_path: Path) -> None:
    """Version 8 only dropped indexes: a read-only command reads a version-7 file as it is."""
    db = tmp_path / "old.db"
    build_sqlite(db, "sqlite-7")
    with Engine(rules, db, readonly=True) as engine:
        assert [o.event_id for o in engine.explain("default", "deal", "d2")] == ["e2"]
    assert rows(str(db), "PRAGMA user_version") == [(7,)]
