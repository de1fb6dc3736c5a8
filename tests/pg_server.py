"""A real PostgreSQL server for the tests: the one CI started, or a throwaway cluster.

CI (``.ci/run``) starts a server and sets ``SALESBOT_TEST_POSTGRES_URL``. Elsewhere the
tests start their own cluster from the installed PostgreSQL binaries (as the ``postgres``
user when run as root, since ``initdb`` refuses root), on a free loopback port, and stop
it at the end of the session, or as soon as the test process is gone (a watchdog process
does: a killed test run leaves no server running). Only when neither is possible do
PostgreSQL tests skip, and they say why; under CI they fail instead.

The failover and backup tests start clusters of their own the same way: a primary and a
streaming standby (``replicated``), made with the very commands and settings that
docs/postgresql.md shows (``BASEBACKUP``, ``STANDBY``, ``SYNCHRONOUS``, ``PROMOTE``).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

URL_ENV = "SALESBOT_TEST_POSTGRES_URL"


class NoServer(Exception):
    """No PostgreSQL server can be had here; the message says why."""


def _bindir() -> Path:
    for candidate in [shutil.which("pg_config"), *sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_config"))]:
        if candidate:
            out = subprocess.run([candidate, "--bindir"], capture_output=True, text=True)
            if out.returncode == 0 and (Path(out.stdout.strip()) / "initdb").exists():
                return Path(out.stdout.strip())
    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")):
        return Path(initdb).parent
    raise NoServer(
        f"no PostgreSQL server binaries (initdb) found: install Debian's postgresql or set {URL_ENV}"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    """A PostgreSQL cluster this process started and owns: it can restart it."""

    url: str
    bindir: Path
    data: Path
    workdir: Path
    as_postgres: list[str]

    @property
    def port(self) -> int:
        """The loopback port the server listens on."""
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def pg_ctl_args(self, *args: str) -> list[str]:
        """The command line of ``pg_ctl ARGS`` on this cluster, as its owner."""
        return [*self.as_postgres, str(self.bindir / "pg_ctl"), "-D", str(self.data), *args]

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.pg_ctl_args(*args), capture_output=True, text=True)

    def shell(self, script: str, **env: str) -> None:
        """Run ``script`` with bash as the cluster's owner, the server's programs on the
        PATH and ``env`` in the environment: a command as docs/postgresql.md shows it."""
        done = subprocess.run(
            [*self.as_postgres, "env", f"PATH={self.bindir}:{os.environ['PATH']}"]
            + [f"{name}={value}" for name, value in env.items()]
            + ["bash", "-e", "-c", script],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{script.split()[0]} failed: {done.stderr.strip() or done.stdout.strip()}")

    def configure(self, settings: str) -> None:
        """Append ``settings`` to the cluster's own configuration (a restart keeps them;
        a later line wins over an earlier one)."""
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            conf.write(settings)

    def start(self) -> None:
        """Start the server; returns once it accepts connections."""
        self._run("start")

    def stop(self) -> None:
        """Stop the server as an operator would (``-m fast``)."""
        self._run("-m", "fast", "stop")

    def _run(self, *args: str) -> None:
        done = self.pg_ctl("-l", str(self.workdir / "log"), "-w", *args)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl {args[-1]} failed: {done.stderr.strip() or done.stdout.strip()}")

    def restart(self) -> None:
        """Restart the server as an operator would (``-m fast``: sessions are ended at
        once, with AdminShutdown); returns once it accepts connections again."""
        self._run("-m", "fast", "restart")

    def promote(self) -> None:
        """Promote a standby to primary as docs/postgresql.md says (``PROMOTE``); returns
        once it is one."""
        self.shell(PROMOTE, STANDBY_DATA=str(self.data))

    def postmaster(self) -> int:
        """The process id of the running server's postmaster."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def kill(self) -> None:
        """Kill the server's postmaster (SIGKILL: no shutdown, nothing more sent to a
        standby); returns once it is gone, its port closed. Its backends end on their own
        a moment later."""
        pid = self.postmaster()
        os.kill(pid, signal.SIGKILL)
        while running(pid):
            time.sleep(0.01)


def running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie no longer does)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@contextmanager
def throwaway() -> Iterator[Cluster]:
    """A cluster-to-be: a work directory the server's owner can reach, a free port, and a
    watchdog that stops whatever server runs there and removes the directory at the end,
    also when the test process is killed (see ``watch``). The data directory is the
    caller's to make, and the server its to start."""
    bindir = _bindir()
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            raise NoServer("running as root without runuser: cannot start PostgreSQL as another user")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    # Not under pytest's tmp_path: the postgres user must be able to reach it.
    workdir = Path(tempfile.mkdtemp(prefix="salesbot-pg-"))
    if as_postgres:
        shutil.chown(workdir, "postgres")
    data, port = workdir / "data", _free_port()
    cluster = Cluster(f"postgresql://postgres@127.0.0.1:{port}/postgres", bindir, data, workdir, as_postgres)
    watchdog = subprocess.Popen(
        [sys.executable, __file__, str(workdir), *cluster.pg_ctl_args("-m", "immediate", "stop")],
        stdin=subprocess.PIPE,
        # Its own session: a Ctrl-C that stops the test run must not stop it first.
        start_new_session=True,
    )
    try:
        yield cluster
    finally:
        assert watchdog.stdin is not None
        watchdog.stdin.close()  # the watchdog stops the server and removes its files
        watchdog.wait()


def _listen(cluster: Cluster) -> str:
    """The settings that make a cluster's server listen on its own port, on loopback only."""
    return (
        f"port = {cluster.port}\nunix_socket_directories = '{cluster.workdir}'\n"
        "listen_addresses = '127.0.0.1'\n"
    )


