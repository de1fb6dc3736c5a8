"""Store faults reach callers as ``StoreError`` (the CLI prints ``error: ...``), and a
PostgreSQL restart in the middle of a run is ridden out: real files, a real server."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pg_server
import pytest
from cli_runner import salesbot
from store_queries import check_exactly_once, rows
from test_reliability import POOLS, TWO_BOTS, events, salesbot_run, write_jsonl

from salesbot_core import Engine, StoreError, TransientStoreError


@pytest.fixture
def two_bots(write_rules) -> Path:
    return write_rules(**{"bots.yaml": TWO_BOTS})


@pytest.mark.slow
def test_a_postgresql_restart_in_the_middle_of_a_run_is_ridden_out(
    two_bots: Path, tmp_path: Path, own_cluster: pg_server.Cluster
) -> None:
    url = own_cluster.url
    events_file = write_jsonl(tmp_path / "events.jsonl", events(3_000))
    Engine(two_bots, url).close()  # the schema, so the count below can be read at once
    run = salesbot_run(events_file, two_bots, url)
    while rows(url, "SELECT COUNT(*) FROM outcomes") < [(300,)]:
        assert run.poll() is None, run.communicate()[1].decode()
        time.sleep(0.05)
    assert run.poll() is None  # still running: the restart hits it mid-way
    own_cluster.restart()
    _, stderr = run.communicate(timeout=600)
    assert (run.returncode, stderr.decode()) == (0, "")  # no traceback, no error
    check_exactly_once(url, 3_000, POOLS)


@pytest.mark.slow
def test_a_store_opened_while_postgresql_is_down_opens_once_the_server_is_up(
    two_bots: Path, own_cluster: pg_server.Cluster
) -> None:
    own_cluster.stop()
    opened: dict[str, object] = {}

    def open_engine() -> None:
        try:
            opened["engine"] = Engine(two_bots, own_cluster.url)
        except Exception as exc:  # the test's thread: handed back to be reported
            opened["error"] = exc

    opening = threading.Thread(target=open_engine)
    opening.start()
    time.sleep(1)
    assert (opening.is_alive(), opened) == (True, {})  # still trying, no error
    own_cluster.start()
    opening.join(timeout=60)
    assert list(opened) == ["engine"], opened.get("error")
    with opened["engine"] as engine:  # type: ignore[attr-defined]
        assert engine.handle(events(1)[0]).owners_after == ["jan"]
    check_exactly_once(own_cluster.url, 1, {"quartet": 1})


def test_a_full_sqlite_disk_is_a_store_error_and_loses_nothing_committed(
    two_bots: Path, tmp_path: Path
) -> None:
    db = tmp_path / "s.db"
    handled = 0
    with Engine(two_bots, db) as engine:
        conn = engine.store._conn  # the store's own connection: a real size limit on it
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        conn.execute(f"PRAGMA max_page_count = {pages + 3}")
        with pytest.raises(StoreError) as info:
            for event in events(1_000):
                engine.handle(event)
                handled += 1
        conn.execute("PRAGMA max_page_count = 1000000")
        # room again: the run goes on, each event exactly once
        for event in events(1_000):
            engine.handle(event)
    assert not isinstance(info.value, TransientStoreError)
    assert str(info.value) == (
        f"SQLite store {str(db)!r}: database or disk is full "
        "(free disk space, then run again: nothing of the failed event was written)"
    )
    assert 0 < handled < 1_000
    check_exactly_once(str(db), 1_000, POOLS)


def corrupt_tables(db: Path) -> None:
    """Overwrite the root page of every table with garbage, keeping the schema readable."""
    conn = sqlite3.connect(db)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    roots = [root for (root,) in conn.execute("SELECT rootpage FROM sqlite_master WHERE type = 'table'")]
    conn.close()
    with db.open("r+b") as f:
        for root in roots:
            f.seek((root - 1) * page_size)
            f.write(b"\xa5" * page_size)


def test_a_damaged_sqlite_file_is_an_error_line_from_the_cli(two_bots: Path, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    events_file = write_jsonl(tmp_path / "events.jsonl", events(20))
    with Engine(two_bots, db) as engine:
        for event in events(20):
            engine.handle(event)
    corrupt_tables(db)
    message = (
        f"error: SQLite store {str(db)!r}: database disk image is malformed "
        "(the file is damaged: restore it from a backup)\n"
    )
    for command in (["show", "deal", "d1"], ["run", str(events_file)], ["explain", "deal", "d1"]):
        done = salesbot(*command, "-r", str(two_bots), "--db", str(db))
        assert (done.exit_code, done.stderr, done.stdout) == (1, message, ""), command
