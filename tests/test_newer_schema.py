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
from store_queries import rows, schema_version
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
    [(oldest,)] = rows(url, "SELECT compatible_from FROM salesbot_compatibility")
    return schema_version(url), oldest


def contents(url: str) -> object:
    """Everything a store holds: a SQLite file's bytes (and what lies beside it), or every
    row of every PostgreSQL table."""
    if not url.startswith("postgresql://"):
        db = Path(url)
        return hashlib.sha256(db.read_bytes()).hexdigest(), sorted(p.name for p in db.parent.iterdir())
    tables = rows(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
    return {table: sorted(map(repr, rows(url, f"SELECT * FROM {table}"))) for (table,) in tables}


def test_each_step_that_only_expands_keeps_the_database_open_to_the_versions_before() -> None:
    # 10 only added the compatibility record; 9 added due items every assignment must set
    assert (STEPS[9].expand_only, STEPS[8].expand_only) == (True, False)
    assert [compatible_from(v) for v in range(1, 11)] == [1, 2, 3, 3, 5, 5, 5, 8, 9, 9]
    # later steps: each keeps the versions before open while it only expands
    for version in range(11, SCHEMA_VERSION + 1):
        before = compatible_from(version - 1) if STEPS[version - 1].expand_only else version
        assert compatible_from(version) == before


def test_a_new_database_records_the_oldest_version_that_can_run_on_it(rules: Path, store_url: str) -> None:
    Engine(rules, store_url).close()
    assert versions(store_url) == (SCHEMA_VERSION, compatible_from(SCHEMA_VERSION))


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
        f"error: the database at {store_url!r} was made by a newer salesbot (schema 99, this one knows "
        f"{SCHEMA_VERSION}) "
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
    assert f"(schema 99, this one knows {SCHEMA_VERSION}) and needs one of schema 99 or later" in str(
        info.value
    )


def test_a_database_a_newer_salesbot_only_expanded_is_used_as_it_is(rules: Path, store_url: str) -> None:
    # two newer versions' steps only expanded the schema: this salesbot and later can run on it
    newer = SCHEMA_VERSION + 2
    migrated_by_a_newer_salesbot(store_url, rules, version=newer, compatible_from=SCHEMA_VERSION)
    with Engine(rules, store_url) as engine:
        assert engine.handle(deal_event(2)).owners_after == ["bartek"]
        assert engine.record("default", "deal", "d1").owners == ["anna"]  # type: ignore[union-attr]
    with Engine(rules, store_url, readonly=True) as engine:
        assert engine.record("default", "deal", "d2").owners == ["bartek"]  # type: ignore[union-attr]
    # neither migrated again nor downgraded
    assert versions(store_url) == (newer, SCHEMA_VERSION)


def test_every_step_says_whether_it_only_expands_and_why() -> None:
    """A step that does not only expand stops a rolling upgrade: the database refuses the
    salesbots still running (docs/upgrading.md). So a new step may not take that by
    default: it passes ``expand_only`` itself, and every step after the first says why on
    its line of ``STEPS`` (or the comment line above it)."""
    import ast
    import inspect

    import salesbot_plugins.migrations as migrations

    source = inspect.getsource(migrations)
    lines = source.splitlines()
    [entries] = [
        node.value.elts
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.AnnAssign)
        and getattr(node.target, "id", "") == "STEPS"
        and isinstance(node.value, ast.Tuple)
    ]
    assert len(entries) == len(STEPS) == SCHEMA_VERSION
    for version, entry in enumerate(entries, start=1):
        assert isinstance(entry, ast.Call)
        declared = [k.value for k in entry.keywords if k.arg == "expand_only"]
        if version > 10:  # from the first step written after compatible-from existed
            assert declared and isinstance(declared[0], ast.Constant), f"step {version}: expand_only=?"
        said = lines[entry.lineno - 1].partition("#")[2] or lines[entry.lineno - 2].strip().partition("#")[2]
        assert version == 1 or said.strip(), f"step {version} does not say why it (does not) only expand"
    # the steps that only expand today, and so the versions a rolling upgrade can start from
    assert [v for v, step in enumerate(STEPS, start=1) if step.expand_only] == [4, 6, 7, 10, 11, 12]
