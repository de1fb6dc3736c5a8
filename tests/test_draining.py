"""Readiness and the drain of ``salesbot serve`` (docs/operations.md): ``/readyz`` is 503
while the store is unreachable and while a worker drains; on SIGTERM a worker refuses new
requests, finishes the one in flight, its tick batch and its webhook send, and exits."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pg_server
import pytest
from fastapi.testclient import TestClient
from store_queries import rows
from test_service import DEAL_EVENT, bearer, free_port, is_problem, rules, tokens
from test_service_failures import LOCK_HOLDER
from test_sla import T0, created, sla_rules  # noqa: F401  (a fixture)
from test_webhooks import Receiver, receiver  # noqa: F401  (a fixture)

from salesbot_core import Engine
from salesbot_core.cli.serve import EXIT_GRACE
from salesbot_core.http.app import create_app
from salesbot_core.http.common import RETRY_AFTER_SECONDS
from salesbot_core.http.delivery import NOT_SENT, Deliverer, add_webhook
from salesbot_core.http.status import READY_TIMEOUT

EVENTS = "/v1/accounts/default/events"


def not_ready(response: httpx.Response, kind: str = "not-ready") -> str:
    """The detail of a 503 problem of ``kind`` with ``Retry-After``."""
    problem = is_problem(response, 503)
    assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert problem["type"] == f"urn:salesbot:problem:{kind}"
    return str(problem["detail"])


def test_readyz_is_503_while_the_sqlite_file_is_gone_from_its_path(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    """The open connection would go on writing the moved file, where nothing will find
    it: not ready until the file is back at its path."""
    folder = tmp_path / "data"
    folder.mkdir()
    db = folder / "salesbot.db"
    with TestClient(create_app(rulesets=rules(write_rules), db=str(db))) as client:
        assert client.get("/readyz").json() == {"status": "ready"}
        folder.rename(tmp_path / "moved")
        detail = not_ready(client.get("/readyz"))
        assert detail.startswith(
            f"the store does not answer: SQLite store '{db}': the file cannot be reached"
        )
        (tmp_path / "moved").rename(folder)
        assert client.get("/readyz").json() == {"status": "ready"}
        shutil.copy(db, tmp_path / "copy.db")
        (tmp_path / "copy.db").replace(db)  # another file at the same path
        detail = not_ready(client.get("/readyz"))
        assert "the path names another file than the one opened" in detail


@pytest.mark.slow
def test_readyz_is_503_while_postgresql_is_stopped_and_200_once_it_is_back(
    write_rules: Callable[..., Path], own_cluster: pg_server.Cluster
) -> None:
    """A stopped server: the pool waits 30 s for a connection, readyz only
    ``READY_TIMEOUT``, and each call waits for the same one check."""
    with TestClient(create_app(rulesets=rules(write_rules), db=own_cluster.url)) as client:
        assert client.get("/readyz").json() == {"status": "ready"}
        own_cluster.stop()
        details = {not_ready(client.get("/readyz")) for _ in range(3)}
        assert details <= {
            f"the store did not answer within {READY_TIMEOUT:g} s",
            # The first check may still see the connection the server ended.
            "the store does not answer: PostgreSQL store "
            f"'{own_cluster.url}': terminating connection due to administrator command",
        }, details
        own_cluster.start()
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "readyz stayed 503 with the server back"
            time.sleep(0.5)


def test_a_draining_worker_answers_503_but_to_healthz(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    db = str(tmp_path / "salesbot.db")
    folder = rules(write_rules)
    with Engine(folder, db):
        pass
    auth = bearer(tokens(db)["all"])
    with TestClient(create_app(rulesets=folder, db=db)) as client:
        assert client.post(EVENTS, json=DEAL_EVENT, headers=auth).status_code == 200
        client.app.state.drain.begin()  # as SIGTERM does
        assert (
            not_ready(client.get("/readyz"), "draining")
            == "this worker is shutting down; send the request again"
        )
        refused = client.post(EVENTS, json={**DEAL_EVENT, "id": "e2"}, headers=auth)
        not_ready(refused, "draining")
        assert refused.headers["connection"] == "close"
        assert client.get("/healthz").json() == {"status": "ok"}
    assert rows(db, "SELECT event_id FROM outcomes") == [("e1",)]  # e2 was not processed


def test_a_stopped_tick_ends_after_its_batch_and_leaves_the_rest_due(sla_rules: Path, tmp_path: Path) -> None:  # noqa: F811
    with Engine(sla_rules, tmp_path / "s.db") as engine:
        for n in range(1, 6):
            engine.handle(created(n))
        moved = engine.tick(T0 + timedelta(hours=3), batch_size=2, stop=lambda: True)
        assert len(moved) == 2 and len(engine.store.due_items("default")) == 5  # moved ones are due again
        assert len(engine.tick(T0 + timedelta(hours=3), batch_size=2)) == 3


def test_a_stopped_delivery_worker_sends_one_and_hands_back_the_rest(
    write_rules: Callable[..., Path],
    tmp_path: Path,
    receiver: Receiver,  # noqa: F811
) -> None:
    """The stop comes while the first of a batch of 3 is sent: it is delivered, the other
    2 are pending again, due at once, and the next worker sends them."""

    class StopDuringFirstSend(threading.Event):
        def is_set(self) -> bool:
            return bool(receiver.received)

    db = str(tmp_path / "salesbot.db")
    with Engine(rules(write_rules), db) as engine:
        add_webhook(engine.store, "default", receiver.url, ["assignment"])
        for n in range(1, 4):
            engine.handle({**DEAL_EVENT, "id": f"e{n}", "record": {**DEAL_EVENT["record"], "id": f"d{n}"}})
        deliverer = Deliverer(engine.store)
        try:
            assert deliverer.run_once(StopDuringFirstSend()) == 3
            states = rows(db, "SELECT status, attempts, last_error FROM deliveries ORDER BY seq")
            assert states == [("delivered", 1, None), ("pending", 1, NOT_SENT), ("pending", 1, NOT_SENT)]
            assert len(receiver.received) == 1
            assert deliverer.run_once() == 2  # due at once, not after the lease
        finally:
            deliverer.close()
    assert rows(db, "SELECT status, attempts FROM deliveries ORDER BY seq") == [
        ("delivered", 1),
        ("delivered", 2),
        ("delivered", 2),
    ]
    assert len(set(receiver.ids())) == 3


class Serve:
    """A real ``salesbot serve`` with its log in a file, signalled by the test: ``args``
    are its options, with ``--port`` added (a free port) unless they name one."""

    def __init__(self, cwd: Path, *args: str):
        named = "--port" in args
        self.port = int(args[args.index("--port") + 1]) if named else free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"serve-{self.port}-{time.monotonic_ns()}.log"
        options = list(args) if named else ["--port", str(self.port), *args]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "salesbot_core", "serve", *options], cwd=cwd, stdout=out, stderr=out
            )

    def wait_ready(self, workers: int = 1, timeout: float = 120) -> None:
        """Until every worker started and one answers ``/readyz`` with 200."""
        self.wait_for_log("Application startup complete.", workers, timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.process.poll() is None and time.monotonic() < deadline, self.output()
            time.sleep(0.1)

    def wait_for_log(self, text: str, count: int = 1, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.output().count(text) < count:
            assert time.monotonic() < deadline, f"{text!r} not logged: {self.output()}"
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.mark.slow
def test_sigterm_finishes_the_request_in_flight_refuses_new_ones_and_exits_0(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    """A request held in the store (another process holds SQLite's write lock) is in
    flight when serve gets SIGTERM: new connections are refused or answered 503, and once
    the lock is gone the held request ends with 200 and serve exits with status 0 within
    its drain timeout."""
    folder = rules(write_rules)
    path = tmp_path / "salesbot.db"
    with Engine(folder, str(path)):
        pass
    auth = bearer(tokens(str(path))["all"])
    drain_timeout = 60
    options = ["-r", str(folder), "--db", str(path), "--log-format", "text", "--workers", "2"]
    server = Serve(tmp_path, *options, "--no-deliver", "--drain-timeout", str(drain_timeout))
    holder: subprocess.Popen[str] | None = None
    try:
        server.wait_ready(workers=2)
        holder = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(
                httpx.post, f"{server.base}{EVENTS}", json=DEAL_EVENT, headers=auth, timeout=120
            )
            # The held request holds its worker's SQLite connection: that worker's readyz
            # waits for it, past its timeout. Either worker may answer: ask until one does.
            while "did not answer" not in httpx.get(f"{server.base}/readyz", timeout=10).text:
                assert not held.done(), held.result().text
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            server.wait_for_log("draining: new requests and /readyz answer 503", count=2)
            try:
                late = httpx.get(f"{server.base}/readyz", timeout=10)
            except (httpx.ConnectError, httpx.ReadError):
                # Refused, or reset: a connection the kernel queued on the listening socket
                # the supervisor then closed is reset before any worker read a byte of it.
                pass
            else:
                not_ready(late, "draining")
            assert not held.done()
            holder.communicate("", timeout=30)  # the lock is gone: the held request goes on
            answer = held.result(timeout=60)
        assert answer.status_code == 200, answer.text
        assert (answer.json()["duplicate"], answer.json()["owners_after"]) == (False, ["anna"])
        assert server.process.wait(drain_timeout + EXIT_GRACE - (time.monotonic() - signalled)) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.base}/healthz", timeout=5)
    finally:
        if holder is not None and holder.poll() is None:
            holder.communicate("", timeout=30)
        server.kill()
    assert rows(str(path), "SELECT event_id FROM outcomes") == [("e1",)]
    assert "did not drain" not in server.output() and "died" not in server.output()


@pytest.mark.slow
def test_a_worker_still_busy_after_the_drain_timeout_is_killed_and_serve_exits_1(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    """The held request outlasts ``--drain-timeout 1`` (the lock stays): it is answered
    503 (send it again), and the supervisor kills its worker (stuck in the store) after
    the timeout and ``EXIT_GRACE``, says so, and exits with 1."""
    folder = rules(write_rules)
    path = tmp_path / "salesbot.db"
    with Engine(folder, str(path)):
        pass
    auth = bearer(tokens(str(path))["all"])
    options = ["-r", str(folder), "--db", str(path), "--log-format", "text", "--no-deliver"]
    server = Serve(tmp_path, *options, "--drain-timeout", "1")
    holder: subprocess.Popen[str] | None = None
    try:
        server.wait_ready()
        holder = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(
                httpx.post, f"{server.base}{EVENTS}", json=DEAL_EVENT, headers=auth, timeout=120
            )
            while "did not answer" not in httpx.get(f"{server.base}/readyz", timeout=10).text:
                assert not held.done(), held.result().text
            server.process.send_signal(signal.SIGTERM)
            assert server.process.wait(60) == 1
            cut = not_ready(held.result(timeout=60), "draining")
            assert cut == "this worker stopped before the request ended (--drain-timeout 1 s); send it again"
    finally:
        if holder is not None and holder.poll() is None:
            holder.communicate("", timeout=30)
        server.kill()
    output = server.output()
    assert "did not drain within 1 s; killing it" in output
    assert "error: 1 worker process(es) did not drain within --drain-timeout 1 s: killed" in output
    assert rows(str(path), "SELECT COUNT(*) FROM outcomes") == [(0,)]  # nothing half-written
