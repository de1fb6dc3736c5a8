"""Failover on real PostgreSQL streaming replication: a primary and its standby from the
installed PostgreSQL (``pg_basebackup``, see tests/pg_server.py), salesbot on a
multi-host URL, the primary's postmaster killed mid-run and the standby promoted
(``pg_ctl promote``), as an HA manager would.

With synchronous replication nothing acknowledged is lost or decided twice; with
asynchronous replication what a failover loses is measured, exactly: the acknowledged
events the new primary lacks are the very events the old primary committed and never
sent (read from its data, started alone after the run). Each run prints its figures,
which docs/postgresql.md quotes."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pg_server
import pytest
from retrying_clients import Load, run_clients
from store_queries import rows
from test_observability import Served
from test_service import bearer

from factories import TEAM
from salesbot_core import Engine, StoreError, TransientStoreError
from salesbot_core.tokens import create_token

T = TypeVar("T")
ROOT = Path(__file__).parent.parent
USERS = ("anna", "bartek", "celina")
RULES = """
bots:
  - id: inbound
    entity: deal
    users: [anna, bartek, celina]
    strategy: round_robin
"""
CLIENTS = 8
#: Events in all (a multiple of the pool: a round robin that skipped or repeated anyone
#: shows as a spread above 0), and how many are acknowledged before the primary dies.
EVENTS = 600
KILL_AFTER = 200
#: Seconds between the primary's death and the standby's promotion: an HA manager takes
#: a moment to decide the primary is gone.
DETECTION = 1.0


def deal(n: int) -> dict[str, Any]:
    return {
        "id": f"e{n}",
        "kind": "created",
        "record": {"entity": "deal", "id": f"d{n}", "owners": ["bot:inbound"]},
    }


def multi_host(*clusters: pg_server.Cluster) -> str:
    """The libpq URL naming every cluster's server, taking the one that is a primary."""
    hosts = ",".join(f"127.0.0.1:{cluster.port}" for cluster in clusters)
    return f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write"


@pytest.fixture
def rulesets(write_rules: Callable[..., Path]) -> Path:
    return write_rules(**{"team.yaml": TEAM, "bots.yaml": RULES})


def owned(clusters: AbstractContextManager[T]) -> Iterator[T]:
    """Clusters of the test's own, for a fixture to yield from: skipped where PostgreSQL
    cannot be started (a failure under CI)."""
    try:
        with clusters as started:
            yield started
    except pg_server.NoServer as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must be able to start PostgreSQL: {exc}")
        pytest.skip(f"needs PostgreSQL server binaries: {exc}")


@pytest.fixture
def synchronous_pair() -> Iterator[tuple[pg_server.Cluster, pg_server.Cluster]]:
    yield from owned(pg_server.replicated(synchronous=True))


@pytest.fixture
def asynchronous_pair() -> Iterator[tuple[pg_server.Cluster, pg_server.Cluster]]:
    yield from owned(pg_server.replicated(synchronous=False))


def fail_over(primary: pg_server.Cluster, standby: pg_server.Cluster) -> None:
    """The primary's server dies (SIGKILL to its postmaster: no shutdown, no last WAL
    sent), then the standby is promoted."""
    primary.kill()
    time.sleep(DETECTION)
    standby.promote()


def fail_over_mid_run(primary: pg_server.Cluster, standby: pg_server.Cluster) -> Callable[[Load], None]:
    def meanwhile(load: Load) -> None:
        deadline = time.monotonic() + 300
        while load.count() < KILL_AFTER:
            assert time.monotonic() < deadline, f"only {load.count()} events acknowledged in 300 s"
            time.sleep(0.01)
        fail_over(primary, standby)

    return meanwhile


def replayed(primary: pg_server.Cluster, standby: pg_server.Cluster) -> None:
    """Wait until the standby has replayed all that the primary wrote so far."""
    ((written,),) = rows(primary.url, "SELECT pg_current_wal_lsn()::text")
    deadline = time.monotonic() + 30
    while rows(standby.url, "SELECT pg_last_wal_replay_lsn() >= ?::pg_lsn", (written,)) != [(True,)]:
        assert time.monotonic() < deadline, "the standby did not catch up in 30 s"
        time.sleep(0.05)


