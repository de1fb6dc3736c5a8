"""A real PostgreSQL server for the tests: the one CI started, or a throwaway cluster.

CI (``.ci/run``) starts a server and sets ``SALESBOT_TEST_POSTGRES_URL``. Elsewhere the
tests start their own cluster from the installed PostgreSQL binaries (as the ``postgres``
user when run as root, since ``initdb`` refuses root), on a free loopback port, and stop
it at the end of the session, or as soon as the test process is gone (a watchdog process
does: a killed test run leaves no server running). Only when neither is possible do
PostgreSQL tests skip, and they say why; under CI they fail instead.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
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

    def pg_ctl_args(self, *args: str) -> list[str]:
        """The command line of ``pg_ctl ARGS`` on this cluster, as its owner."""
        return [*self.as_postgres, str(self.bindir / "pg_ctl"), "-D", str(self.data), *args]

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.pg_ctl_args(*args), capture_output=True, text=True)

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


@contextmanager
def private_cluster() -> Iterator[Cluster]:
    """Start a throwaway cluster of our own (even when CI provides a server: a test that
    restarts the server must not restart everyone's), stopped and removed at the end, also
    when the test process is killed (see ``watch``)."""
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
        init = subprocess.run(
            [*as_postgres, str(bindir / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres"],
            capture_output=True,
            text=True,
        )
        if init.returncode != 0:
            raise NoServer(f"initdb failed: {init.stderr.strip()}")
        # The options go into the cluster's own configuration, so a restart keeps them. A
        # throwaway cluster need not survive the machine crashing: without fsync, creating
        # a database per test takes a tenth of the time (as in .ci/run's cluster).
        with (data / "postgresql.auto.conf").open("a") as conf:
            conf.write(
                f"port = {port}\nunix_socket_directories = '{workdir}'\nlisten_addresses = '127.0.0.1'\n"
            )
            conf.write("fsync = off\nfull_page_writes = off\n")
        start = cluster.pg_ctl("-l", str(workdir / "log"), "-w", "start")
        if start.returncode != 0:
            raise NoServer(f"PostgreSQL did not start: {start.stderr.strip() or start.stdout.strip()}")
        yield cluster
    finally:
        assert watchdog.stdin is not None
        watchdog.stdin.close()  # the watchdog stops the server and removes its files
        watchdog.wait()


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
