"""``salesbot serve``: the HTTP service, driven over real HTTP (a ``salesbot serve``
process) and in process (FastAPI's TestClient) for the route-by-route tenancy matrix."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from factories import TEAM
from salesbot_core import Engine
from salesbot_core.engine import open_store
from salesbot_core.http.app import create_app
from salesbot_core.http.auth import SCOPE_KEY
from salesbot_core.http.common import MAX_BODY_BYTES, PROBLEM_JSON
from salesbot_core.registry import make_plugin_manager
from salesbot_core.tokens import SCOPES, create_token

RULES = (
    TEAM
    + """
settings: {multiple_owners: true}
bots:
  - id: inbound
    users: [anna, bartek, celina]
    actions: {notify: "New deal for you"}
  - id: warsztat
    name: Warsztat bot
    users: [anna, bartek]
    actions:
      related: {company: true, persons: true, mode: MODE}
"""
)
OTHER = """
account: beta
users:
  - {id: zofia, name: Zofia}
bots:
  - {id: secret-bot, users: [zofia]}
"""

#: A deal created with the inbound bot as its owner.
DEAL_EVENT = {
    "id": "e1",
    "kind": "created",
    "record": {"entity": "deal", "id": "d1", "owners": ["bot:inbound"]},
}


def rules(write_rules: Callable[..., Path], mode: str = "add") -> Path:
    return write_rules(**{"default.yaml": RULES.replace("MODE", mode), "beta.yaml": OTHER})


def tokens(db: str) -> dict[str, str]:
    """A token per purpose: every scope of account default, one scope each, and beta's."""
    store = open_store(make_plugin_manager(), db)
    try:
        made = {"all": create_token(store, "default", "all")}
        made |= {scope: create_token(store, "default", f"only-{scope}", [scope]) for scope in SCOPES}
        made["beta"] = create_token(store, "beta", "beta-all")
        made["admin"] = create_token(store, "*", "ops")
        return made
    finally:
        store.close()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(
    folder: Path, db: str, cwd: Path, *options: str, env: dict[str, str] | None = None
) -> Iterator[httpx.Client]:
    """A real ``salesbot serve`` process on a free loopback port, until the test ends;
    ``options`` are more command-line options, ``env`` more environment variables."""
    port = free_port()
    command = [sys.executable, "-m", "salesbot_core", "serve", "--port", str(port), "-r", str(folder)]
    process = subprocess.Popen(
        [*command, "--db", db, *options],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                out = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"salesbot serve did not start: {out}")
            time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=60) as client:
            yield client
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


COMPANY = {"entity": "company", "id": "warsztat", "name": "Warsztat", "owners": ["jan"]}
DEAL = {
    "entity": "deal",
    "id": "warsztat-deal",
    "title": "Warsztat: new lift",
    "process": "Sales",
    "company": "warsztat",
    "owners": ["jan"],
}


def seed_example(client: httpx.Client | TestClient, auth: dict[str, str]) -> dict[str, Any]:
    """The seed's example over HTTP: Jan owns Warsztat and its deal; the bot is added."""
    for event_id, record in (("c-created", COMPANY), ("d-created", DEAL)):
        done = client.post(
            "/v1/accounts/default/events",
            json={"id": event_id, "kind": "created", "record": record},
            headers=auth,
        )
        assert done.status_code == 200, done.text
    extra = {
        "id": "d-extra-owner",
        "kind": "updated",
        "changed": ["owners"],
        "record": {**DEAL, "owners": ["jan", "bot:warsztat"]},
    }
    done = client.post("/v1/accounts/default/events", json=extra, headers=auth)
    assert done.status_code == 200, done.text
    return done.json()


def owners(client: httpx.Client | TestClient, auth: dict[str, str], entity: str, record_id: str) -> list[str]:
    got = client.get(f"/v1/accounts/default/records/{entity}/{record_id}", headers=auth)
    assert got.status_code == 200, got.text
    return got.json()["record"]["owners"]


def is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"] and "detail" in body
    return body


