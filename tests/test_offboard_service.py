"""Offboarding and activation through the HTTP API of a real ``salesbot serve`` process:
``POST /v1/accounts/{account}/users/{user}/offboard`` and ``.../activate``, ``GET .../users``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from admin_site import make_tokens
from admin_site import write_rules as write_site_rules
from fastapi.testclient import TestClient
from test_admin import sign_in
from test_offboard import BOTS, SIX_MOVED, TEAM, fill
from test_service import bearer, is_problem, serve, tokens

from salesbot_core import Engine
from salesbot_core.http.app import create_app
from salesbot_core.http.users import MAX_OFFBOARD_RECORDS

USERS = "/v1/accounts/default/users"


@pytest.fixture
def rules(write_rules: Callable[..., Path]) -> Path:
    return write_rules(**{"team.yaml": TEAM, "bots.yaml": BOTS})


def served(
    rules: Path, db: str, tmp_path: Path, per_bot: int
) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    """A serve process on a store where each of deals, people and tasks made ``per_bot``
    records, and the test's tokens."""
    with Engine(rules, db) as engine:
        fill(engine, per_bot)
    made = tokens(db)
    for client in serve(rules, db, tmp_path):
        yield client, made


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def api(
    request: pytest.FixtureRequest, rules: Path, tmp_path: Path
) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    """A serve process on SQLite; on PostgreSQL too in the slow run (the engine's offboarding
    is tested on both stores in test_offboard.py; a serve process costs seconds)."""
    db = str(tmp_path / "s.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    yield from served(rules, db, tmp_path, 6)


def test_offboarding_over_http_moves_each_record_once_and_answers_the_same_again(
    api: tuple[httpx.Client, dict[str, str]],
) -> None:
    client, made = api
    auth = bearer(made["manage"])
    before = datetime.now(UTC)
    first = client.post(f"{USERS}/anna/offboard", json={"operation": "anna-leaves"}, headers=auth)
    assert first.status_code == 200, first.text
    expected = {"account": "default", "user": "anna", "operation": "anna-leaves", **SIX_MOVED}
    assert first.json() == expected
    again = client.post(f"{USERS}/anna/offboard", json={"operation": "anna-leaves"}, headers=auth)
    assert (again.status_code, again.json()) == (200, expected)
    # The operation is anna's: for bartek it is a conflict, and nothing of his changes.
    other = client.post(f"{USERS}/bartek/offboard", json={"operation": "anna-leaves"}, headers=auth)
    assert is_problem(other, 409)["errors"] == [
        {
            "field": "operation",
            "message": "operation 'anna-leaves' offboards user 'anna', not 'bartek'; take a new operation id",
        }
    ]
    # Each of anna's six records was moved once: its creation, then one move.
    read = bearer(made["read"])
    for entity, record_id in (("deal", "d0"), ("person", "p0"), ("task", "t1")):
        explained = client.get(f"/v1/accounts/default/records/{entity}/{record_id}/explain", headers=read)
        assert [o["event_id"] for o in explained.json()["outcomes"]] == [
            f"{entity}-{record_id[1:]}",
            f"list/anna-leaves/{entity}/{record_id}",
        ]
    users = client.get(USERS, headers=read).json()["users"]
    anna = users[0]
    assert {k: anna[k] for k in ("id", "active", "switched_by")} == {
        "id": "anna",
        "active": False,
        "switched_by": "api",
    }
    assert before <= datetime.fromisoformat(anna["switched_at"]) <= datetime.now(UTC)
    assert [(u["id"], u["active"], u["switched_by"]) for u in users[1:]] == [
        ("bartek", True, None),
        ("celina", True, None),
        ("jan", True, None),
        ("olga", True, None),
    ]
    back = client.post(f"{USERS}/anna/activate", headers=auth)
    assert (back.status_code, back.json()) == (200, {"account": "default", "user": "anna", "active": True})
    anna = client.get(USERS, headers=read).json()["users"][0]
    assert (anna["active"], anna["switched_by"]) == (True, "api")


def test_offboarding_errors_are_problems_naming_the_field(api: tuple[httpx.Client, dict[str, str]]) -> None:
    client, made = api
    auth = bearer(made["manage"])
    unknown = is_problem(client.post(f"{USERS}/zoe/offboard", json={"operation": "x"}, headers=auth), 404)
    assert unknown["detail"] == "no user 'zoe' in account 'default'"
    assert is_problem(client.post(f"{USERS}/zoe/activate", headers=auth), 404)["detail"] == unknown["detail"]
    bad_bot = client.post(f"{USERS}/anna/offboard", json={"operation": "x", "to_bot": "nope"}, headers=auth)
    assert is_problem(bad_bot, 422)["errors"] == [
        {"field": "to_bot", "message": "no bot 'nope' in account 'default'"}
    ]
    missing = is_problem(client.post(f"{USERS}/anna/offboard", json={"to_bot": "spare"}, headers=auth), 422)
    assert missing["errors"] == [{"field": "operation", "message": "Field required"}]
    extra = client.post(f"{USERS}/anna/offboard", json={"operation": "x", "user": "bartek"}, headers=auth)
    assert is_problem(extra, 422)["errors"] == [
        {"field": "user", "message": "Extra inputs are not permitted"}
    ]
    too_long = client.post(f"{USERS}/anna/offboard", json={"operation": "o" * 190}, headers=auth)
    assert is_problem(too_long, 422)["detail"].startswith("list operation 'ooo")
    not_json = client.post(f"{USERS}/anna/offboard", content=b"operation=x", headers=auth)
    is_problem(not_json, 415)
    forbidden = client.post(f"{USERS}/anna/offboard", json={"operation": "x"}, headers=bearer(made["read"]))
    assert is_problem(forbidden, 403)["detail"] == "the token lacks the 'manage' scope"
    # Nothing of it switched anna off or moved a record.
    users = client.get(USERS, headers=bearer(made["read"])).json()["users"]
    assert (users[0]["id"], users[0]["active"], users[0]["switched_by"]) == ("anna", True, None)
    explained = client.get("/v1/accounts/default/records/deal/d0/explain", headers=bearer(made["read"]))
    assert len(explained.json()["outcomes"]) == 1

    # The routes in the OpenAPI document, with their scopes and the body's fields.
    paths = client.get("/openapi.json").json()["paths"]
    offboard = paths["/v1/accounts/{account}/users/{user}/offboard"]["post"]
    assert offboard["x-salesbot-scope"] == "manage"
    schema = offboard["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["operation"] and set(schema["properties"]) == {"operation", "to_bot"}
    assert paths["/v1/accounts/{account}/users/{user}/activate"]["post"]["x-salesbot-scope"] == "manage"
    assert paths["/v1/accounts/{account}/users"]["get"]["x-salesbot-scope"] == "read"


@pytest.mark.slow
def test_a_long_offboarding_takes_several_requests_with_the_same_operation(
    rules: Path, tmp_path: Path
) -> None:
    for client, made in served(rules, str(tmp_path / "s.db"), tmp_path, 1_200):
        auth = bearer(made["manage"])
        answers = []
        while not answers or not answers[-1]["done"]:
            answer = client.post(f"{USERS}/anna/offboard", json={"operation": "big"}, headers=auth)
            assert answer.status_code == 200, answer.text
            answers.append(answer.json())
        assert [(a["records_moved"], a["remaining"]) for a in answers] == [
            (MAX_OFFBOARD_RECORDS, 1_100 - MAX_OFFBOARD_RECORDS),
            (1_100, 0),
        ]
        spread = answers[-1]["moved"]
        assert sorted(spread) == ["deals", "people", "tasks"]
        assert sum(n for per_bot in spread.values() for n in per_bot.values()) == 1_100
        assert all(max(c.values()) - min(c.values()) <= 1 for c in spread.values()), spread
        final = client.post(f"{USERS}/anna/offboard", json={"operation": "big"}, headers=auth).json()
        assert final == answers[-1]


def test_the_bot_page_shows_who_switched_a_pool_user_off_and_when(tmp_path: Path) -> None:
    db = str(tmp_path / "salesbot.db")
    folder = write_site_rules(tmp_path / "rulesets")
    with Engine(folder, db) as engine:
        engine.set_user_active("default", "bartek", False, by="cli")
        [at] = [state.switch.at for state in engine.users("default") if state.switch]
    made = make_tokens(db)
    with TestClient(create_app(rulesets=folder, db=db)) as client:
        sign_in(client, made["page"])
        page = client.get("/a/default/bots/inbound")
    assert page.status_code == 200
    row = next(line for line in page.text.splitlines() if "<code>bartek</code>" in line)
    assert f'<td>deactivated <small class="who">switched off by cli at {at}</small></td>' in row
    anna = next(line for line in page.text.splitlines() if "<code>anna</code>" in line)
    assert "switched" not in anna
