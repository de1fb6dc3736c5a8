"""Outbound webhooks on real parts: deliveries written with their events, sent by real
workers over real HTTP to a local receiver that fails, goes down and comes back, retried
on an injected clock, dead-lettered and replayed; two workers claiming at once on each
store; the endpoints' commands and routes; and the worker inside ``salesbot serve``."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from store_queries import rows
from test_service import bearer, free_port, rules, serve, tokens

from salesbot_core import Engine
from salesbot_core.cli import main
from salesbot_core.engine import open_store
from salesbot_core.errors import SalesbotError
from salesbot_core.http.app import create_app
from salesbot_core.http.delivery import Deliverer, RetrySchedule, add_webhook
from salesbot_core.http.signing import verify
from salesbot_core.registry import make_plugin_manager
from salesbot_core.store import Store


class Receiver:
    """A webhook receiver on a loopback port: records every request it is sent, answers
    500 to the next ``fail`` of them (after recording: the sender can't tell a lost
    answer from a lost request), and can be taken down and brought up again."""

    def __init__(self, delay: float = 0.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/salesbot"
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail = 0
        self.delay = delay
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                time.sleep(receiver.delay)
                with receiver._lock:
                    receiver.received.append((dict(self.headers.items()), body))
                    failing = receiver.fail > 0
                    receiver.fail -= failing
                self.send_response(500 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def ids(self) -> list[str]:
        with self._lock:
            return [headers["Salesbot-Delivery"] for headers, _ in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.up()
    yield r
    r.down()


class Clock:
    """The deliverer's clock, moved by the test: hours of retries take no time."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def deal(i: int) -> dict[str, Any]:
    return {
        "id": f"e{i}",
        "kind": "created",
        "record": {"entity": "deal", "id": f"d{i}", "owners": ["bot:inbound"]},
    }


def verify_like_the_docs(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's recipe of docs/service.md, in plain Python."""
    parts = [p.split("=", 1) for p in headers["Salesbot-Signature"].split(",")]
    timestamp = next(v for k, v in parts if k == "t")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(timestamp)) <= 300
    return fresh and any(hmac.compare_digest(expected, v) for k, v in parts if k == "v1")


def test_every_delivery_arrives_through_failures_and_an_outage(
    write_rules: Callable[..., Path], tmp_path: Path, receiver: Receiver
) -> None:
    db = str(tmp_path / "salesbot.db")
    with Engine(rules(write_rules), db) as engine:
        engine.handle(deal(0))  # before any endpoint: nothing to deliver, nothing queued
        assert rows(db, "SELECT COUNT(*) FROM deliveries") == [(0,)]
        hook = add_webhook(engine.store, "default", receiver.url, ["assignment", "notification"])
        only = add_webhook(engine.store, "default", receiver.url + "?only=notes", ["notification"])
        for i in range(1, 6):
            engine.handle(deal(i))
        engine.handle(deal(1))  # a redelivery changes nothing: nothing more to deliver
        engine.simulate([deal(9)])  # a dry run queues nothing either
        # Committed with its event: 5 assignments to one endpoint, 5 notifications to both.
        queued = rows(db, "SELECT id, webhook_id, kind FROM deliveries WHERE status = 'pending'")
        assert sorted((w, k) for _, w, k in queued) == sorted(
            [(hook.id, "assignment")] * 5 + [(hook.id, "notification")] * 5 + [(only.id, "notification")] * 5
        )
        secrets_by_hook = {hook.id: hook.secret, only.id: only.secret}
        store = engine.store
        clock = Clock()
        deliverer = Deliverer(
            store, schedule=RetrySchedule(attempts=8, first=2.0, cap=60.0, rng=random.Random(7)), clock=clock
        )
        try:
            receiver.fail = 4  # the first four attempts are answered 500 (after arriving)
            assert deliverer.run_once() == 15
            receiver.down()  # then the receiver is down for a while
            for _ in range(3):
                clock.advance(120)  # past any wait of the first retries
                deliverer.run_until_idle()
            assert rows(db, "SELECT COUNT(*) FROM deliveries WHERE status = 'pending'") == [(4,)]
            receiver.up()
            for _ in range(8):
                clock.advance(120)
                deliverer.run_until_idle()
        finally:
            deliverer.close()
        statuses = rows(db, "SELECT status, COUNT(*) FROM deliveries GROUP BY status")
        assert statuses == [("delivered", 15)]
        attempts = dict(rows(db, "SELECT id, attempts FROM deliveries"))
        assert max(attempts.values()) >= 4  # the ones that met the outage took several tries
    # None lost: every queued delivery arrived, and each copy is the same message.
    ids = receiver.ids()
    assert set(ids) == {row[0] for row in queued}
    assert len(ids) == 15 + 4  # the four answered 500 were sent again, once each
    copies: dict[str, set[bytes]] = {}
    for headers, body in receiver.received:
        copies.setdefault(headers["Salesbot-Delivery"], set()).add(body)
        message = json.loads(body)
        assert message["id"] == headers["Salesbot-Delivery"] and message["type"] == headers["Salesbot-Event"]
        hook_id = next(w for i, w, _ in queued if i == message["id"])
        verify(headers["Salesbot-Signature"], body, [secrets_by_hook[hook_id]])
        assert verify_like_the_docs(secrets_by_hook[hook_id], headers, body)
        assert not verify_like_the_docs("whsec_wrong", headers, body)
    assert all(len(bodies) == 1 for bodies in copies.values())
    assignment = next(json.loads(b) for _, b in receiver.received if json.loads(b)["type"] == "assignment")
    assert assignment["account"] == "default" and assignment["data"]["owners_after"][0] in {
        "anna",
        "bartek",
        "celina",
    }


