"""A rolling restart with no failed request (docs/operations.md, "Running in production"):
2 replicas of ``salesbot serve`` on one PostgreSQL database behind Debian's HAProxy, with
the configuration and the command line the page shows, under 8 clients posting events
over kept-alive connections. And the page's alerting rules: valid for ``promtool``, on
metrics ``/metrics`` serves."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from store_queries import rows
from test_draining import EVENTS, Serve
from test_observability import drive, samples
from test_service import bearer, free_port, rules, tokens

from factories import TEAM
from salesbot_core import Engine
from salesbot_core.cli.serve import EXIT_GRACE
from salesbot_core.engine import open_store
from salesbot_core.http.app import create_app
from salesbot_core.registry import make_plugin_manager
from salesbot_core.tokens import create_token

PAGE = Path(__file__).parent.parent / "docs" / "operations.md"
CLIENTS = 8
USERS = ["anna", "bartek", "celina"]
BOT = """
bots:
  - id: inbound
    entity: deal
    users: [anna, bartek, celina]
    strategy: round_robin
"""
#: The addresses in the page's blocks, replaced by free ports here.
FRONTEND, REPLICAS = "127.0.0.1:8000", ("127.0.0.1:8001", "127.0.0.1:8002")
#: A replica's access log line of an event it answered 503 (JSON log lines escape the quote).
REFUSED = re.compile(r'POST /v1/accounts/default/events HTTP/1.1\\?" 503')


def page_block(language: str, after: str = "") -> str:
    """The first ``language`` block of docs/operations.md after the text ``after``."""
    text = PAGE.read_text(encoding="utf-8")
    found = re.search(rf"```{language}\n(.*?)```", text[text.index(after) :], re.DOTALL)
    assert found is not None, f"no {language} block in {PAGE.name}"
    return found.group(1)


def replica_options(port: int, db: str) -> list[str]:
    """The options of the page's ``salesbot serve`` command, on ``port`` and ``db``."""
    (line,) = page_block("sh", "## Replicas behind a load balancer").strip().splitlines()
    words = shlex.split(line)
    shown = REPLICAS[0].split(":")[1]
    assert words[:2] == ["salesbot", "serve"] and shown in words and "$SALESBOT_DB" in words, line
    return [{shown: str(port), "$SALESBOT_DB": db}.get(word, word) for word in words[2:]]


