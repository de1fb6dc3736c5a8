"""Per-account rate limits of ``salesbot serve``: the 429 contract, nothing done of a
refused request, the operator's limits per account (API, command line, store), and the
defaults. The fairness of a real ``salesbot serve`` under a flood is ``test_fairness``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_runner import salesbot
from fastapi.testclient import TestClient
from starlette.responses import PlainTextResponse
from store_queries import rows
from test_observability import samples, value
from test_rules_api import make_tokens
from test_service import DEAL_EVENT, bearer, rules, tokens

from salesbot_core import Engine
from salesbot_core.engine import open_store
from salesbot_core.http.app import create_app
from salesbot_core.http.common import PROBLEM_JSON, Service
from salesbot_core.http.observability import Observer
from salesbot_core.http.ratelimit import ENV_WORKERS, Limits, RateLimits
from salesbot_core.registry import make_plugin_manager
from salesbot_core.store import AccountRow
from salesbot_core.token_bucket import Rate
from salesbot_core.vocabulary import RATE_BURST_VARIABLE, RATE_LIMIT_VARIABLE
from salesbot_plugins.migrations import STEPS, step_11

#: One token every 100 s, two at first: the third request in a test is refused.
SLOW = {RATE_LIMIT_VARIABLE: "0.01", RATE_BURST_VARIABLE: "2"}
URL = "/v1/accounts/default/events"


def event(n: int, account: str = "default") -> dict[str, Any]:
    bot = "inbound" if account == "default" else "secret-bot"
    record = {"entity": "deal", "id": f"d{n}", "owners": [f"bot:{bot}"]}
    return {**DEAL_EVENT, "id": f"e{n}", "record": record}


def decided(db: str, account: str) -> list[str]:
    """The event ids of the account that have an outcome (and those with a kept payload)."""
    ids = rows(db, "SELECT event_id FROM outcomes WHERE account = ? ORDER BY event_id", (account,))
    kept = rows(
        db,
        "SELECT event_id FROM outcomes WHERE account = ? AND payload IS NOT NULL ORDER BY event_id",
        (account,),
    )
    assert kept == ids
    return [event_id for (event_id,) in ids]


@pytest.fixture
def prepared(write_rules: Callable[..., Path], tmp_path: Path) -> tuple[Path, str, dict[str, str]]:
    folder = rules(write_rules)
    db = str(tmp_path / "salesbot.db")
    with Engine(folder, db):
        pass
    return folder, db, tokens(db)


def test_over_its_limit_an_account_gets_a_429_problem_and_nothing_of_the_request_is_done(
    prepared: tuple[Path, str, dict[str, str]],
) -> None:
    folder, db, made = prepared
    auth = bearer(made["all"])
    with TestClient(create_app(rulesets=folder, db=db, environ=SLOW)) as client:
        assert client.post(URL, json=event(1), headers=auth).status_code == 200
        batch = client.post(f"{URL}:batch", json={"events": [event(2), event(3)]}, headers=auth)
        assert batch.status_code == 200
        refused = client.post(URL, json=event(4), headers=auth)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == PROBLEM_JSON
        # one token every 100 s, and none left: the next in 100 s (less the test's few ms)
        assert refused.headers["retry-after"] == "100"
        assert refused.json() == {
            "type": "urn:salesbot:problem:rate-limited",
            "title": "Too Many Requests",
            "status": 429,
            "detail": "the account 'default' is over its rate limit of 0.01 requests a second (burst 2): "
            "retry after 100 s",
        }
        whole = client.post(f"{URL}:batch", json={"events": [event(5), event(6)]}, headers=auth)
        assert whole.status_code == 429
        # every route of the account, reads too; not another account's
        assert client.get("/v1/accounts/default/bots", headers=auth).status_code == 429
        beta = client.post("/v1/accounts/beta/events", json=event(7, "beta"), headers=bearer(made["beta"]))
        assert beta.status_code == 200, beta.text
        assert client.get("/healthz").status_code == 200
        scraped = samples(client.get("/metrics").text)
    assert value(scraped, "salesbot_rate_limited_total", account="default") == 3
    assert value(scraped, "salesbot_rate_limited_total", account="beta") == 0
    refused = {"method": "POST", "route": "(rate limited)", "status": "4xx"}
    assert value(scraped, "salesbot_http_requests_total", **refused) == 2
    assert value(scraped, "salesbot_events_total", account="default", status="assigned") == 3
    # the refused event and batch: no outcome, no payload, no part of the batch
    assert decided(db, "default") == ["e1", "e2", "e3"]
    assert decided(db, "beta") == ["e7"]


def test_a_request_whose_token_is_refused_gives_its_token_back(
    prepared: tuple[Path, str, dict[str, str]],
) -> None:
    folder, db, made = prepared
    environ = {RATE_LIMIT_VARIABLE: "0.01", RATE_BURST_VARIABLE: "1"}
    with TestClient(create_app(rulesets=folder, db=db, environ=environ)) as client:
        # strangers naming the account do not spend its budget
        for headers in ({}, bearer("sb_not-a-token"), bearer("sb_not-a-token")):
            assert client.post(URL, json=event(1), headers=headers).status_code == 401
        assert client.post(URL, json=event(1), headers=bearer(made["all"])).status_code == 200
        assert client.post(URL, json=event(2), headers=bearer(made["all"])).status_code == 429
    assert decided(db, "default") == ["e1"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def ok(scope: Any, receive: Any, send: Any) -> None:
    await PlainTextResponse("ok")(scope, receive, send)


def test_retry_after_is_the_seconds_until_the_workers_next_token_rounded_up(
    prepared: tuple[Path, str, dict[str, str]],
) -> None:
    folder, db, _ = prepared
    service, clock = Service(lambda: Engine(folder, db)), Clock()
    service.start()
    try:
        # 2 a second over 2 workers: this one allows 1 a second, a burst of 1
        limited = RateLimits(ok, service, Observer(), Limits(rate=2, burst=1, workers=2), clock)
        client = TestClient(limited)
        path = "/v1/accounts/default/anything"
        assert client.get(path).status_code == 200
        refused = client.get(path)
        assert (refused.status_code, refused.headers["retry-after"]) == (429, "1")
        assert "rate limit of 2 requests a second (burst 1)" in refused.json()["detail"]
        clock.now = 0.25
        assert client.get(path).headers["retry-after"] == "1"  # 0.75 s, rounded up
        clock.now = 1.0
        assert client.get(path).status_code == 200
        # the operator's own routes over the account, and the rest, are never limited
        assert [client.get(p).status_code for p in ("/v1/accounts/default", "/v1/accounts", "/healthz")] == [
            200,
            200,
            200,
        ]
        slow = TestClient(RateLimits(ok, service, Observer(), Limits(rate=0.4, burst=1), clock))
        assert slow.get(path).status_code == 200
        clock.now = 1.5
        assert slow.get(path).headers["retry-after"] == "2"  # 0.2 of a token came: 0.8 / 0.4 s to go
    finally:
        service.stop()


def test_serves_defaults_and_each_accounts_own_limit() -> None:
    assert Limits.from_env({}) == Limits(0, None, 1)
    assert Limits.from_env({}).of(None) is None  # no limit unless set
    given = Limits.from_env({RATE_LIMIT_VARIABLE: "10", RATE_BURST_VARIABLE: "30", ENV_WORKERS: "2"})
    assert given == Limits(10, 30, 2)
    assert given.of(None) == Rate(10, 30)  # an account from a rules folder: no row
    row = AccountRow("acme", "active", True, "growth", 1, "t", "t")
    assert given.of(row) == Rate(10, 30)  # a row without limits of its own
    assert given.of(row._replace(rate_limit=2.5)) == Rate(2.5, 30)
    assert given.of(row._replace(rate_burst=4)) == Rate(10, 4)
    assert given.of(row._replace(rate_limit=0)) is None  # its own: none
    assert Limits(rate=2.5).of(None) == Rate(2.5, 3)  # the burst: the rate rounded up
    assert Limits(rate=0.2).of(None) == Rate(0.2, 1)
    assert Limits().of(row._replace(rate_limit=7.0)) == Rate(7, 7)
    wrong = ((RATE_LIMIT_VARIABLE, "fast"), (RATE_LIMIT_VARIABLE, "-1"), (RATE_BURST_VARIABLE, "0"))
    for name, text in wrong:
        with pytest.raises(ValueError, match=f"{name} must be a number from") as info:
            Limits.from_env({name: text})
        assert info.value.args[0].endswith(f"not {text!r}")


def test_the_operator_sets_an_accounts_own_limit_and_null_gives_back_the_default(tmp_path: Path) -> None:
    db = str(tmp_path / "salesbot.db")
    made = make_tokens(db)
    admin, acme = bearer(made["admin"]), bearer(made["acme"])
    with TestClient(create_app(rulesets=None, db=db, environ={RATE_LIMIT_VARIABLE: "0"})) as client:
        created = client.post("/v1/accounts", json={"account": "acme"}, headers=admin).json()
        assert (created["rate_limit"], created["rate_burst"]) == (None, None)
        versions = "/v1/accounts/acme/versions"
        changed = client.patch("/v1/accounts/acme", json={"rate_limit": 0.01, "rate_burst": 1}, headers=admin)
        assert changed.status_code == 200, changed.text
        assert (changed.json()["rate_limit"], changed.json()["rate_burst"], changed.json()["plan"]) == (
            0.01,
            1,
            "professional",
        )
        assert [client.get(versions, headers=acme).status_code for _ in range(3)] == [200, 429, 429]
        # the operator's routes over the account are not the account's: never limited
        assert [client.get("/v1/accounts/acme", headers=admin).status_code for _ in range(3)] == [200] * 3
        # another field changed: the limit stays
        suspended = client.patch("/v1/accounts/acme", json={"status": "suspended"}, headers=admin).json()
        assert (suspended["status"], suspended["rate_limit"]) == ("suspended", 0.01)
        client.patch("/v1/accounts/acme", json={"status": "active"}, headers=admin)
        back = client.patch("/v1/accounts/acme", json={"rate_limit": None}, headers=admin).json()
        assert (back["rate_limit"], back["rate_burst"]) == (None, 1)  # serve's default: none
        assert [client.get(versions, headers=acme).status_code for _ in range(3)] == [200] * 3
        for wrong, field in (({"rate_burst": 0}, "rate_burst"), ({"rate_limit": -1}, "rate_limit")):
            refused = client.patch("/v1/accounts/acme", json=wrong, headers=admin)
            assert refused.status_code == 422
            assert [e["field"] for e in refused.json()["errors"]] == [field]
        listed = client.get("/v1/accounts", headers=admin).json()["accounts"]
        assert [(a["account"], a["rate_limit"], a["rate_burst"]) for a in listed] == [("acme", None, 1)]


def test_the_store_keeps_an_accounts_limit_and_empties_it(store_url: str, tmp_path: Path) -> None:
    Engine(None, store_url).close()
    store = open_store(make_plugin_manager(), store_url)
    try:
        assert store.create_account("acme", "growth", True)
        assert store.update_account("acme", limits={"rate_limit": 2.5, "rate_burst": 7})
        row = store.accounts("acme")[0]
        assert (row.rate_limit, row.rate_burst) == (2.5, 7)
        assert store.update_account("acme", plan="automation")  # the limit stays
        row = store.accounts("acme")[0]
        assert (row.plan, row.rate_limit, row.rate_burst) == ("automation", 2.5, 7)
        assert store.update_account("acme", limits={"rate_limit": None})
        row = store.accounts("acme")[0]
        assert (row.plan, row.rate_limit, row.rate_burst) == ("automation", None, 7)
        assert [(r.account, r.rate_burst) for r, _ in store.current_rules()] == [("acme", 7)]
        with pytest.raises(ValueError, match="not a rate limit column"):
            store.update_account("acme", limits={"plan; DROP TABLE accounts": 1})
        assert not store.update_account("nobody", limits={"rate_burst": 1})
    finally:
        store.close()


def test_the_limits_step_only_expands_the_schema() -> None:
    # an older salesbot names the accounts' columns it reads: it runs on beside this one
    assert [step.expand_only for step in STEPS if step.run is step_11] == [True]


def test_account_set_rate_limit_on_the_command_line(tmp_path: Path) -> None:
    db = str(tmp_path / "salesbot.db")

    def ok(*args: str) -> str:
        done = salesbot("account", *args, "--db", db)
        assert done.exit_code == 0, done.stderr
        return done.stdout

    ok("create", "acme")
    base = "account 'acme': active, professional, enabled, version 0"
    set_both = ok("set", "acme", "--rate-limit", "5", "--rate-burst", "10")
    assert set_both == f"{base}, rate limit 5/s, burst 10\n"
    assert ok("set", "acme", "--rate-limit", "0") == f"{base}, rate limit none, burst 10\n"
    assert ok("set", "acme", "--rate-limit", "default") == f"{base}, rate limit default, burst 10\n"
    assert json.loads(ok("list", "--json"))["accounts"][0] | {"version": 0} == {
        "account": "acme",
        "status": "active",
        "plan": "professional",
        "enabled": True,
        "version": 0,
        "rate_limit": None,
        "rate_burst": 10,
    }
    assert ok("set", "acme", "--rate-burst", "default") == f"{base}\n"
    for wrong in (["--rate-limit", "fast"], ["--rate-burst", "0"], ["--rate-limit", "-1"]):
        done = salesbot("account", "set", "acme", *wrong, "--db", db)
        assert done.exit_code == 2 and f"Invalid value for '{wrong[0]}'" in done.stderr, done.stderr
    nothing = salesbot("account", "set", "acme", "--db", db)
    assert (nothing.exit_code, nothing.stderr) == (
        1,
        "error: nothing to change: give --plan, --suspend/--resume, --enable/--disable, --rate-limit or "
        "--rate-burst\n",
    )


@pytest.mark.slow
def test_the_rate_limit_docs_run_as_written_against_a_real_serve(tmp_path: Path) -> None:
    """docs/operations.md's "Rate limits" blocks: the account commands print what they
    say, and `salesbot serve` with the options shown answers acme's requests past the
    burst with the 429 that docs/service.md shows, word for word."""
    import os
    import re
    import shlex
    import subprocess

    from test_service import serve

    from salesbot_core.tokens import create_token

    docs = Path(__file__).parent.parent / "docs"
    section = (docs / "operations.md").read_text(encoding="utf-8").split("## Rate limits\n")[1]
    served, commands = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(
        ["bash", "-e", "-c", commands],
        cwd=tmp_path,
        env={**os.environ, "PATH": path, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    quoted = re.findall(r"^# prints: (.+)$", commands, re.MULTILINE)
    assert len(quoted) == 2 and done.stdout.splitlines()[-2:] == quoted
    db = str(tmp_path / "salesbot.db")
    store = open_store(make_plugin_manager(), db)
    try:
        auth = bearer(create_token(store, "acme", "crm"))
    finally:
        store.close()
    words = shlex.split(served)
    assert words[:2] == ["salesbot", "serve"]
    shown = (docs / "service.md").read_text(encoding="utf-8").split("```http\n")[1].split("```")[0]
    head, body = shown.split("\n\n")
    for client in serve(tmp_path, db, tmp_path, *words[2:]):
        # one keep-alive connection reaches one of the 2 workers: its half of the burst first
        answers = [client.get("/v1/accounts/acme/versions", headers=auth) for _ in range(30)]
        assert [a.status_code for a in answers[:20]] == [200] * 20
        refused = next(a for a in answers if a.status_code == 429)
        assert f"Retry-After: {refused.headers['retry-after']}" in head.splitlines()
        assert refused.json() == json.loads(body)