class TestARealServeProcessOnSQLite:
    @pytest.fixture
    def setup(
        self, write_rules: Callable[..., Path], tmp_path: Path
    ) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
        folder = rules(write_rules, "add")
        db = str(tmp_path / "salesbot.db")
        with Engine(folder, db):
            pass
        made = tokens(db)
        yield from ((client, made) for client in serve(folder, db, tmp_path))

    def test_example_1_mode_add(self, setup: tuple[httpx.Client, dict[str, str]]) -> None:
        client, made = setup
        auth = bearer(made["all"])
        outcome = seed_example(client, auth)
        assert outcome["owners_after"] == ["jan", "anna"]
        assert owners(client, auth, "deal", "warsztat-deal") == ["jan", "anna"]
        assert owners(client, auth, "company", "warsztat") == ["jan", "anna"]
        (change,) = outcome["decisions"][0]["related"]
        assert (change["entity"], change["record_id"], change["owners_before"], change["owners_after"]) == (
            "company",
            "warsztat",
            ["jan"],
            ["jan", "anna"],
        )
        explained = client.get("/v1/accounts/default/records/company/warsztat/explain", headers=auth)
        assert [o["event_id"] for o in explained.json()["outcomes"]] == ["c-created", "d-extra-owner"]

    def test_redelivery_conflict_batch_and_errors(self, setup: tuple[httpx.Client, dict[str, str]]) -> None:
        client, made = setup
        auth = bearer(made["all"])
        url = "/v1/accounts/default/events"
        event = DEAL_EVENT
        first = client.post(url, json=event, headers=auth)
        assert first.status_code == 200 and first.json()["owners_after"] == ["anna"]
        again = client.post(url, json={**event, "account": "default"}, headers=auth)
        assert again.status_code == 200
        assert again.json() == {**first.json(), "duplicate": True}
        changed = {**event, "record": {**event["record"], "title": "other"}}
        conflict = is_problem(client.post(url, json=changed, headers=auth), 409)
        assert conflict["errors"] == [{"field": "id", "message": conflict["errors"][0]["message"]}]
        mismatch = is_problem(client.post(url, json={**event, "account": "beta"}, headers=auth), 422)
        assert mismatch["errors"][0]["field"] == "account"
        batch = client.post(
            f"{url}:batch",
            json={
                "events": [
                    {
                        "id": "e2",
                        "kind": "created",
                        "record": {"entity": "deal", "id": "d2", "owners": ["bot:inbound"]},
                    },
                    {
                        "id": "e3",
                        "kind": "created",
                        "record": {"entity": "deal", "id": "d3", "owners": ["bot:nobody"]},
                    },
                    {
                        "id": "e4",
                        "kind": "created",
                        "record": {"entity": "deal", "id": "d4", "owners": ["bot:inbound"]},
                    },
                ]
            },
            headers=auth,
        )
        assert batch.status_code == 200, batch.text
        results = batch.json()["results"]
        assert results[0]["outcome"]["owners_after"] == ["bartek"]
        assert results[1]["error"]["status"] == 422
        assert results[1]["error"]["errors"] == [
            {"field": "record.owners.0", "message": "'bot:nobody' is not a bot of account 'default'"}
        ]
        assert results[2]["outcome"]["owners_after"] == ["celina"]
        # 413, 415 and 422s for what a client sends: never a 500.
        is_problem(
            client.post(
                url,
                content=b"{" + b" " * MAX_BODY_BYTES + b"}",
                headers={**auth, "Content-Type": "application/json"},
            ),
            413,
        )
        is_problem(
            client.post(
                url, content=b"id=e9", headers={**auth, "Content-Type": "application/x-www-form-urlencoded"}
            ),
            415,
        )
        for body in (
            b"{not json",
            b'{"id": NaN}',
            b"[" * 100_000 + b"]" * 100_000,
            b'{"id": 1' + b"0" * 5000 + b"}",
            b"\xff",
        ):
            is_problem(
                client.post(url, content=body, headers={**auth, "Content-Type": "application/json"}), 422
            )
        is_problem(
            client.post(
                url,
                json={"id": "e9", "kind": "created", "record": {"entity": "deal", "id": "d9", "x": 1.5}},
                headers=auth,
            ),
            422,
        )
        is_problem(client.post(url, json=event), 401)
        is_problem(client.post(url, json=event, headers=bearer("sb_nope")), 401)
        assert client.get("/readyz").json() == {"status": "ready"}
        assert client.get("/openapi.json").json()["paths"]
        assert client.get("/docs").status_code == 200

    def test_outbox_bots_assignments_and_simulate(self, setup: tuple[httpx.Client, dict[str, str]]) -> None:
        client, made = setup
        auth = bearer(made["all"])
        base = "/v1/accounts/default"
        for n in range(1, 4):
            event = {
                "id": f"e{n}",
                "kind": "created",
                "record": {"entity": "deal", "id": f"d{n}", "owners": ["jan"]},
            }
            assert client.post(f"{base}/events", json=event, headers=auth).status_code == 200
        options = client.get(f"{base}/owner-options/deal", headers=auth).json()["options"]
        assert [o["owner"] for o in options] == ["bot:inbound", "bot:warsztat"]
        listed = client.post(
            f"{base}/assignments",
            json={"entity": "deal", "record_ids": ["d1", "d2"], "bot": "inbound", "operation": "op1"},
            headers=auth,
        )
        assert [o["owners_after"] for o in listed.json()["outcomes"]] == [["jan", "anna"], ["jan", "bartek"]]
        page = client.get(f"{base}/outbox?limit=1", headers=auth).json()
        assert len(page["notifications"]) == 1
        rest = client.get(f"{base}/outbox?after={page['next_after']}", headers=auth).json()
        ids = [page["next_after"]] + [n["id"] for n in rest["notifications"]]
        assert len(ids) == 2
        acked = client.post(f"{base}/outbox/ack", json={"ids": [*ids, 999]}, headers=auth).json()
        assert acked == {"marked": ids, "not_pending": [999]}
        switched = client.put(f"{base}/bots/inbound/active", json={"active": False}, headers=auth)
        assert switched.json() == {"account": "default", "bot": "inbound", "active": False}
        bots = client.get(f"{base}/bots", headers=auth).json()["bots"]
        assert {b["id"]: b["active"] for b in bots} == {"inbound": False, "warsztat": True}
        is_problem(client.put(f"{base}/bots/nobody/active", json={"active": True}, headers=auth), 404)
        is_problem(client.put(f"{base}/bots/inbound/active", json={"active": "yes"}, headers=auth), 422)
        client.put(f"{base}/bots/inbound/active", json={"active": True}, headers=auth)
        dry = client.post(f"{base}/bots/inbound/simulate", json={"count": 3}, headers=auth).json()
        assert (dry["records"], dry["users"]) == (3, {"anna": 1, "bartek": 1, "celina": 1})
        assert client.get(f"{base}/outbox", headers=auth).json()["notifications"] == []  # a dry run
        is_problem(client.get(f"{base}/records/deal/nope", headers=auth), 404)
        is_problem(client.get(f"{base}/records/lead/d1", headers=auth), 404)