def _start(cluster: Cluster) -> None:
    start = cluster.pg_ctl("-l", str(cluster.workdir / "log"), "-w", "start")
    if start.returncode != 0:
        raise NoServer(f"PostgreSQL did not start: {start.stderr.strip() or start.stdout.strip()}")


#: ``initdb``'s options: local connections trusted (a throwaway cluster on loopback).
INITDB = ("--auth=trust", "-U", "postgres")


@contextmanager
def private_cluster(settings: str = "") -> Iterator[Cluster]:
    """Start a throwaway cluster of our own (even when CI provides a server: a test that
    restarts the server must not restart everyone's), stopped and removed at the end, also
    when the test process is killed (see ``watch``). ``settings``: more lines of its
    configuration."""
    with throwaway() as cluster:
        init = subprocess.run(
            [*cluster.as_postgres, str(cluster.bindir / "initdb"), "-D", str(cluster.data), *INITDB],
            capture_output=True,
            text=True,
        )
        if init.returncode != 0:
            raise NoServer(f"initdb failed: {init.stderr.strip()}")
        # The options go into the cluster's own configuration, so a restart keeps them. A
        # throwaway cluster need not survive the machine crashing: without fsync, creating
        # a database per test takes a tenth of the time (as in .ci/run's cluster). Killing
        # a server (as the failover tests do) loses nothing without fsync: what it wrote
        # is in the kernel's page cache.
        cluster.configure(_listen(cluster) + "fsync = off\nfull_page_writes = off\n" + settings)
        _start(cluster)
        yield cluster


@contextmanager
def standby_of(primary: Cluster, settings: str = "") -> Iterator[Cluster]:
    """A throwaway streaming standby of ``primary``, copied by the command
    docs/postgresql.md shows (``BASEBACKUP``, run as written), then ``settings`` added to
    its configuration; started, and stopped and removed at the end as ``private_cluster``
    is."""
    with throwaway() as standby:
        where = {"PRIMARY_HOST": "127.0.0.1", "PRIMARY_PORT": str(primary.port)}
        standby.shell(BASEBACKUP, STANDBY_DATA=str(standby.data), **where)
        # The copy brings the primary's own settings (its port among them): ours follow.
        standby.configure(_listen(standby) + settings)
        _start(standby)
        yield standby


#: How a standby copies its primary (docs/postgresql.md quotes it, and ``standby_of``
#: runs it as written): streaming the WAL written meanwhile, and writing the recovery
#: settings (``primary_conninfo``, ``standby.signal``) that make the copy a standby.
BASEBACKUP = (
    'pg_basebackup --pgdata="$STANDBY_DATA" --host="$PRIMARY_HOST" --port="$PRIMARY_PORT" \\\n'
    "    --username=postgres --wal-method=stream --write-recovery-conf --checkpoint=fast\n"
)
#: How the standby becomes the primary (docs/postgresql.md quotes it): it replays what
#: WAL it has, then takes writes; ``--wait`` returns once it does.
PROMOTE = 'pg_ctl promote --pgdata="$STANDBY_DATA" --wait\n'
#: The primary's settings for synchronous replication (docs/postgresql.md quotes them):
#: a commit is acknowledged once the standby named ``standby1`` has it on disk.
SYNCHRONOUS = "synchronous_standby_names = 'standby1'\nsynchronous_commit = on\n"
#: The standby's own settings: its name (its WAL receiver connects under it, and the
#: primary's ``synchronous_standby_names`` names it), and no standby of its own to wait
#: for once promoted (the copy brought the primary's ``synchronous_standby_names``; kept,
#: the promoted server would wait forever on every commit).
STANDBY = "cluster_name = 'standby1'\nsynchronous_standby_names = ''\n"


@contextmanager
def replicated(synchronous: bool) -> Iterator[tuple[Cluster, Cluster]]:
    """A throwaway primary and its streaming standby, replicating synchronously or not."""
    import psycopg

    with private_cluster(SYNCHRONOUS if synchronous else "") as primary:
        with standby_of(primary, STANDBY) as standby:
            # Yielded once the primary streams to the standby as asked (a standby that
            # is still catching up is counted asynchronous for a moment).
            wanted = ("streaming", "sync" if synchronous else "async")
            query = "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = %s"
            with psycopg.connect(primary.url, autocommit=True) as conn:
                for _ in range(300):
                    if conn.execute(query, ("standby1",)).fetchone() == wanted:
                        break
                    time.sleep(0.1)
                else:
                    raise RuntimeError(f"the standby is not {wanted} after 30 s")
            yield primary, standby


def watch(workdir: str, *stop: str) -> None:
    """The watchdog of a private cluster, run as ``python pg_server.py WORKDIR STOP...``:
    wait until the test process closes our stdin, at the end of the cluster's block or by
    dying (the kernel closes the pipe of a process killed with SIGKILL, which runs no
    ``finally``), then stop the server (``pg_ctl`` started it as a daemon: it outlives
    the test process otherwise) and remove its files."""
    sys.stdin.buffer.read()
    subprocess.run(stop, capture_output=True)
    shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def server() -> Iterator[str]:
    """Yield the admin URL of a running server: CI's, or a throwaway one."""
    if os.environ.get(URL_ENV):
        yield os.environ[URL_ENV]
        return
    with private_cluster() as cluster:
        yield cluster.url


def database_factory(admin_url: str) -> Callable[[], Iterator[str]]:
    """A generator function yielding the URL of a new, empty database, dropped afterwards."""
    import psycopg

    def fresh() -> Iterator[str]:
        name = f"salesbot_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield admin_url.rsplit("/", 1)[0] + f"/{name}"
        finally:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return fresh


if __name__ == "__main__":
    watch(*sys.argv[1:])
