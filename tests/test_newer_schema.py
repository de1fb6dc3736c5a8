"""A database a newer salesbot migrated, on both stores: refused, and left as it was, when
that salesbot changed what this one relies on; opened as it is, neither migrated nor
downgraded, when it only expanded the schema (a rolling upgrade)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_runner import salesbot
from store_queries import rows
from test_reliability import write_jsonl

from factories import TEAM, deal_event
from salesbot_core import Engine, StoreError
from salesbot_plugins.migrations import SCHEMA_VERSION, STEPS, compatible_from

BOT = (
    TEAM
    + """
bots:
  - id: inbound
    users: [anna, bartek]
"""
)


@pytest.fixture
def rules(write_rules: Callable[..., Path]) -> Path:
    return write_rules(**{"r.yaml": BOT})


def execute(url: str, *statements: str) -> None:
    """Write to a store as a newer salesbot would, and commit."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as conn:
            for statement in statements:
                conn.execute(statement)
        return
    lite = sqlite3.connect(url, isolation_level=None)
    try:
        for statement in statements:
            lite.execute(statement)
    finally:
        lite.close()


def migrated_by_a_newer_salesbot(url: str, rules: Path, version: int, compatible_from: int) -> None:
    """A store with one routed deal (to anna), then recorded at ``version``, from
    ``compatible_from`` on, as a newer salesbot's migration leaves it."""
    with Engine(rules, url) as engine:
        engine.handle(deal_event(1))
    recorded = (
        f"UPDATE salesbot_schema SET version = {version}"
        if url.startswith("postgresql://")
        else f"PRAGMA user_version = {version}"
    )
    execute(url, recorded, f"UPDATE salesbot_compatibility SET compatible_from = {compatible_from}")


def versions(url: str) -> tuple[int, int]:
    """The version a store records, and the oldest that can run on it."""
    if url.startswith("postgresql://"):
        [(version,)] = rows(url, "SELECT version FROM salesbot_schema")
    else:
        [(version,)] = rows(url, "PRAGMA user_version")
    [(oldest,)] = rows(url, "SELECT compatible_from FROM salesbot_compatibility")
    return version, oldest


def contents(url: str) -> object:
    """Everything a store holds: a SQLite file's bytes (and what lies beside it), or every
    row of every PostgreSQL table."""
    if not url.startswith("postgresql://"):
        db = Path(url)
        return hashlib.sha256(db.read_bytes()).hexdigest(), sorted(p.name for p in db.parent.iterdir())
    tables = rows(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
    return {table: sorted(map(repr, rows(url, f"SELECT * FROM {table}"))) for (table,) in tables}


def test_each_step_that_only_expands_keeps_the_database_open_to_the_versions_before() -> None:
    # 11 moved payloads into the outcome rows, keeping event_payloads for version 10, and
    # dropped indexes; 10 only added the compatibility record; 9 added due items every
    # assignment must set
    assert [step.expand_only for step in STEPS[8:]] == [False, True, True]
    assert [compatible_from(v) for v in range(1, SCHEMA_VERSION + 1)] == [1, 2, 3, 3, 5, 5, 5, 8, 9, 9, 9]


def test_a_new_database_records_the_oldest_version_that_can_run_on_it(rules: Path, store_url: str) -> None:
    Engine(rules, store_url).close()
    assert versions(store_url) == (SCHEMA_VERSION, 9) == (11, 9)


@pytest.mark.parametrize("command", ["run", "show", "outbox"])
def test_a_database_a_newer_salesbot_changed_beyond_this_one_is_refused_and_left_as_it_was(
    rules: Path, store_url: str, tmp_path: Path, command: str
) -> None:
    migrated_by_a_newer_salesbot(store_url, rules, version=99, compatible_from=99)
    events = write_jsonl(tmp_path / "events.jsonl", [deal_event(2)])
    before = contents(store_url)
    args = {
        "run": ["run", str(events), "-r", str(rules)],  # writes
        "show": ["show", "deal", "d1", "-r", str(rules)],  # reads: the store opened read-only
        "outbox": ["outbox", "list"],  # reads, without rules
    }[command]
    done = salesbot(*args, "--db", store_url, cwd=tmp_path)
    assert (done.exit_code, done.stdout, done.stderr) == (
        1,
        "",
        f"error: the database at {store_url!r} was made by a newer salesbot (schema 99, this one knows 11) "
        "and needs one of schema 99 or later: nothing was written\n",
    )
    assert contents(store_url) == before
    assert versions(store_url) == (99, 99)


def test_a_newer_database_without_a_compatibility_record_is_refused(rules: Path, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    Engine(rules, db).close()
    execute(str(db), "PRAGMA user_version = 99", "DROP TABLE salesbot_compatibility")
    with pytest.raises(StoreError) as info:
        Engine(rules, db)
    assert "(schema 99, this one knows 11) and needs one of schema 99 or later" in str(info.value)


def test_a_database_a_newer_salesbot_only_expanded_is_used_as_it_is(rules: Path, store_url: str) -> None:
    # version 12's steps only expanded the schema: salesbot 10 and later can run on it
    migrated_by_a_newer_salesbot(store_url, rules, version=12, compatible_from=SCHEMA_VERSION)
    with Engine(rules, store_url) as engine:
        assert engine.handle(deal_event(2)).owners_after == ["bartek"]
        assert engine.record("default", "deal", "d1").owners == ["anna"]  # type: ignore[union-attr]
    with Engine(rules, store_url, readonly=True) as engine:
        assert engine.record("default", "deal", "d2").owners == ["bartek"]  # type: ignore[union-attr]
    # neither migrated again nor downgraded
    assert versions(store_url) == (12, SCHEMA_VERSION)
