"""Backups of a PostgreSQL store, restored for real: docs/postgresql.md's drill (a
``pg_dump`` of a database that ``salesbot serve`` is writing to, restored into a new
server) and its point-in-time recovery (a base backup and the WAL archive, recovered to a
named restore point). Each restored database continues exactly: ``explain`` says what it
said before, and the next event goes to the exact next user."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pg_server
import pytest
from cli_runner import salesbot
from retrying_clients import Load, run_clients
from store_queries import rows
from test_failover import RULES, USERS, deal, owned
from test_observability import Served
from test_service import bearer

from factories import TEAM
from salesbot_core import Engine
from salesbot_core.tokens import create_token

ROOT = Path(__file__).parent.parent
PAGE = (ROOT / "docs/postgresql.md").read_text(encoding="utf-8")
#: Events posted while the dump is taken, and how many are in before it starts.
EVENTS = 600
DUMP_AFTER = 100


@pytest.fixture
def old_server() -> Iterator[pg_server.Cluster]:
    yield from owned(pg_server.private_cluster())


@pytest.fixture
def new_server() -> Iterator[pg_server.Cluster]:
    yield from owned(pg_server.private_cluster())


@pytest.fixture
def rulesets(write_rules: Callable[..., Path]) -> Path:
    return write_rules(**{"team.yaml": TEAM, "bots.yaml": RULES})


def database(cluster: pg_server.Cluster, name: str) -> str:
    """A new database ``name`` on ``cluster``; its URL."""
    import psycopg

    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return cluster.url.rsplit("/", 1)[0] + f"/{name}"


def shell(script: str, cwd: Path, cluster: pg_server.Cluster, **env: str) -> str:
    """Run ``script`` with bash as the docs page shows it: PostgreSQL's client programs
    and ``salesbot`` on the PATH; its output."""
    path = os.pathsep.join([str(cluster.bindir), str(Path(sys.executable).parent), os.environ["PATH"]])
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env={**os.environ, "PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def continues_exactly(restored: str, rulesets: Path) -> None:
    """The restored database is one moment of the old one, and goes on from it: its
    rotation state names the user of its last assignment, and the next event goes to the
    user after that one."""
    ((decided,),) = rows(restored, "SELECT COUNT(*) FROM outcomes")
    ((last,),) = rows(restored, 'SELECT "user" FROM assignments ORDER BY seq DESC LIMIT 1')
    ((state,),) = rows(restored, "SELECT state FROM strategy_state WHERE bot = 'inbound'")
    assert (last, f'"last": "{last}"' in state) == (USERS[(decided - 1) % 3], True), state
    with Engine(rulesets, restored) as engine:
        assert engine.handle(deal(10_000)).owners_after == [USERS[decided % 3]]


@pytest.mark.slow
def test_a_dump_of_a_running_database_restored_into_a_new_server_continues_exactly(
    rulesets: Path, tmp_path: Path, old_server: pg_server.Cluster, new_server: pg_server.Cluster
) -> None:
    """docs/postgresql.md's drill, run as written while 8 clients post events through
    ``salesbot serve``: the dump is one moment of the database, ``explain`` of a record on
    the new server prints what it printed on the old one, and the next event goes to the
    exact next user."""
    old = database(old_server, "crm")
    new = new_server.url.rsplit("/", 1)[0] + "/crm"
    with Engine(rulesets, old) as engine:
        auth = bearer(create_token(engine.store, "default", "crm", ["events"]))
    drill = after("## Backup and restore drill", "sh")
    printed: list[str] = []

    def dump_meanwhile(load: Load) -> None:
        while load.count() < DUMP_AFTER:
            time.sleep(0.01)
        env = {"SALESBOT_DB": old, "NEW_SERVER": new_server.url, "NEW_DB": new}
        printed.append(shell(drill, tmp_path, new_server, **env))

    server = Served(rulesets, old, tmp_path, "--workers", "2")
    try:
        server.wait_ready()
        events = [deal(n) for n in range(EVENTS)]
        load = run_clients(server.base, auth, events, meanwhile=dump_meanwhile)
    finally:
        server.stop()
    assert len(load.acknowledged) == EVENTS and load.failed == []
    before = salesbot("explain", "deal", "d42", "-r", str(rulesets), "--db", old)
    ((owner,),) = rows(
        old, "SELECT a.\"user\" FROM assignments a JOIN outcomes o ON o.seq = a.seq WHERE o.event_id = 'e42'"
    )
    assert before.exit_code == 0 and owner in before.stdout, before.stderr
    assert printed == [before.stdout]
    ((dumped,),) = rows(new, "SELECT COUNT(*) FROM outcomes")
    print(f"restore drill: {dumped} of {EVENTS} events were in the dump")
    continues_exactly(new, rulesets)


#: Where docs/postgresql.md keeps the WAL archive; the test keeps it in a folder of its own.
DOCS_ARCHIVE = "/var/lib/postgresql/wal-archive"


def after(marker: str, kind: str) -> str:
    """The first ``kind`` block after ``marker`` in docs/postgresql.md."""
    found = re.search(rf"```{kind}\n(.*?)```", PAGE[PAGE.index(marker) :], re.DOTALL)
    assert found is not None, f"no {kind} block after {marker!r} in docs/postgresql.md"
    return found[1]


@pytest.mark.slow
def test_point_in_time_recovery_to_a_restore_point_holds_what_came_before_it_and_continues(
    rulesets: Path, tmp_path: Path
) -> None:
    """docs/postgresql.md's point-in-time recovery, as written: archiving on, a base
    backup, 100 events, a restore point, 50 more; recovered from the base backup and the
    archive, the database holds exactly the first 100, and goes on from the 100th."""
    marker = "**Point-in-time recovery.**"
    with pg_server.throwaway() as restored_into:  # the recovered server's work directory
        archive = restored_into.workdir / "wal-archive"
        archive.mkdir()
        if restored_into.as_postgres:  # the server archives as its owner
            shutil.chown(archive, "postgres")
        settings = after(marker, "ini").replace(DOCS_ARCHIVE, str(archive))
        for server in owned(pg_server.private_cluster(settings)):
            base = server.workdir / "base"
            env = {"PGHOST": "127.0.0.1", "PGPORT": str(server.port), "PGUSER": "postgres"}
            server.shell(
                'pg_basebackup --pgdata="$BASE" --wal-method=stream --checkpoint=fast', BASE=str(base), **env
            )
            crm = database(server, "crm")
            with Engine(rulesets, crm) as engine:
                for n in range(100):
                    engine.handle(deal(n))
                rows(crm, "SELECT pg_create_restore_point('before-import')")
                for n in range(100, 150):
                    engine.handle(deal(n))
            server.stop()  # archives what WAL is left: the restore point's segment and after
            recovery = after(marker, "sh").replace(DOCS_ARCHIVE, str(archive))
            restored_into.shell(recovery, BASE=str(base), RESTORED=str(restored_into.data))
            # The copy keeps the old server's port: the old server is gone, as the page says.
            recovered = crm
            deadline = time.monotonic() + 60
            while rows(server.url, "SELECT pg_is_in_recovery()") != [(False,)]:
                assert time.monotonic() < deadline, "not recovered in 60 s"
                time.sleep(0.1)
            decided = {event_id for (event_id,) in rows(recovered, "SELECT event_id FROM outcomes")}
            assert decided == {f"e{n}" for n in range(100)}
            continues_exactly(recovered, rulesets)