def test_example_2_mode_replace_over_http(write_rules: Callable[..., Path], tmp_path: Path) -> None:
    db = str(tmp_path / "salesbot.db")
    app = create_app(rulesets=rules(write_rules, "replace"), db=db)
    with TestClient(app) as client:
        auth = bearer(tokens(db)["all"])
        outcome = seed_example(client, auth)
        assert outcome["owners_after"] == ["jan", "anna"]
        assert owners(client, auth, "deal", "warsztat-deal") == ["jan", "anna"]
        assert owners(client, auth, "company", "warsztat") == ["anna"]
        company = client.get("/v1/accounts/default/records/company/warsztat", headers=auth).json()
        assert company["record"]["name"] == "Warsztat"


def sample_request(route: APIRoute, account: str) -> tuple[str, str, Any]:
    """A well-formed request to ``route`` for ``account``: method, URL and JSON body."""
    values = {
        "account": account,
        "entity": "deal",
        "record_id": "d1",
        "bot": "inbound",
        "webhook_id": "wh_0",
        "user": "anna",
        "draft": "next",
        "number": 1,
    }
    url = route.path_format.format(**{name: values[name] for name in route.param_convertors})
    bodies: dict[str, Any] = {
        "/events": {
            "id": "m1",
            "kind": "created",
            "record": {"entity": "deal", "id": "d1", "owners": ["bot:inbound"]},
        },
        "/events:batch": {"events": []},
        "/assignments": {"entity": "deal", "record_ids": ["d1"], "bot": "inbound", "operation": "m"},
        "/active": {"active": False},
        "/offboard": {"operation": "m"},
        "/ack": {"ids": [1]},
        "/simulate": {"count": 1},
        "/webhooks": {"url": "http://127.0.0.1:9/hook"},
        "/replay": {"files": {"candidate.yaml": RULES.replace("MODE", "add")}, "since": "1d"},
        "/users": {"users": []},
        # The rules as data: documents, validated by the core.
        "{bot}": {},
        "{user}": {},
        "{draft}": {},
        "/settings": {},
        "/preview": {},
        "{account}": {},
    }
    body = next((b for suffix, b in bodies.items() if route.path.endswith(suffix)), None)
    (method,) = route.methods
    return method, url, body


