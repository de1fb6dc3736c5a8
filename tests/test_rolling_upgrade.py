"""A rolling upgrade under load, on each store (docs/upgrading.md): the previous release
serves a store it made (schema 9) to 8 clients; this version migrates the store while it
serves; this version's serve starts on the same store and both serve at once; the old one
is stopped with SIGTERM while the clients still send to it, and the new one serves on.

Nothing acknowledged is lost, nothing is decided twice, the round robin's rotation is
exact across the old and the new deciders (both advance the one rotation in the store),
and the clients see no failed request, only retryable ones (a refused connection to the
stopped instance), which they send again to the other instance."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from client_load import Load
from previous_release import PREVIOUS_SCHEMA, Release
from store_queries import rows, schema_version
from test_newer_schema import versions
from test_observability import Served
from test_service import bearer

from factories import TEAM
from salesbot_plugins.migrations import SCHEMA_VERSION

USERS = ["anna", "bartek", "celina"]
RULES = """
bots:
  - id: inbound
    entity: deal
    users: [anna, bartek, celina]
    strategy: round_robin
"""
#: Events in all: a multiple of the pool, so an exact rotation gives each user as many.
EVENTS = 1200
CLIENTS = 8


def deal(n: int) -> dict[str, object]:
    return {
        "id": f"e{n}",
        "kind": "created",
        "record": {"entity": "deal", "id": f"d{n}", "owners": ["bot:inbound"]},
    }


def migrate(db: str, folder: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """This version's migration of the store, started as docs/upgrading.md does it: a run
    of no events opens the store for writing, which migrates it."""
    command = [
        sys.executable,
        "-m",
        "salesbot_core",
        "run",
        "--quiet",
        "/dev/null",
        "-r",
        str(folder),
        "--db",
        db,
    ]
    return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def under_load(load: Load, process: subprocess.Popen[bytes], upto: int) -> None:
    """Release events to the clients while ``process`` runs, up to ``upto`` in all."""
    while process.poll() is None:
        if load.released < upto:
            load.release(5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(0.02)


def rolling_upgrade(previous: Release, folder: Path, db: str, cwd: Path, store: str) -> None:
    secret = previous.run(
        "token", "create", "--account", "default", "--name", "load", "--scope", "events", "--db", db, cwd=cwd
    ).stdout.strip()
    load = Load([deal(n) for n in range(EVENTS)], "/v1/accounts/default/events", bearer(secret), CLIENTS)
    old = Served(folder, db, cwd, "--no-deliver", salesbot=previous.command, env=previous.env)
    new: Served | None = None
    try:
        old.wait_ready()
        assert schema_version(db) == PREVIOUS_SCHEMA
        load.instances = [old.base]
        with load:
            load.release(300)  # the old release alone
            load.wait_acked(200)
            migration = migrate(db, folder, cwd)
            before = len(load.acked)
            under_load(load, migration, upto=600)  # the old release keeps deciding meanwhile
            during = len(load.acked) - before
            _, errors = migration.communicate()
            assert migration.returncode == 0, errors
            load.wait_acked(load.released)
            new = Served(folder, db, cwd, "--no-deliver")
            new.wait_ready()
            load.instances = [old.base, new.base]  # both serve at once
            alone = load.decided_by()
            load.release(300)
            load.wait_acked(load.released)
            together = load.decided_by() - alone
            both = {"old": together[old.base], "new": together[new.base]}
            old.process.terminate()  # while the clients still send to it
            under_load(load, old.process, upto=1000)
            assert old.process.returncode == 0, old.output()
            load.instances = [new.base]
            load.release(EVENTS)  # the new version alone, to the end
            load.wait_acked(EVENTS)
    finally:
        old.stop()
        if new is not None:
            new.stop()
    figures = load.figures
    acked = set(load.acked)
    decided = {
        event_id: n for event_id, n in rows(db, "SELECT event_id, COUNT(*) FROM outcomes GROUP BY event_id")
    }
    lost = len(acked - set(decided))
    per_record = rows(
        db,
        "SELECT o.record_id, COUNT(*) FROM assignments a JOIN outcomes o ON o.seq = a.seq "
        "GROUP BY o.record_id",
    )
    doubled = len(figures.doubled) + sum(n > 1 for _, n in per_record) + sum(n > 1 for n in decided.values())
    print(
        f"\nrolling upgrade on {store}: requests {figures.requests}, lost {lost}, doubled {doubled}, "
        f"failed {len(figures.failed)}, retried {figures.retried}, p99 {figures.p99_ms:.1f} ms; "
        f"{during} events decided by the old release during the migration; while both served, "
        f"the old decided {both['old']} and the new {both['new']}"
    )
    assert (lost, doubled, figures.failed) == (0, 0, [])
    assert len(acked) == len(decided) == len(per_record) == EVENTS
    counts = dict(rows(db, 'SELECT "user", COUNT(*) FROM assignments GROUP BY "user"'))
    assert counts == {user: EVENTS // len(USERS) for user in USERS}  # spread 0
    assert both["old"] > 0 and both["new"] > 0
    assert versions(db) == (SCHEMA_VERSION, PREVIOUS_SCHEMA)


@pytest.mark.slow
def test_rolling_upgrade_on_sqlite(
    previous: Release, write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    folder = write_rules(**{"team.yaml": TEAM, "bots.yaml": RULES})
    rolling_upgrade(previous, folder, str(tmp_path / "salesbot.db"), tmp_path, "SQLite")


@pytest.mark.slow
def test_rolling_upgrade_on_postgresql(
    previous: Release, write_rules: Callable[..., Path], postgres_url: str, tmp_path: Path
) -> None:
    folder = write_rules(**{"team.yaml": TEAM, "bots.yaml": RULES})
    rolling_upgrade(previous, folder, postgres_url, tmp_path, "PostgreSQL")