def test_a_delivery_dead_after_its_last_attempt_is_listed_and_replayed(
    write_rules: Callable[..., Path], tmp_path: Path, receiver: Receiver
) -> None:
    db = str(tmp_path / "salesbot.db")
    runner = CliRunner()
    added = runner.invoke(
        main, ["webhook", "add", "--account", "default", receiver.url, "--events", "assignment", "--db", db]
    )
    assert added.exit_code == 0, added.output
    hook_id, secret = added.stdout.split()
    assert "only time" in added.stderr
    with Engine(rules(write_rules), db) as engine:
        engine.handle(deal(1))
        clock = Clock()
        schedule = RetrySchedule(attempts=3, first=1.0, cap=10.0, rng=random.Random(1))
        deliverer = Deliverer(engine.store, schedule=schedule, clock=clock)
        receiver.down()
        try:
            for _ in range(5):
                deliverer.run_until_idle()
                clock.advance(60)
        finally:
            deliverer.close()
    ((delivery_id, attempts, status, error),) = rows(
        db, "SELECT id, attempts, status, last_error FROM deliveries"
    )
    assert (attempts, status) == (3, "dead") and "Connect" in error
    failures = runner.invoke(main, ["webhook", "failures", "--account", "default", "--json", "--db", db])
    assert failures.exit_code == 0, failures.output
    assert [(f["id"], f["attempts"]) for f in json.loads(failures.stdout)] == [(delivery_id, 3)]
    assert (
        json.loads(
            runner.invoke(main, ["webhook", "failures", "--account", "beta", "--json", "--db", db]).stdout
        )
        == []
    )
    replayed = runner.invoke(main, ["webhook", "replay", "--account", "default", delivery_id, "--db", db])
    assert replayed.exit_code == 0, replayed.output
    again = runner.invoke(main, ["webhook", "replay", "--account", "default", delivery_id, "--db", db])
    assert again.exit_code == 1 and "no delivery" in again.stderr
    receiver.up()
    sent = runner.invoke(main, ["deliver", "--once", "--db", db])
    assert (sent.exit_code, sent.stdout) == (0, "1 delivery attempt(s)\n")
    assert rows(db, "SELECT status FROM deliveries") == [("delivered",)]
    ((headers, body),) = receiver.received
    assert headers["Salesbot-Delivery"] == delivery_id and verify_like_the_docs(secret, headers, body)
    listed = json.loads(runner.invoke(main, ["webhook", "list", "--json", "--db", db]).stdout)
    assert [(w["id"], w["events"]) for w in listed] == [(hook_id, ["assignment"])] and secret not in str(
        listed
    )
    removed = runner.invoke(main, ["webhook", "remove", "--account", "default", hook_id, "--db", db])
    assert removed.exit_code == 0 and rows(db, "SELECT COUNT(*) FROM deliveries") == [(0,)]
    bad = runner.invoke(main, ["webhook", "add", "--account", "default", "ftp://x", "--db", db])
    assert bad.exit_code == 1 and "http:// or https://" in bad.stderr