def stored_owners(url: str) -> dict[str, str]:
    """Each event the database decided, and who it went to."""
    query = 'SELECT o.event_id, a."user" FROM outcomes o JOIN assignments a ON a.seq = o.seq'
    return dict(rows(url, query))


def serve_through_a_failover(
    rulesets: Path, tmp_path: Path, primary: pg_server.Cluster, standby: pg_server.Cluster
) -> tuple[Load, dict[str, str], Served]:
    """8 clients post ``EVENTS`` events through ``salesbot serve --workers 2`` on the
    multi-host URL while the primary dies and the standby is promoted; returns what the
    clients saw, what the new primary holds, and the stopped service (for its log)."""
    url = multi_host(primary, standby)
    with Engine(rulesets, url) as engine:
        auth = bearer(create_token(engine.store, "default", "crm", ["events"]))
    server = Served(rulesets, url, tmp_path, "--workers", "2")
    try:
        server.wait_ready()
        load = run_clients(
            server.base,
            auth,
            [deal(n) for n in range(EVENTS)],
            CLIENTS,
            meanwhile=fail_over_mid_run(primary, standby),
        )
    finally:
        server.stop()
    return load, stored_owners(standby.url), server


def figures(mode: str, load: Load, lost: int, doubled: int) -> str:
    """The run's figures, as docs/postgresql.md quotes them. "answered from the log":
    events acknowledged as already decided although their client sent them once (the
    commit's answer was lost with the server, or the client's with the service)."""
    errors = ", ".join(f"{n} x {kind}" for kind, n in sorted(Counter(load.errors).items())) or "none"
    resolved = sum(ack.duplicate for ack in load.acknowledged.values())
    return (
        f"failover, {mode} replication: {EVENTS} events, {load.requests} requests, lost {lost}, "
        f"doubled {doubled}, failed {len(load.failed)}, p99 {load.p99():.2f} s; "
        f"answered from the log {resolved}; errors the clients retried: {errors}"
    )


def doubled(load: Load, stored: dict[str, str]) -> list[str]:
    """Events the database decided otherwise than a client was told: decided twice."""
    return [
        event_id
        for event_id, ack in load.acknowledged.items()
        if event_id in stored and ack.owners != (stored[event_id],)
    ]


def only_retryable(errors: list[str]) -> list[str]:
    """The errors that a client may not simply retry (not a 503 with Retry-After, nor a
    connection error)."""
    return [e for e in errors if not re.fullmatch(r"503 Retry-After: \d+ \(.*\)|\w*(Error|Timeout)", e)]