def reached(route: APIRoute, response: httpx.Response) -> bool:
    """The route's own answer, past authentication (removing no such webhook is a 404 of its own;
    the rules kept in the store are not edited on a server of a rulesets folder: a 409)."""
    if response.status_code == 404 and route.path.endswith("{webhook_id}"):
        return bool(response.json()["detail"].startswith("no webhook"))
    if response.status_code == 409:
        return bool(response.json()["type"] == "urn:salesbot:problem:rules-in-folder")
    return response.status_code in (200, 201, 422)


#: Every request of the matrix says which rules version it read (the writes of the rules need it).
IF_MATCH = {"If-Match": '"v0"'}


class TestTenancyMatrix:
    """Every route of the app's route table, with a foreign token, none, the wrong scope."""

    @pytest.fixture
    def client(
        self, write_rules: Callable[..., Path], tmp_path: Path
    ) -> Iterator[tuple[TestClient, dict[str, str]]]:
        db = str(tmp_path / "salesbot.db")
        folder = rules(write_rules)
        with Engine(folder, db) as engine:  # account default has a record and a notification
            engine.handle(
                {
                    "id": "e1",
                    "kind": "created",
                    "record": {"entity": "deal", "id": "d1", "owners": ["bot:inbound"]},
                }
            )
        app = create_app(rulesets=folder, db=db)
        with TestClient(app) as client:
            yield client, tokens(db)

    def account_routes(self, client: TestClient) -> list[APIRoute]:
        # The API's routes; the admin page's (left out of the schema) have tests of their own.
        routes = [
            r
            for r in client.app.routes  # type: ignore[attr-defined]
            if isinstance(r, APIRoute) and r.include_in_schema
        ]
        public = {r.path for r in routes if "{account}" not in r.path}
        assert public == {"/healthz", "/readyz", "/metrics", "/v1/rulesets", "/v1/accounts"}
        found = [r for r in routes if "{account}" in r.path]
        assert len(found) == 39
        return found

    def test_every_route_is_404_with_no_data_for_another_accounts_token(
        self, client: tuple[TestClient, dict[str, str]]
    ) -> None:
        c, made = client
        for route in self.account_routes(c):
            method, url, body = sample_request(route, "default")
            response = c.request(method, url, json=body, headers=bearer(made["beta"]) | IF_MATCH)
            problem = is_problem(response, 404)
            assert problem["detail"] == "not found", route.path
            text = response.text
            assert "anna" not in text and "d1" not in text and "inbound" not in text, route.path
            # the owner's own token reaches it (no 401/403/404 from auth), but the operator's routes
            own = c.request(method, url, json=body, headers=bearer(made["all"]) | IF_MATCH)
            if "admin" in route.tags:
                is_problem(own, 403)
            else:
                assert reached(route, own), (route.path, own.text)
            admin = c.request(method, url, json=body, headers=bearer(made["admin"]) | IF_MATCH)
            assert reached(route, admin), (route.path, admin.text)

    def test_every_route_needs_a_token_and_its_scope(self, client: tuple[TestClient, dict[str, str]]) -> None:
        c, made = client
        for route in self.account_routes(c):
            method, url, body = sample_request(route, "default")
            is_problem(c.request(method, url, json=body), 401)
            is_problem(c.request(method, url, json=body, headers={"Authorization": "Basic abc"}), 401)
            scope = (route.openapi_extra or {})[SCOPE_KEY]
            for other in SCOPES:
                if other != scope:
                    is_problem(c.request(method, url, json=body, headers=bearer(made[other]) | IF_MATCH), 403)
            holder = "admin" if "admin" in route.tags else scope  # the operator's routes: its token
            allowed = c.request(method, url, json=body, headers=bearer(made[holder]) | IF_MATCH)
            assert reached(route, allowed), (route.path, allowed.text)


