"""Commands that only read open the store read-only: a read-only database can be read,
a missing one is not created, and the outbox needs no rulesets folder."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
from pathlib import Path

import pytest
from cli_runner import salesbot

from factories import TEAM, deal_event
from salesbot_core import Engine, StoreError
from salesbot_plugins.sqlite_store import SCHEMA_VERSION as SQLITE_VERSION

BOT = (
    TEAM
    + """
bots:
  - id: inbound
    users: [anna, bartek]
    actions: {notify: "New deal {record.id} is yours"}
"""
)


@pytest.fixture
def rules(write_rules) -> Path:
    return write_rules(**{"r.yaml": BOT})


def fingerprint(db: Path) -> str:
    return hashlib.sha256(db.read_bytes()).hexdigest()


@pytest.fixture
def readonly_db(rules: Path, tmp_path: Path) -> Path:
    """A store with two routed deals, its file made read-only (mode 0444)."""
    db = tmp_path / "data" / "s.db"
    db.parent.mkdir()
    with Engine(rules, db) as engine:
        engine.handle(deal_event(1))
        engine.handle(deal_event(2))
    # The last connection closed: everything is in the main file, no -wal or -shm left.
    assert sorted(p.name for p in db.parent.iterdir()) == ["s.db"]
    db.chmod(0o444)
    return db


def test_read_commands_read_a_read_only_database_and_never_write_it(
    rules: Path, readonly_db: Path, tmp_path: Path
) -> None:
    before = fingerprint(readonly_db)
    db = ["--db", str(readonly_db)]
    show = salesbot("show", "deal", "d1", "-r", str(rules), *db, cwd=tmp_path)
    assert (show.exit_code, show.stderr) == (0, "")
    assert show.stdout.splitlines()[:2] == ["deal d1 in account 'default'", "owners: anna"]
    explain = salesbot("explain", "deal", "d2", "-r", str(rules), *db, cwd=tmp_path)
    assert (explain.exit_code, explain.stderr) == (0, "")
    assert "bartek" in explain.stdout
    listed = salesbot("outbox", "list", "--json", *db, cwd=tmp_path)
    assert (listed.exit_code, listed.stderr, len(listed.stdout.splitlines())) == (0, "", 2)
    assert fingerprint(readonly_db) == before
    assert stat.S_IMODE(readonly_db.stat().st_mode) == 0o444
    # read-only is SQLite's own (mode=ro, or query_only where the file can be written),
    # not only the file's mode: it holds even for root
    with Engine(rules, readonly_db, readonly=True) as engine:
        assert engine.record("default", "deal", "d1").owners == ["anna"]
        with pytest.raises(StoreError) as info:
            engine.handle(deal_event(3))
    assert str(info.value) == f"SQLite store {str(readonly_db)!r}: attempt to write a readonly database"
    assert fingerprint(readonly_db) == before


@pytest.mark.parametrize(
    "command",
    [["show", "deal", "d1"], ["explain", "deal", "d1"], ["outbox", "list"]],
    ids=["show", "explain", "outbox-list"],
)
def test_read_commands_do_not_create_a_missing_database(
    rules: Path, tmp_path: Path, command: list[str]
) -> None:
    # the default --db, salesbot.db in the working directory
    done = salesbot(*command, "-r", str(rules), cwd=tmp_path)
    assert (done.exit_code, done.stdout, done.stderr) == (1, "", "error: no database at 'salesbot.db'\n")
    assert not (tmp_path / "salesbot.db").exists()


def test_an_older_database_opened_read_only_is_a_clear_error_and_stays_as_it_was(
    rules: Path, tmp_path: Path
) -> None:
    db = tmp_path / "old.db"
    with Engine(rules, db) as engine:
        engine.handle(deal_event(1))
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 2")  # as a salesbot of schema version 2 left it
    conn.close()
    before = fingerprint(db)
    done = salesbot("show", "deal", "d1", "-r", str(rules), "--db", str(db), cwd=tmp_path)
    assert (done.exit_code, done.stdout, done.stderr) == (
        1,
        "",
        f"error: the database at {str(db)!r} is from an older salesbot "
        f"(schema version 2, now {SQLITE_VERSION}): "
        "open it once for writing to upgrade it, e.g. with `salesbot run` on an empty events file\n",
    )
    assert fingerprint(db) == before


def test_the_outbox_commands_need_no_rulesets_folder(rules: Path, tmp_path: Path) -> None:
    with Engine(rules, tmp_path / "salesbot.db") as engine:
        engine.handle(deal_event(1))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()  # no rulesets folder here
    db = ["--db", str(tmp_path / "salesbot.db")]
    listed = salesbot("outbox", "list", "--json", *db, cwd=elsewhere)
    assert (listed.exit_code, listed.stderr, len(listed.stdout.splitlines())) == (0, "", 1)
    marked = salesbot("outbox", "mark-delivered", "1", *db, cwd=elsewhere)
    assert (marked.exit_code, marked.stderr, marked.stdout) == (0, "", "marked 1 of 1 delivered\n")


def test_a_postgresql_store_opened_read_only_reads_and_refuses_writes(rules: Path, postgres_url: str) -> None:
    with pytest.raises(StoreError) as empty:
        Engine(rules, postgres_url, readonly=True)
    with Engine(rules, postgres_url) as engine:
        engine.handle(deal_event(1))
    with Engine(rules, postgres_url, readonly=True) as engine:
        assert engine.record("default", "deal", "d1").owners == ["anna"]
        with pytest.raises(StoreError) as info:
            engine.handle(deal_event(2))
    assert str(empty.value).endswith("': it has no salesbot tables")
    assert str(empty.value).startswith("no salesbot database at 'postgresql://")
    assert str(info.value).endswith(": cannot execute SELECT FOR UPDATE in a read-only transaction")


def test_read_commands_leave_no_wal_or_shm_file_beside_the_store(rules: Path, tmp_path: Path) -> None:
    db = tmp_path / "data" / "s.db"
    db.parent.mkdir()
    with Engine(rules, db) as engine:
        engine.handle(deal_event(1))
    before = fingerprint(db)
    for command in (["show", "deal", "d1"], ["explain", "deal", "d1"], ["replay", "-r", str(rules)]):
        done = salesbot(
            *command, *(["-r", str(rules)] if command[0] != "replay" else []), "--db", str(db), cwd=tmp_path
        )
        assert done.exit_code == 0, done.stderr
        assert sorted(p.name for p in db.parent.iterdir()) == ["s.db"], command
    assert fingerprint(db) == before
    with Engine(rules, db, readonly=True) as engine, pytest.raises(StoreError) as info:
        engine.handle(deal_event(2))
    assert str(info.value) == f"SQLite store {str(db)!r}: attempt to write a readonly database"