@pytest.mark.slow
def test_synchronous_replication_loses_and_doubles_nothing_through_a_failover(
    rulesets: Path, tmp_path: Path, synchronous_pair: tuple[pg_server.Cluster, pg_server.Cluster]
) -> None:
    primary, standby = synchronous_pair
    load, stored, server = serve_through_a_failover(rulesets, tmp_path, primary, standby)
    lost = set(load.acknowledged) - set(stored)
    twice = doubled(load, stored)
    print(figures("synchronous", load, len(lost), len(twice)))
    assert (load.failed, sorted(lost), twice) == ([], [], []), server.output()[-3000:]
    assert set(load.acknowledged) == set(stored) == {f"e{n}" for n in range(EVENTS)}
    assert Counter(stored.values()) == {user: EVENTS // 3 for user in USERS}  # spread 0
    assert only_retryable(load.errors) == []


@pytest.mark.slow
def test_asynchronous_replication_loses_exactly_what_the_old_primary_never_sent(
    rulesets: Path, tmp_path: Path, asynchronous_pair: tuple[pg_server.Cluster, pg_server.Cluster]
) -> None:
    primary, standby = asynchronous_pair
    load, stored, server = serve_through_a_failover(rulesets, tmp_path, primary, standby)
    lost = set(load.acknowledged) - set(stored)
    twice = doubled(load, stored)
    print(figures("asynchronous", load, len(lost), len(twice)))
    # The old primary, started alone once salesbot is stopped (never while it runs: it
    # would take it for the primary again), holds what it committed before it died.
    start_when_its_processes_are_gone(primary)
    committed_on_old = set(stored_owners(primary.url))
    assert sorted(lost) == sorted(committed_on_old - set(stored)), server.output()[-3000:]
    assert (load.failed, twice) == ([], [])
    assert set(load.acknowledged) == {f"e{n}" for n in range(EVENTS)}
    assert len(stored) == EVENTS - len(lost)
    counts = Counter(stored.values())
    assert max(counts.values()) - min(counts.values()) <= 1, counts  # the new primary's rotation is whole
    assert only_retryable(load.errors) == []


def start_when_its_processes_are_gone(cluster: pg_server.Cluster) -> None:
    """Start a killed server again: its backends outlive the postmaster for a moment, and
    until they are gone the server refuses to start (its shared memory is in use)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            cluster.start()
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.slow
def test_an_engine_on_a_multi_host_url_goes_on_after_a_failover_where_it_stopped(
    rulesets: Path, synchronous_pair: tuple[pg_server.Cluster, pg_server.Cluster]
) -> None:
    """In one process, the standby named first: the store finds the primary, and after the
    failover the promoted standby, and the rotation goes on from where it was."""
    primary, standby = synchronous_pair
    with Engine(rulesets, multi_host(standby, primary)) as engine:
        assert [engine.handle(deal(n)).owners_after for n in range(4)] == [
            ["anna"],
            ["bartek"],
            ["celina"],
            ["anna"],
        ]
        fail_over(primary, standby)
        assert [engine.handle(deal(n)).owners_after for n in range(4, 6)] == [["bartek"], ["celina"]]
        assert engine.handle(deal(3)).duplicate is True
    assert stored_owners(standby.url) == dict(zip([f"e{n}" for n in range(6)], [*USERS, *USERS], strict=True))


@pytest.mark.slow
def test_the_errors_of_a_failover_are_transient_and_the_others_are_not(
    rulesets: Path, asynchronous_pair: tuple[pg_server.Cluster, pg_server.Cluster]
) -> None:
    """Each error a client meets while the primary is switched, raised for real: a write
    on the standby, no primary among the hosts, the server ending the session, the
    connection refused. A read-only store may read from a standby, and a write there is
    its own bug, not a passing fault."""
    from salesbot_plugins.postgres_store import PostgresStore

    primary, standby = asynchronous_pair
    Engine(rulesets, primary.url).close()
    replayed(primary, standby)
    on_standby = PostgresStore(standby.url)  # the URL names the standby alone: it opens...
    with pytest.raises(TransientStoreError, match="cannot execute INSERT in a read-only transaction"):
        with on_standby.transaction() as tx:  # ...and its first write is retried, not refused
            tx.put_state("default", "inbound", {"last": "anna"})
    on_standby.close()
    reading = PostgresStore(standby.url, readonly=True)
    assert reading.get_record("default", "deal", "d1") is None  # reads work on a standby
    with pytest.raises(StoreError, match="read-only transaction") as refused:
        with reading.transaction() as tx:
            tx.put_state("default", "inbound", {"last": "anna"})
    assert not isinstance(refused.value, TransientStoreError)
    reading.close()

    store = PostgresStore(multi_host(standby, primary))
    assert store.get_record("default", "deal", "d1") is None  # a pooled session or two
    # Every session of the store ended by the server, as a shutdown ends them: 57P01.
    ended = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
    assert {ok for (ok,) in rows(primary.url, ended + " AND backend_type = 'client backend'")} == {True}
    with pytest.raises(TransientStoreError, match="terminating connection due to administrator command"):
        store.get_record("default", "deal", "d1")
    store.close()
    primary.kill()
    with pytest.raises(TransientStoreError, match="session is read-only") as no_primary:
        PostgresStore(multi_host(standby, primary))
    assert "Connection refused" in str(no_primary.value)


#: The server's answer that a COMMIT is done (a CommandComplete message tagged COMMIT).
COMMITTED = b"C\x00\x00\x00\x0bCOMMIT\x00"


class Relay:
    """A TCP proxy on loopback in front of a PostgreSQL server, as a service address (a
    virtual IP, a DNS name, a connection pooler) is. ``port``: the server new connections
    go to; it may be changed, as an address moves to another server. Once ``armed``, it
    lets the next COMMIT reach the server, waits until the server has done it, then cuts
    the connection instead of passing the answer on: the client cannot know the outcome."""

    def __init__(self, url: str):
        """In front of the server of ``url``; ``self.url`` is ``url`` through the relay."""
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 5432
        self._listener = socket.create_server(("127.0.0.1", 0))
        credentials = parts.netloc.rpartition("@")[0]
        here = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self.url = urlunsplit(parts._replace(netloc=f"{credentials}@{here}" if credentials else here))
        self.armed = threading.Event()
        self.cut = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection((self.host, self.port))
            committing = threading.Event()
            threading.Thread(target=self._up, args=(client, server, committing), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, committing), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, committing: threading.Event) -> None:
        with suppress(OSError):
            while data := client.recv(65536):
                if self.armed.is_set() and b"COMMIT" in data:
                    self.armed.clear()
                    committing.set()
                server.sendall(data)
        _close(client, server)

    def _down(self, server: socket.socket, client: socket.socket, committing: threading.Event) -> None:
        answer = b""
        with suppress(OSError):
            while data := server.recv(65536):
                if committing.is_set():
                    answer += data  # held back, until the COMMIT is answered
                    if COMMITTED in answer:
                        self.cut += 1
                        break
                    continue
                client.sendall(data)
        _close(client, server)

    def close(self) -> None:
        self._listener.close()


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def test_a_commit_whose_answer_is_lost_is_found_by_its_event_id_not_decided_again(
    rulesets: Path, postgres_url: str
) -> None:
    """The server commits an event and the connection breaks before the answer arrives
    (a primary killed at that instant): the engine runs the event again, finds it by its
    id and answers its first outcome; the rotation moved once."""
    proxy = Relay(postgres_url)
    try:
        with Engine(rulesets, proxy.url) as engine:
            assert engine.handle(deal(0)).owners_after == ["anna"]
            proxy.armed.set()
            again = engine.handle(deal(1))
            assert (proxy.cut, again.owners_after, again.duplicate) == (1, ["bartek"], True)
            assert engine.handle(deal(2)).owners_after == ["celina"]
    finally:
        proxy.close()
    assert stored_owners(postgres_url) == {"e0": "anna", "e1": "bartek", "e2": "celina"}


def test_docs_set_replication_up_with_the_very_commands_and_settings_the_tests_run() -> None:
    page = (ROOT / "docs/postgresql.md").read_text(encoding="utf-8")
    section = page[
        page.index("## Failover: a primary and a standby") : page.index("## Backup and restore drill")
    ]
    blocks = re.findall(r"```(?:sh|ini)\n(.*?)```", section, re.DOTALL)
    assert blocks == [pg_server.BASEBACKUP, pg_server.STANDBY, pg_server.SYNCHRONOUS, pg_server.PROMOTE]


@pytest.mark.slow
def test_a_pool_on_a_standby_is_replaced_when_a_write_finds_it_read_only(
    rulesets: Path, asynchronous_pair: tuple[pg_server.Cluster, pg_server.Cluster]
) -> None:
    """The store's address led to the standby, then moves to the primary (a URL without
    ``target_session_attrs``, behind an address that moves): the first write fails as
    read-only, every pooled session is replaced, and the retry runs on the primary."""
    primary, standby = asynchronous_pair
    Engine(rulesets, primary.url).close()
    replayed(primary, standby)
    address = Relay(standby.url)
    try:
        with Engine(rulesets, address.url) as engine:  # opens on the standby: reading is enough
            assert engine.store.get_record("default", "deal", "d0") is None  # a pooled session there
            address.port = primary.port
            assert engine.handle(deal(0)).owners_after == ["anna"]
    finally:
        address.close()
    assert stored_owners(primary.url) == {"e0": "anna"}