def test_readyz_is_503_when_the_engine_cannot_start(write_rules: Callable[..., Path], tmp_path: Path) -> None:
    folder = write_rules(**{"bad.yaml": "bots: [{id: x, users: [ghost]}]\n"})
    with TestClient(create_app(rulesets=folder, db=str(tmp_path / "s.db"))) as client:
        assert client.get("/healthz").status_code == 200
        problem = is_problem(client.get("/readyz"), 503)
        assert client.get("/readyz").headers["retry-after"] == "5"
        assert "engine is not running" in problem["detail"]


def test_serve_without_the_server_extra_is_a_clear_error(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['fastapi'] = None; sys.modules['uvicorn'] = None; "
        "from salesbot_core.cli import main; main(['serve'])"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "error: salesbot serve needs the web server extra: pip install 'salesbot[server]'\n"


def test_events_and_idempotency_on_postgresql(
    write_rules: Callable[..., Path], postgres_url: str, tmp_path: Path
) -> None:
    folder = rules(write_rules)
    with Engine(folder, postgres_url):
        pass
    made = tokens(postgres_url)
    for client in serve(folder, postgres_url, tmp_path):
        auth = bearer(made["all"])
        url = "/v1/accounts/default/events"
        event = DEAL_EVENT
        first = client.post(url, json=event, headers=auth)
        assert first.status_code == 200 and first.json()["owners_after"] == ["anna"]
        again = client.post(url, json=event, headers=auth)
        assert again.json() == {**first.json(), "duplicate": True}
        is_problem(
            client.post(url, json={**event, "record": {**event["record"], "title": "x"}}, headers=auth), 409
        )
        assert client.post(url, json={**event, "id": "e2"}, headers=bearer(made["beta"])).status_code == 404
        outcome = seed_example(client, auth)
        assert outcome["owners_after"] == ["jan", "anna"]
        assert client.get("/readyz").status_code == 200


@pytest.fixture
def app_client(
    write_rules: Callable[..., Path], tmp_path: Path
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    folder = rules(write_rules)
    db = str(tmp_path / "salesbot.db")
    with Engine(folder, db), TestClient(create_app(rulesets=folder, db=db)) as client:
        yield client, tokens(db)


def test_a_batch_names_each_unknown_field_of_its_body(app_client: tuple[TestClient, dict[str, str]]) -> None:
    client, made = app_client
    url = "/v1/accounts/default/events:batch"
    problem = is_problem(client.post(url, json={"events": [], "colour": 1}, headers=bearer(made["all"])), 422)
    assert problem["errors"] == [{"field": "colour", "message": "unknown field"}]
    problem = is_problem(client.post(url, json={"event": [DEAL_EVENT]}, headers=bearer(made["all"])), 422)
    assert problem["errors"] == [
        {"field": "events", "message": "required list"},
        {"field": "event", "message": "unknown field"},
    ]
    assert client.post(url, json={"events": []}, headers=bearer(made["all"])).json() == {"results": []}


def test_a_405_allows_every_method_of_the_path(app_client: tuple[TestClient, dict[str, str]]) -> None:
    client, _ = app_client
    answers = {
        path: client.options(f"/v1/accounts/default/{path}")
        for path in ("webhooks", "webhooks/1", "events", "bots/inbound/active")
    }
    assert {path: (a.status_code, a.headers["allow"]) for path, a in answers.items()} == {
        "webhooks": (405, "GET, POST"),
        "webhooks/1": (405, "DELETE"),
        "events": (405, "POST"),
        "bots/inbound/active": (405, "PUT"),
    }


def test_a_body_over_the_limit_is_a_413_before_the_token_is_looked_at(
    app_client: tuple[TestClient, dict[str, str]],
) -> None:
    """docs/service.md: the size is checked first, whoever sends it, on every route that
    takes a body."""
    client, _ = app_client
    routes = [
        r
        for r in client.app.routes
        if isinstance(r, APIRoute) and "{account}" in r.path and r.body_field is None
    ]
    with_body = [
        (method, route.path)
        for route in routes
        for method in route.methods
        if "requestBody" in (route.openapi_extra or {})
    ]
    assert len(with_body) >= 8
    big = b"{" + b" " * MAX_BODY_BYTES + b"}"
    for method, path in with_body:
        url = path.replace("{account}", "default").replace("{bot}", "inbound").replace("{user}", "anna")
        answer = client.request(method, url, content=big, headers={"Content-Type": "application/json"})
        assert answer.status_code == 413, (method, path, answer.text)
