"""An account's rules as data over HTTP: a real ``salesbot serve --rules-from store``
process on loopback, driven with httpx, as a CRM and an operator would."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from test_observability import served as serve_logged
from test_service import bearer

from salesbot_core import Engine
from salesbot_core.http.app import create_app
from salesbot_core.http.rules import DraftDocument, Preview, Versions
from salesbot_core.tokens import create_token

TEAM: dict[str, Any] = {
    "users": [{"id": "anna"}, {"id": "bartek"}, {"id": "celina"}],
    "bots": [{"id": "inbound", "entity": "deal", "users": ["anna", "bartek"]}],
}


class Api:
    """The served process and a client per token."""

    def __init__(self, client: httpx.Client, tokens: dict[str, str]):
        self.client, self.tokens = client, tokens

    def __call__(self, token: str, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**bearer(self.tokens[token]), **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)

    def write(self, token: str, method: str, path: str, version: int, **kw: Any) -> httpx.Response:
        return self(token, method, path, headers={"If-Match": f'"v{version}"'}, **kw)


def make_tokens(db: str) -> dict[str, str]:
    """The store created (``Engine``), and tokens: acme's of every scope and of each one,
    beta's, and the operator's admin token."""
    with Engine(None, db) as engine:
        store = engine.store
        made = {"acme": create_token(store, "acme", "crm")}
        made |= {scope: create_token(store, "acme", f"only-{scope}", [scope]) for scope in ("read", "manage")}
        made["beta"] = create_token(store, "beta", "beta-crm")
        made["admin"] = create_token(store, "*", "ops")
    return made


def served(db: str, cwd: Path, *options: str) -> Iterator[Api]:
    tokens = make_tokens(db)
    # The log goes to a file (a pipe nobody reads would fill up and stall the server).
    for _, client in serve_logged(cwd, db, cwd, "--rules-from", "store", *options):
        api = Api(client, tokens)
        for account, plan in (("acme", "professional"), ("beta", "automation")):
            created = api("admin", "POST", "/v1/accounts", json={"account": account, "plan": plan})
            assert (created.status_code, created.json()["version"]) == (201, 0)
        yield api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from served(str(tmp_path / "salesbot.db"), tmp_path)


def publish_team(api: Api) -> None:
    for n, user in enumerate(TEAM["users"]):
        assert (
            api.write("acme", "PUT", f"/v1/accounts/acme/users/{user['id']}", n, json=user).status_code == 200
        )
    bot = TEAM["bots"][0]
    assert api.write("acme", "PUT", "/v1/accounts/acme/bots/inbound", 3, json=bot).json()["version"] == 4


def deal(event_id: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "kind": "created",
        "record": {"entity": "deal", "id": f"d-{event_id}", "owners": ["bot:inbound"]},
    }


def test_an_account_neither_reads_nor_writes_another(api: Api) -> None:
    publish_team(api)
    assert api("acme", "GET", "/v1/accounts/acme/bots/inbound").json() == TEAM["bots"][0]
    for method, path in (
        ("GET", "/v1/accounts/acme/bots/inbound"),
        ("GET", "/v1/accounts/acme/versions"),
        ("PUT", "/v1/accounts/acme/bots/inbound"),
        ("DELETE", "/v1/accounts/acme/users/anna"),
    ):
        answered = api.write("beta", method, path, 4, json={"users": ["anna"]})
        assert (answered.status_code, answered.json()["type"]) == (404, "urn:salesbot:problem:not-found")
    assert api("acme", "GET", "/v1/accounts/beta/versions").status_code == 404
    # The operator's routes are the admin token's only.
    assert api("acme", "GET", "/v1/accounts").status_code == 403
    assert api("acme", "PATCH", "/v1/accounts/acme", json={"plan": "growth"}).status_code == 403
    assert [a["account"] for a in api("admin", "GET", "/v1/accounts").json()["accounts"]] == ["acme", "beta"]


def test_reading_needs_read_changing_needs_manage_and_if_match(api: Api) -> None:
    publish_team(api)
    read = api("read", "GET", "/v1/accounts/acme/bots/inbound")
    assert (read.status_code, read.headers["ETag"]) == (200, '"v4"')
    refused = api.write("read", "PUT", "/v1/accounts/acme/bots/inbound", 4, json={"users": ["anna"]})
    assert (refused.status_code, refused.json()["detail"]) == (403, "the token lacks the 'manage' scope")
    assert api("manage", "GET", "/v1/accounts/acme/bots/inbound").status_code == 403
    bare = api("manage", "PUT", "/v1/accounts/acme/bots/inbound", json={"users": ["anna"]})
    assert (bare.status_code, bare.json()["type"]) == (428, "urn:salesbot:problem:precondition-required")
    changed = api.write(
        "manage",
        "PUT",
        "/v1/accounts/acme/bots/inbound",
        4,
        json={"users": ["anna"]},
        params={"message": "anna only"},
    )
    assert (changed.status_code, changed.headers["ETag"], changed.json()) == (
        200,
        '"v5"',
        {"account": "acme", "version": 5},
    )
    newest = api("read", "GET", "/v1/accounts/acme/versions").json()["versions"][0]
    assert {k: newest[k] for k in ("version", "author", "message", "restored_from")} == {
        "version": 5,
        "author": "only-manage",
        "message": "anna only",
        "restored_from": None,
    }
    bots = api("read", "GET", "/v1/accounts/acme/bots")
    assert (bots.json()["version"], bots.headers["ETag"]) == (5, '"v5"')


def test_two_editors_racing_on_one_version_one_wins_the_other_gets_412(api: Api) -> None:
    publish_team(api)
    start = threading.Barrier(2)

    def edit(users: list[str]) -> httpx.Response:
        start.wait()
        return api.write(
            "acme", "PUT", "/v1/accounts/acme/bots/inbound", 4, json={"entity": "deal", "users": users}
        )

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(edit, [["anna"], ["bartek"]]))
    assert sorted(a.status_code for a in answers) == [200, 412]
    lost = next(a for a in answers if a.status_code == 412)
    assert (lost.json()["current_version"], lost.headers["ETag"]) == (5, '"v5"')
    assert "the rules are at version 5, not 4" in lost.json()["detail"]
    won = next(a for a in answers if a.status_code == 200)
    assert won.json()["version"] == 5


def test_a_restore_publishes_an_earlier_version_again(api: Api) -> None:
    publish_team(api)
    api.write(
        "acme", "PUT", "/v1/accounts/acme/bots/inbound", 4, json={"entity": "deal", "users": ["celina"]}
    )
    restored = api.write("acme", "POST", "/v1/accounts/acme/versions/4/restore", 5)
    assert (restored.status_code, restored.json()["version"]) == (200, 6)
    assert api("acme", "GET", "/v1/accounts/acme/bots/inbound").json()["users"] == ["anna", "bartek"]
    six = api("acme", "GET", "/v1/accounts/acme/versions/6").json()
    assert (six["restored_from"], six["message"], six["author"]) == (4, "restore version 4", "crm")
    assert six["rules"] == api("acme", "GET", "/v1/accounts/acme/versions/4").json()["rules"]
    diff = api("acme", "GET", "/v1/accounts/acme/versions/6/diff", params={"against": 5}).json()
    assert diff["changes"] == [
        {"op": "changed", "path": "bots.inbound.users", "before": ["celina"], "after": ["anna", "bartek"]}
    ]
    assert [v["version"] for v in api("acme", "GET", "/v1/accounts/acme/versions").json()["versions"]] == [
        6,
        5,
        4,
        3,
        2,
        1,
    ]


def test_an_invalid_bot_is_a_422_naming_its_field_in_the_accounts_rules(api: Api) -> None:
    publish_team(api)
    api.write("acme", "PUT", "/v1/accounts/acme/bots/first", 4, json={"users": ["anna"]})
    invalid = api.write("acme", "PUT", "/v1/accounts/acme/bots/inbound", 5, json={"users": ["anna", "zofia"]})
    assert (invalid.status_code, invalid.json()["type"]) == (422, "urn:salesbot:problem:invalid-rules")
    assert invalid.json()["errors"] == [
        {
            "field": "bots[0].users[1]",
            "message": "unknown user 'zofia': declare it under 'users' in a ruleset file of account 'acme'",
        }
    ]
    assert invalid.headers.get("ETag") is None
    assert api("acme", "GET", "/v1/accounts/acme/bots/inbound").headers["ETag"] == '"v5"'
    odd = api("acme", "PUT", "/v1/accounts/acme/bots/inbound", json={}, headers={"If-Match": "5"})
    assert odd.status_code == 428
    assert api("acme", "GET", "/v1/accounts/acme/bots/nope").status_code == 404


def test_a_server_of_a_rulesets_folder_says_where_its_rules_are_edited(tmp_path: Path) -> None:
    folder = tmp_path / "rulesets"
    folder.mkdir()
    (folder / "acme.yaml").write_text(
        "account: acme\nusers: [{id: anna}]\nbots: [{id: inbound, users: [anna]}]\n"
    )
    db = str(tmp_path / "salesbot.db")
    with Engine(folder, db) as engine:
        token = create_token(engine.store, "acme", "crm")
    with TestClient(create_app(rulesets=folder, db=db)) as client:
        answered = client.get("/v1/accounts/acme/bots/inbound", headers=bearer(token))
    assert (answered.status_code, answered.json()["type"]) == (409, "urn:salesbot:problem:rules-in-folder")
    assert "salesbot rules push" in answered.json()["detail"]


def test_the_plan_limits_every_write(api: Api) -> None:
    beta = "/v1/accounts/beta"
    assert api.write("beta", "PUT", f"{beta}/users/zofia", 0, json={}).status_code == 200
    assert api.write("beta", "PUT", f"{beta}/bots/first", 1, json={"users": ["zofia"]}).status_code == 200
    second = api.write("beta", "PUT", f"{beta}/bots/second", 2, json={"users": ["zofia"]})
    assert second.status_code == 422
    assert second.json()["errors"] == [
        {
            "field": "bots[1]",
            "message": "plan 'automation' allows 1 bot(s) per account; "
            "'first' in account beta is already one",
        }
    ]
    # A plan too small for the account's rules is refused to the operator too.
    publish_team(api)
    api.write("acme", "PUT", "/v1/accounts/acme/bots/other", 4, json={"users": ["anna"]})
    smaller = api("admin", "PATCH", "/v1/accounts/acme", json={"plan": "automation"})
    assert smaller.status_code == 422 and smaller.json()["errors"][0]["field"] == "bots[1]"
    assert api("admin", "GET", "/v1/accounts/acme").json()["plan"] == "professional"


def test_the_plan_and_activation_are_the_operators(api: Api) -> None:
    settings = api("acme", "GET", "/v1/accounts/acme/settings")
    assert settings.json() == {"plan": "professional", "enabled": True}
    refused = api.write(
        "acme", "PUT", "/v1/accounts/acme/settings", 0, json={"plan": "growth", "multiple_owners": True}
    )
    assert (refused.status_code, refused.json()["errors"][0]["field"]) == (403, "settings.plan")
    # Sent back as read, they are ignored: the account's own settings are published.
    kept = api.write(
        "acme", "PUT", "/v1/accounts/acme/settings", 0, json={**settings.json(), "multiple_owners": True}
    )
    assert kept.json()["version"] == 1
    assert api("acme", "GET", "/v1/accounts/acme/settings").json() == {
        "plan": "professional",
        "enabled": True,
        "multiple_owners": True,
    }


def test_a_sync_from_the_crm_reports_each_user(api: Api) -> None:
    publish_team(api)
    team = [{"id": "anna"}, {"id": "bartek", "name": "Bartek Nowak"}, {"id": "dorota"}]
    synced = api.write("acme", "PUT", "/v1/accounts/acme/users", 4, json={"users": team})
    assert synced.json() == {
        "account": "acme",
        "version": 5,
        "added": ["dorota"],
        "updated": ["bartek"],
        "deactivated": ["celina"],
        "unchanged": ["anna"],
    }
    assert api("acme", "GET", "/v1/accounts/acme/users/celina").json() == {"id": "celina", "active": False}


def test_a_user_in_a_pool_is_removed_with_from_pools_in_one_version(api: Api) -> None:
    publish_team(api)
    refused = api.write("acme", "DELETE", "/v1/accounts/acme/users/anna", 4)
    assert (refused.status_code, refused.json()["bots"]) == (409, ["inbound"])
    assert "from_pools=true" in refused.json()["detail"]
    removed = api.write("acme", "DELETE", "/v1/accounts/acme/users/anna", 4, params={"from_pools": "true"})
    assert removed.json()["version"] == 5
    assert api("acme", "GET", "/v1/accounts/acme/bots/inbound").json()["users"] == ["bartek"]
    assert api("acme", "GET", "/v1/accounts/acme/users/anna").status_code == 404


def test_a_suspended_accounts_tokens_are_refused_the_operators_still_work(api: Api) -> None:
    publish_team(api)
    assert (
        api("admin", "PATCH", "/v1/accounts/acme", json={"status": "suspended"}).json()["status"]
        == "suspended"
    )
    for method, path in (("GET", "/v1/accounts/acme/bots"), ("POST", "/v1/accounts/acme/events")):
        refused = api("acme", method, path, json=deal("e1"))
        assert (refused.status_code, refused.json()["detail"]) == (
            403,
            "the account 'acme' is suspended: its tokens are refused",
        )
    assert api("admin", "GET", "/v1/accounts/acme/bots/inbound").status_code == 200
    assert api("beta", "GET", "/v1/accounts/beta/versions").status_code == 200
    api("admin", "PATCH", "/v1/accounts/acme", json={"status": "active"})
    assert api("acme", "GET", "/v1/accounts/acme/bots").status_code == 200


def test_a_draft_of_two_edits_is_previewed_then_published_as_one_version(api: Api) -> None:
    publish_team(api)
    for n in range(4):
        assert (
            api("acme", "POST", "/v1/accounts/acme/events", json=deal(f"e{n}")).json()["rules_version"] == 4
        )
    draft = "/v1/accounts/acme/drafts/celina-joins"
    book = api("acme", "GET", "/v1/accounts/acme/versions/4").json()["rules"]
    book["users"].append({"id": "dorota"})
    assert api.write("acme", "PUT", draft, 4, json=book).json()["base_version"] == 4
    book["bots"][0]["users"] = ["celina"]
    assert api.write("acme", "PUT", draft, 4, json=book).status_code == 200
    DraftDocument.model_validate(api("acme", "GET", draft).json())
    assert api("acme", "GET", draft).json()["rules"] == book
    preview = Preview.model_validate(
        api("acme", "POST", f"{draft}/preview", json={"since": "1d", "records": 4}).json()
    ).model_dump()
    assert preview["replay"]["events"] == 4
    assert [c["candidate"] for c in preview["replay"]["changes"]] == [["celina"]] * 4
    assert [(c["record_id"], c["actual"], c["draft"]) for c in preview["dry_run"]["changes"]] == [
        ("d-e0", ["anna"], ["celina"]),
        ("d-e1", ["bartek"], ["celina"]),
        ("d-e2", ["anna"], ["celina"]),
        ("d-e3", ["bartek"], ["celina"]),
    ]
    # The preview wrote nothing: the next deal still goes to anna.
    assert api("acme", "POST", "/v1/accounts/acme/events", json=deal("e4")).json()["owners_after"] == ["anna"]
    published = api.write("acme", "POST", f"{draft}/publish", 4, params={"message": "celina takes inbound"})
    assert published.json() == {"account": "acme", "version": 5}
    versions = Versions.model_validate(api("acme", "GET", "/v1/accounts/acme/versions").json()).model_dump()[
        "versions"
    ]
    assert [(v["version"], v["message"]) for v in versions[:2]] == [(5, "celina takes inbound"), (4, None)]
    assert api("acme", "GET", "/v1/accounts/acme/versions/5").json()["rules"] == book
    assert api("acme", "GET", draft).status_code == 404
    assert api("acme", "POST", "/v1/accounts/acme/events", json=deal("e5")).json()["owners_after"] == [
        "celina"
    ]


# -- Publishing while two workers route: no event lost or decided twice, each decided
# -- under a version published before it was answered, and none after it was stale.

THREADS, PUBLISHES = 8, 6
#: Events each sender posts once the last version is published.
AFTER = 3
POOLS = (["anna", "bartek"], ["celina"])


def race(api: Api, db: str) -> None:
    publish_team(api)  # version 4: pool anna, bartek
    published: dict[int, tuple[float, float]] = {4: (0.0, 0.0)}  # version: (asked, answered)
    answers: list[tuple[str, float, float, httpx.Response]] = []
    sending, done = threading.Event(), threading.Event()

    def publisher() -> None:
        sending.wait()
        try:
            for n in range(PUBLISHES):
                version = 4 + n
                time.sleep(0.1)
                asked = time.monotonic()
                bot = {"entity": "deal", "users": POOLS[(n + 1) % 2]}
                answer = api.write("acme", "PUT", "/v1/accounts/acme/bots/inbound", version, json=bot)
                assert answer.json()["version"] == version + 1
                published[version + 1] = (asked, time.monotonic())
        finally:
            done.set()

    def sender(thread: int) -> list[tuple[str, float, float, httpx.Response]]:
        sent: list[tuple[str, float, float, httpx.Response]] = []
        auth = bearer(api.tokens["acme"])
        with httpx.Client(base_url=api.client.base_url, headers=auth, timeout=60) as client:
            sending.set()
            after = 0
            # Until the publisher is done, and a few more: every version decides some.
            while after < AFTER and len(sent) < 1000:
                after += done.is_set()
                event_id = f"t{thread}-{len(sent)}"
                asked = time.monotonic()
                answer = client.post("/v1/accounts/acme/events", json=deal(event_id))
                sent.append((event_id, asked, time.monotonic(), answer))
        return sent

    with ThreadPoolExecutor(THREADS + 1) as pool:
        publishing = pool.submit(publisher)
        for sent in pool.map(sender, range(THREADS)):
            answers += sent
        publishing.result()
    assert Counter(a.status_code for *_, a in answers) == {200: len(answers)}
    outcomes = {event_id: answer.json() for event_id, _, _, answer in answers}
    assert len(outcomes) == len(answers) and not any(o["duplicate"] for o in outcomes.values())
    assert sorted(published) == list(range(4, 4 + PUBLISHES + 1))
    # The publishes fell among the events: every version decided some.
    assert {o["rules_version"] for o in outcomes.values()} == set(published)
    for event_id, asked, answered, _ in answers:
        outcome = outcomes[event_id]
        version = outcome["rules_version"]
        assert outcome["event_id"] == event_id
        # Decided under a version whose publish was asked before the answer came...
        assert published[version][0] < answered, (event_id, version)
        # ...and by its rules (the pools alternate)...
        assert outcome["owners_after"][0] in POOLS[(version - 4) % 2], (event_id, version, outcome)
        # ...and never under one stale when the event was sent.
        newest_before = max(v for v, (_, done) in published.items() if done < asked)
        assert version >= newest_before, (event_id, version, newest_before)
    # Every worker answers with the last version, and knows its bot (new connections each).
    last = f'"v{4 + PUBLISHES}"'
    for _ in range(6):
        with httpx.Client(base_url=api.client.base_url, headers=bearer(api.tokens["acme"])) as fresh:
            assert fresh.get("/v1/accounts/acme/bots").headers["ETag"] == last
            assert (
                fresh.put("/v1/accounts/acme/bots/inbound/active", json={"active": True}).status_code == 200
            )
    # The store logged each event once, and the versions in the order they were published.
    with Engine(None, db) as engine:
        logged = engine.store.recent_outcomes("acme", 10 * len(answers))
        assert sorted(o.event_id for _, o in logged) == sorted(outcomes)
        kept = engine.store.rules_versions("acme", 100)
        assert [v.version for v in kept] == list(range(4 + PUBLISHES, 0, -1))
        assert [v.created_at for v in kept] == sorted((v.created_at for v in kept), reverse=True)


@pytest.mark.slow
def test_publishing_while_two_workers_route_on_sqlite(tmp_path: Path) -> None:
    db = str(tmp_path / "salesbot.db")
    for api in served(db, tmp_path, "--workers", "2"):
        race(api, db)


@pytest.mark.slow
def test_publishing_while_two_workers_route_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    for api in served(postgres_url, tmp_path, "--workers", "2"):
        race(api, postgres_url)
