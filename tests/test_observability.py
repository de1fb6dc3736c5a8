"""Metrics (``/metrics``) and the per-event log lines of ``salesbot serve``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from test_service import DEAL_EVENT, bearer, free_port, rules, tokens

from salesbot_core import Engine
from salesbot_core.http.app import create_app

URL = "/v1/accounts/default/events"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a text exposition: (name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


def deal(n: int, bot: str = "inbound") -> dict[str, Any]:
    return {
        "id": f"e{n}",
        "kind": "created",
        "record": {"entity": "deal", "id": f"d{n}", "owners": [f"bot:{bot}"]},
    }


def drive(client: httpx.Client | TestClient, made: dict[str, str]) -> None:
    """3 events assigned (one in a batch), 1 redelivered, 1 invalid, 1 conflict, 1 for an
    account the rules lack (admin token), 1 unauthorized request."""
    auth = bearer(made["all"])
    assert client.post(URL, json=deal(1), headers=auth).status_code == 200
    assert client.post(URL, json=deal(2), headers=auth).status_code == 200
    assert client.post(URL, json=deal(1), headers=auth).status_code == 200  # redelivered
    conflict = {**deal(1), "record": {**deal(1)["record"], "title": "x"}}
    assert client.post(URL, json=conflict, headers=auth).status_code == 409
    batch = client.post(f"{URL}:batch", json={"events": [deal(3), deal(4, "nobody")]}, headers=auth)
    assert batch.status_code == 200
    assert "outcome" in batch.json()["results"][0] and "error" in batch.json()["results"][1]
    stranger = client.post("/v1/accounts/zz-unknown/events", json=deal(9), headers=bearer(made["admin"]))
    assert stranger.status_code == 422
    assert client.post(URL, json=deal(5)).status_code == 401


def check(scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> None:
    events = "salesbot_events_total"
    assert value(scraped, events, account="default", status="assigned") == 3
    assert value(scraped, events, account="default", status="duplicate") == 1
    assert value(scraped, events, account="default", status="conflict") == 1
    assert value(scraped, events, account="default", status="invalid") == 1
    assert value(scraped, events, account="(other)", status="invalid") == 1
    assert sum(v for (name, _), v in scraped.items() if name == events) == 7
    # The latency of the 3 events decided (not of redeliveries or rejected ones).
    assert value(scraped, "salesbot_event_duration_seconds_count") == 3
    assert value(scraped, "salesbot_event_duration_seconds_sum") > 0
    assert value(scraped, "salesbot_assignments_total", account="default", bot="inbound") == 3
    # Each assigned deal notified its owner: 3 pending; beta has none.
    assert value(scraped, "salesbot_outbox_pending", account="default") == 3
    assert value(scraped, "salesbot_outbox_pending", account="beta") == 0
    http = "salesbot_http_requests_total"
    route = "/v1/accounts/{account}/events"
    assert value(scraped, http, method="POST", route=route, status="2xx") == 3
    assert value(scraped, http, method="POST", route=route, status="4xx") == 3
    assert value(scraped, http, method="POST", route=route + ":batch", status="2xx") == 1
    # Only bounded labels: no record ids, event ids or raw paths.
    for name, labels in scraped:
        for _, label in labels:
            assert not label.startswith(("d1", "e1", "/v1/accounts/default")), (name, labels)


def test_metrics_count_events_assignments_requests_and_the_outbox(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    db = str(tmp_path / "salesbot.db")
    folder = rules(write_rules)
    with Engine(folder, db):
        pass
    made = tokens(db)
    with TestClient(create_app(rulesets=folder, db=db)) as client:
        drive(client, made)
        scraped = client.get("/metrics")
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
        check(samples(scraped.text))
        assert client.get("/nowhere").status_code == 404
        again = samples(client.get("/metrics").text)
        assert value(again, "salesbot_http_requests_total", method="GET", route="/metrics", status="2xx") == 1
        assert (
            value(again, "salesbot_http_requests_total", method="GET", route="(unmatched)", status="4xx") == 1
        )


def test_list_operations_count_assignments(write_rules: Callable[..., Path], tmp_path: Path) -> None:
    db = str(tmp_path / "salesbot.db")
    folder = rules(write_rules)
    with Engine(folder, db) as engine:
        for n in (1, 2):
            engine.handle({**deal(n), "record": {**deal(n)["record"], "owners": ["jan"]}})
    made = tokens(db)
    with TestClient(create_app(rulesets=folder, db=db)) as client:
        body = {"entity": "deal", "record_ids": ["d1", "d2"], "bot": "inbound", "operation": "op1"}
        done = client.post("/v1/accounts/default/assignments", json=body, headers=bearer(made["all"]))
        assert done.status_code == 200, done.text
        scraped = samples(client.get("/metrics").text)
        assert value(scraped, "salesbot_assignments_total", account="default", bot="inbound") == 2
        assert value(scraped, "salesbot_events_total", account="default", status="assigned") == 0


class Served:
    """A real ``salesbot serve`` with its stderr kept in a file: this checkout's, or the
    one ``salesbot`` (a command and its environment) starts."""

    def __init__(
        self,
        folder: Path,
        db: str,
        cwd: Path,
        *args: str,
        salesbot: Sequence[str] = (sys.executable, "-m", "salesbot_core"),
        env: dict[str, str] | None = None,
    ):
        self.port = free_port()
        self.log = cwd / f"serve-{self.port}.log"
        self.base = f"http://127.0.0.1:{self.port}"
        command = [*salesbot, "serve", "--port", str(self.port)]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*command, "-r", str(folder), "--db", db, *args], cwd=cwd, env=env, stdout=out, stderr=out
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"salesbot serve did not start: {self.output()}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def served(folder: Path, db: str, cwd: Path, *args: str) -> Iterator[tuple[Served, httpx.Client]]:
    server = Served(folder, db, cwd, *args)
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.base, timeout=60) as client:
            yield server, client
    finally:
        server.stop()


@pytest.fixture
def prepared(write_rules: Callable[..., Path], tmp_path: Path) -> tuple[Path, str, dict[str, str]]:
    folder = rules(write_rules)
    db = str(tmp_path / "salesbot.db")
    with Engine(folder, db):
        pass
    return folder, db, tokens(db)


def test_json_log_line_per_event_without_token_or_payload(
    prepared: tuple[Path, str, dict[str, str]], tmp_path: Path
) -> None:
    folder, db, made = prepared
    secret = made["all"]
    event = {**DEAL_EVENT, "record": {**DEAL_EVENT["record"], "title": "SECRET-TITLE", "value": 123456789}}
    for server, client in served(folder, db, tmp_path):
        done = client.post(URL, json=event, headers=bearer(secret))
        assert done.status_code == 200, done.text
        assert client.post(URL, json=event, headers=bearer(secret)).json()["duplicate"]
        bad = {"id": "bad-1", "kind": "created", "record": {"entity": "deal", "title": "SECRET-TITLE"}}
        assert client.post(URL, json=bad, headers=bearer(secret)).status_code == 422
        time.sleep(0.5)
        server.stop()
        output = server.output()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]  # every line is JSON
    events = [line for line in lines if line["logger"] == "salesbot.events"]
    assert len(events) == 3, output
    first, again, rejected = events
    assert first["account"] == "default" and first["event_id"] == "e1"
    assert (first["bots"], first["owners_after"], first["status"]) == (["inbound"], ["anna"], "assigned")
    assert first["duplicate"] is False and first["level"] == "info" and first["entity"] == "deal"
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] > 0
    assert (again["status"], again["duplicate"], again["owners_after"]) == ("duplicate", True, ["anna"])
    assert (rejected["event_id"], rejected["status"]) == ("bad-1", "invalid")
    assert secret not in output and secret[:12] not in output
    assert "SECRET-TITLE" not in output and "123456789" not in output


def test_text_log_format(prepared: tuple[Path, str, dict[str, str]], tmp_path: Path) -> None:
    folder, db, made = prepared
    for server, client in served(folder, db, tmp_path, "--log-format", "text"):
        assert client.post(URL, json=DEAL_EVENT, headers=bearer(made["all"])).status_code == 200
        time.sleep(0.5)
        server.stop()
        output = server.output()
    (line,) = [line for line in output.splitlines() if "salesbot.events" in line]
    assert 'account="default" event_id="e1"' in line and 'status="assigned"' in line
    assert 'owners_after=["anna"]' in line


# Two real uvicorn worker processes.
@pytest.mark.slow
def test_metrics_sum_over_workers(prepared: tuple[Path, str, dict[str, str]], tmp_path: Path) -> None:
    """With 2 workers each scrape sums what both did (multi-process mode)."""
    folder, db, made = prepared
    auth = bearer(made["all"])
    for _, client in served(folder, db, tmp_path, "--workers", "2"):
        # New connections each time, so both workers get some of the requests.
        for n in range(20):
            response = httpx.post(f"{client.base_url}{URL}", json=deal(n), headers=auth, timeout=60)
            assert response.status_code == 200, response.text
        for _ in range(4):
            scraped = samples(httpx.get(f"{client.base_url}/metrics", timeout=60).text)
            assert value(scraped, "salesbot_events_total", account="default", status="assigned") == 20
            assert value(scraped, "salesbot_assignments_total", account="default", bot="inbound") == 20
            assert value(scraped, "salesbot_event_duration_seconds_count") == 20
            assert value(scraped, "salesbot_outbox_pending", account="default") == 20