def test_two_workers_claiming_at_once_send_each_delivery_once(
    write_rules: Callable[..., Path], store_url: str
) -> None:
    receiver = Receiver(delay=0.01)
    receiver.up()
    try:
        with Engine(rules(write_rules), store_url) as engine:
            add_webhook(engine.store, "default", receiver.url, ["assignment", "notification"])
            engine.handle_many([deal(i) for i in range(30)])
        expected = {row[0] for row in rows(store_url, "SELECT id FROM deliveries")}
        assert len(expected) == 60
        stores: list[Store] = [open_store(make_plugin_manager(), store_url) for _ in range(2)]
        workers = [Deliverer(s, batch=5) for s in stores]
        start = threading.Barrier(2)

        def work(deliverer: Deliverer) -> None:
            start.wait()
            deliverer.run_until_idle()

        threads = [threading.Thread(target=work, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for w, s in zip(workers, stores, strict=True):
            w.close()
            s.close()
        ids = receiver.ids()
        assert sorted(ids) == sorted(expected)  # each sent once: this attempt was the only one
        assert rows(store_url, "SELECT status, COUNT(*), MAX(attempts) FROM deliveries GROUP BY status") == [
            ("delivered", 60, 1)
        ]
    finally:
        receiver.down()


def test_the_webhook_routes(write_rules: Callable[..., Path], tmp_path: Path) -> None:
    db = str(tmp_path / "salesbot.db")
    folder = rules(write_rules)
    made = tokens(db)
    with TestClient(create_app(rulesets=folder, db=db)) as client:
        base = "/v1/accounts/default/webhooks"
        created = client.post(
            base,
            json={"url": "https://crm.example/hook", "events": ["notification"]},
            headers=bearer(made["manage"]),
        )
        assert created.status_code == 201, created.text
        hook = created.json()
        assert hook["secret"].startswith("whsec_") and hook["events"] == ["notification"]
        listed = client.get(base, headers=bearer(made["manage"])).json()
        assert [w["id"] for w in listed["webhooks"]] == [hook["id"]] and hook["secret"] not in str(listed)
        assert client.get(base, headers=bearer(made["read"])).status_code == 403
        assert client.get("/v1/accounts/beta/webhooks", headers=bearer(made["beta"])).json()["webhooks"] == []
        bad = client.post(
            base, json={"url": "https://x/h", "events": ["everything"]}, headers=bearer(made["all"])
        )
        assert bad.status_code == 422 and "unknown webhook event 'everything'" in bad.json()["detail"]
        assert client.delete(f"{base}/{hook['id']}", headers=bearer(made["beta"])).status_code == 404
        assert client.delete(f"{base}/{hook['id']}", headers=bearer(made["all"])).json() == {
            "removed": hook["id"]
        }
        assert client.delete(f"{base}/{hook['id']}", headers=bearer(made["all"])).status_code == 404


# A real serve process and a receiver, waiting for a background delivery.
@pytest.mark.slow
def test_salesbot_serve_delivers_in_the_background(
    write_rules: Callable[..., Path], tmp_path: Path, receiver: Receiver
) -> None:
    db = str(tmp_path / "salesbot.db")
    made = tokens(db)
    for client in serve(rules(write_rules), db, tmp_path):
        created = client.post(
            "/v1/accounts/default/webhooks", json={"url": receiver.url}, headers=bearer(made["all"])
        )
        assert created.status_code == 201, created.text
        answer = client.post("/v1/accounts/default/events", json=deal(1), headers=bearer(made["all"]))
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 30
        while len(receiver.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        kinds = sorted(json.loads(body)["type"] for _, body in receiver.received)
        assert kinds == ["assignment", "notification"]
        for headers, body in receiver.received:
            assert verify_like_the_docs(created.json()["secret"], headers, body)


def doc_block(language: str) -> str:
    """The ``language`` block of the verification recipe in docs/service.md."""
    import re

    text = (Path(__file__).parent.parent / "docs" / "service.md").read_text(encoding="utf-8")
    start = text.index("Verify a delivery on the raw body")
    block = re.search(rf"```{language}\n(.*?)```", text[start:], re.DOTALL)
    assert block is not None
    return block.group(1)


def deliver_once(
    write_rules: Callable[..., Path], tmp_path: Path, receiver: Receiver, kinds: list[str]
) -> tuple[str, str]:
    """One deal handled with an endpoint subscribed to ``kinds``, each delivery sent once
    to ``receiver`` by a real delivery worker: the endpoint's secret and the store."""
    db = str(tmp_path / "salesbot.db")
    with Engine(rules(write_rules), db) as engine:
        hook = add_webhook(engine.store, "default", receiver.url, kinds)
        engine.handle(deal(1))
        deliverer = Deliverer(engine.store)
        try:
            assert deliverer.run_until_idle() == len(kinds)
        finally:
            deliverer.close()
    return hook.secret, db


@pytest.fixture
def delivered(write_rules: Callable[..., Path], tmp_path: Path, receiver: Receiver) -> tuple[str, str, bytes]:
    """A real delivery, as its receiver got it: the endpoint's secret, the signature
    header and the raw body."""
    secret, _ = deliver_once(write_rules, tmp_path, receiver, ["notification"])
    ((headers, body),) = receiver.received
    return secret, headers["Salesbot-Signature"], body


def test_the_documented_python_recipe_verifies_a_real_delivery(delivered: tuple[str, str, bytes]) -> None:
    secret, header, body = delivered
    namespace: dict[str, Any] = {}
    exec(doc_block("python"), namespace)
    assert namespace["verify"](secret, header, body) is True
    assert namespace["verify"](secret, header, body + b" ") is False
    assert namespace["verify"]("whsec_other", header, body) is False


#: Each recipe, run by its own interpreter: the call that prints whether the real body, a
#: tampered body and another secret verify (``true,false,false`` expected).
RECIPES = {
    "javascript": (
        "node",
        "verify.js",
        "",
        "const [secret, header, body] = process.argv.slice(2);\n"
        "console.log([verify(secret, header, Buffer.from(body)),"
        " verify(secret, header, Buffer.from(body + ' ')),"
        " verify('whsec_other', header, Buffer.from(body))].join(','));\n",
    ),
    "php": (
        "php",
        "verify.php",
        "<?php\n",
        "[, $secret, $header, $body] = $argv;\n"
        "echo implode(',', array_map(fn ($ok) => $ok ? 'true' : 'false', [\n"
        "    salesbot_verify($secret, $header, $body),\n"
        "    salesbot_verify($secret, $header, $body . ' '),\n"
        "    salesbot_verify('whsec_other', $header, $body),\n"
        '])), "\\n";\n',
    ),
}


@pytest.mark.parametrize("language", sorted(RECIPES))
def test_the_documented_recipe_verifies_a_real_delivery(
    language: str, delivered: tuple[str, str, bytes], tmp_path: Path
) -> None:
    """The JavaScript and PHP recipes of docs/service.md, run by node and php (installed
    by .ci/run: under CI a missing interpreter fails the test)."""
    import os
    import shutil
    import subprocess

    program, name, opening, call = RECIPES[language]
    found = shutil.which(program)
    if found is None:
        message = f"no {program} to run the {language} recipe"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    secret, header, body = delivered
    (tmp_path / name).write_text(opening + doc_block(language) + call, encoding="utf-8")
    run = subprocess.run(
        [found, str(tmp_path / name), secret, header, body.decode()],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.stdout.strip() == "true,false,false", run.stdout + run.stderr


def test_deliveries_validate_against_the_published_openapi_webhooks(
    write_rules: Callable[..., Path], tmp_path: Path, receiver: Receiver
) -> None:
    """``/openapi.json`` publishes each delivery's body and headers (OpenAPI 3.1
    ``webhooks``); what a real delivery worker sends validates against it, and a body
    missing a field or carrying an unknown one does not."""
    from jsonschema import Draft202012Validator

    _, db = deliver_once(write_rules, tmp_path, receiver, ["assignment", "notification"])
    with TestClient(create_app(rulesets=rules(write_rules), db=db)) as client:
        document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1") and sorted(document["webhooks"]) == [
        "assignment",
        "notification",
    ]

    def validator(kind: str) -> Draft202012Validator:
        operation = document["webhooks"][kind]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        return Draft202012Validator({**schema, "components": document["components"]})

    kinds = []
    for headers, body in receiver.received:
        payload = json.loads(body)
        kind = headers["Salesbot-Event"]
        kinds.append(kind)
        operation = document["webhooks"][kind]["post"]
        assert {p["name"] for p in operation["parameters"] if p["in"] == "header"} <= set(headers)
        assert list(validator(kind).iter_errors(payload)) == []
        assert payload["type"] == kind
        other = "notification" if kind == "assignment" else "assignment"
        assert list(validator(other).iter_errors(payload)) != []
        for broken in ({k: v for k, v in payload.items() if k != "id"}, {**payload, "extra": 1}):
            assert list(validator(kind).iter_errors(broken)) != []
    assert sorted(kinds) == ["assignment", "notification"]


def test_webhook_list_at_80_columns_shows_each_id_whole(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    """The id is what `webhook remove` needs: it is never cut; a long URL folds instead."""
    folder = rules(write_rules)
    db = str(tmp_path / "s.db")
    with Engine(folder, db):
        pass
    narrow = CliRunner(env={"COLUMNS": "80"})
    url = "https://crm.example.com/" + "hooks/" * 15 + "salesbot"
    added = narrow.invoke(main, ["webhook", "add", "--account", "default", url, "--db", db])
    assert added.exit_code == 0, added.output
    hook_id = added.stdout.splitlines()[0]
    listed = narrow.invoke(main, ["webhook", "list", "--db", db])
    assert listed.exit_code == 0
    assert max(map(len, listed.stdout.splitlines())) <= 80
    assert any(hook_id in line for line in listed.stdout.splitlines()), listed.stdout


def test_the_retry_schedule_is_set_by_environment_or_option(
    write_rules: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert RetrySchedule.from_env({}) == RetrySchedule(attempts=8, first=30.0, cap=3600.0)
    env = {
        "SALESBOT_WEBHOOK_ATTEMPTS": "3",
        "SALESBOT_WEBHOOK_FIRST_WAIT": "0.5",
        "SALESBOT_WEBHOOK_MAX_WAIT": "2",
    }
    schedule = RetrySchedule.from_env(env)
    assert (schedule.attempts, schedule.first, schedule.cap, schedule.horizon) == (3, 0.5, 2.0, 1.5)
    assert schedule.wait(3) is None
    for variable, text, message in [
        ("SALESBOT_WEBHOOK_ATTEMPTS", "0", "a whole number from 1 to 100, not '0'"),
        ("SALESBOT_WEBHOOK_ATTEMPTS", "many", "a whole number from 1 to 100, not 'many'"),
        ("SALESBOT_WEBHOOK_MAX_WAIT", "1e9", "seconds from 0.001 to 604800, not '1e9'"),
    ]:
        with pytest.raises(SalesbotError) as raised:
            RetrySchedule.from_env({variable: text})
        assert str(raised.value) == f"{variable} must be {message}"
    # A worker made without a schedule takes the environment's (serve's workers do).
    folder = rules(write_rules)
    db = str(tmp_path / "s.db")
    with Engine(folder, db):
        pass
    store = open_store(make_plugin_manager(), db)
    try:
        monkeypatch.setenv("SALESBOT_WEBHOOK_ATTEMPTS", "2")
        deliverer = Deliverer(store)
        assert deliverer.schedule.attempts == 2
        deliverer.close()
    finally:
        store.close()
    # The command line: an option, or the variable, checked before anything runs.
    runner = CliRunner()
    bad = runner.invoke(main, ["deliver", "--once", "--db", db, "--webhook-attempts", "0"])
    assert bad.exit_code == 2 and "Invalid value for '--webhook-attempts'" in bad.output
    monkeypatch.setenv("SALESBOT_WEBHOOK_ATTEMPTS", "101")
    bad = runner.invoke(main, ["deliver", "--once", "--db", db])
    assert bad.exit_code == 2 and "(env var: 'SALESBOT_WEBHOOK_ATTEMPTS')" in bad.output
    monkeypatch.delenv("SALESBOT_WEBHOOK_ATTEMPTS")
    done = runner.invoke(main, ["deliver", "--once", "--db", db, "--webhook-attempts", "4"])
    assert (done.exit_code, done.stdout) == (0, "0 delivery attempt(s)\n")