class Clients:
    """``CLIENTS`` threads, each posting new events (one record each) over one kept-alive
    connection until stopped, keeping every answer."""

    def __init__(self, base: str, auth: dict[str, str]):
        self.stop = threading.Event()
        self.answered: list[tuple[str, int, Any]] = []  # event id, status, body
        self.failed: list[tuple[str, str]] = []
        self.latencies: list[float] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._post, args=(n, base, auth), daemon=True) for n in range(CLIENTS)
        ]
        for thread in self._threads:
            thread.start()

    def _post(self, n: int, base: str, auth: dict[str, str]) -> None:
        with httpx.Client(base_url=base, headers=auth, timeout=120) as client:
            i = 0
            while not self.stop.is_set():
                event_id = f"c{n}-{i}"
                event = {"id": event_id, "kind": "created", "record": {"entity": "deal", "id": event_id}}
                event["record"]["owners"] = ["bot:inbound"]
                began = time.monotonic()
                try:
                    answer = client.post(EVENTS, json=event)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.failed.append((event_id, f"{type(exc).__name__}: {exc}"))
                else:
                    with self._lock:
                        self.latencies.append(time.monotonic() - began)
                        self.answered.append((event_id, answer.status_code, answer.json()))
                        if answer.status_code != 200:
                            self.failed.append((event_id, f"{answer.status_code}: {answer.text[:300]}"))
                i += 1

    def count(self) -> int:
        with self._lock:
            return len(self.answered) + len(self.failed)

    def finish(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(180)


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """Start Debian's HAProxy on a configuration text; stopped at the end."""
    binary = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI must provide haproxy (.ci/run installs it)")
        pytest.skip("needs HAProxy: apt-get install haproxy")
    started: list[subprocess.Popen[bytes]] = []

    def start(config: str) -> subprocess.Popen[bytes]:
        path = tmp_path / "haproxy.cfg"
        path.write_text(config, encoding="utf-8")
        checked = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        log = (tmp_path / "haproxy.log").open("wb")
        started.append(subprocess.Popen([binary, "-db", "-f", str(path)], stdout=log, stderr=log))
        return started[-1]

    yield start
    for process in started:
        process.terminate()
        process.wait(30)


def restart(replica: Serve, cwd: Path, options: list[str], drain_timeout: float) -> Serve:
    """SIGTERM ``replica``, wait for it to exit with status 0, start it again on its
    port, and return once the load balancer sends it events again."""
    replica.process.send_signal(signal.SIGTERM)
    assert replica.process.wait(drain_timeout + EXIT_GRACE) == 0, replica.output()
    assert "did not drain" not in replica.output()
    again = Serve(cwd, *options)
    again.wait_ready()
    again.wait_for_log("POST /v1/accounts/default/events")
    return again


@pytest.mark.slow
def test_a_rolling_restart_behind_haproxy_fails_no_request_and_decides_each_event_once(
    write_rules: Callable[..., Path],
    postgres_url: str,
    tmp_path: Path,
    haproxy: Callable[[str], subprocess.Popen[bytes]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = write_rules(**{"team.yaml": TEAM, "bots.yaml": BOT})
    assert folder == tmp_path / "rulesets"  # the page's --rulesets, from the replicas' folder
    with Engine(folder, postgres_url):
        pass
    store = open_store(make_plugin_manager(), postgres_url)
    try:
        auth = bearer(create_token(store, "default", "load", ["events"]))
    finally:
        store.close()
    ports = [free_port() for _ in REPLICAS]
    options = [replica_options(port, postgres_url) for port in ports]
    drain_timeout = float(options[0][options[0].index("--drain-timeout") + 1])
    replicas = [Serve(tmp_path, *opts) for opts in options]
    front = free_port()
    config = page_block("haproxy").replace(FRONTEND, f"127.0.0.1:{front}")
    for address, port in zip(REPLICAS, ports, strict=True):
        config = config.replace(address, f"127.0.0.1:{port}")
    clients: Clients | None = None
    stopped: list[Serve] = []
    try:
        for replica in replicas:
            replica.wait_ready()
        balancer = haproxy(config)
        base = f"http://127.0.0.1:{front}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert balancer.poll() is None and time.monotonic() < deadline, "HAProxy did not start"
            time.sleep(0.2)
        clients = Clients(base, auth)
        for replica in replicas:
            replica.wait_for_log("POST /v1/accounts/default/events")  # both take load
        for n, replica in enumerate(list(replicas)):
            replicas[n] = restart(replica, tmp_path, options[n], drain_timeout)
            stopped.append(replica)
        before = clients.count()
        while clients.count() < before + 200:  # the restarted replicas carry load
            time.sleep(0.1)
        clients.finish()
    finally:
        if clients is not None:
            clients.finish()
        for replica in replicas:
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGTERM)
                replica.process.wait(drain_timeout + EXIT_GRACE)
    acknowledged = {event_id for event_id, status, _ in clients.answered if status == 200}
    decided = dict(
        rows(
            postgres_url,
            "SELECT o.event_id, COUNT(a.seq) FROM outcomes o LEFT JOIN assignments a ON a.seq = o.seq "
            "WHERE o.account = 'default' GROUP BY o.event_id",
        )
    )
    lost = len(acknowledged - set(decided))
    doubled = sum(1 for count in decided.values() if count != 1)
    per_user = Counter(dict(rows(postgres_url, 'SELECT "user", COUNT(*) FROM assignments GROUP BY "user"')))
    total = sum(per_user.values())
    # How far the rotation is from exact: over N assignments its counts differ by at most
    # 1 (by 0 when N is a multiple of 3).
    spread = max(per_user.values()) - min(per_user.values()) - (1 if total % len(USERS) else 0)
    latencies = sorted(clients.latencies)
    p99 = latencies[int(len(latencies) * 0.99)]
    requests = len(clients.answered) + len(clients.failed)
    # What draining replicas refused, and HAProxy sent again to the other one.
    refused = sum(len(REFUSED.findall(replica.output())) for replica in stopped + replicas)
    with capsys.disabled():
        print(
            f"\nrolling restart behind HAProxy, {CLIENTS} clients: requests {requests}, "
            f"failed {len(clients.failed)}, lost {lost}, doubled {doubled}, p99 {p99 * 1000:.0f} ms, "
            f"rotation spread {spread}; refused by a draining replica and sent on by HAProxy {refused}"
        )
    assert clients.failed == []
    assert (lost, doubled, spread) == (0, 0, 0), per_user
    assert set(decided) == acknowledged and set(per_user) == set(USERS) and total == len(decided)
    # Every answered event has its one owner, the same as the store's.
    owners = dict(
        rows(postgres_url, 'SELECT o.event_id, a."user" FROM outcomes o JOIN assignments a ON a.seq = o.seq')
    )
    assert all(body["owners_after"] == [owners[event_id]] for event_id, _, body in clients.answered)


def test_the_pages_alerting_rules_pass_promtool_and_name_served_metrics(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    text = page_block("yaml", "## Alerts")
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("CI must provide promtool (.ci/run installs Debian's prometheus)")
        pytest.skip("needs promtool: apt-get install prometheus")
    path = tmp_path / "salesbot.rules.yml"
    path.write_text(text, encoding="utf-8")
    checked = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout
    # Every salesbot metric and label value the rules select is one /metrics serves.
    db = str(tmp_path / "salesbot.db")
    folder = rules(write_rules)
    with Engine(folder, db):
        pass
    with TestClient(create_app(rulesets=folder, db=db)) as client:
        drive(client, tokens(db))
        served = samples(client.get("/metrics").text)
    names = {name for name, _ in served}
    labels = {(name, label) for name, pairs in served for label, _ in pairs}
    exprs = [rule["expr"] for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]
    for expr in exprs:
        for name in re.findall(r"\b(salesbot_\w+)", expr):
            assert name in names, (name, sorted(names))
            for label in re.findall(r"(\w+)=\"", expr):
                if label != "job":
                    assert (name, label) in labels, (name, label)
