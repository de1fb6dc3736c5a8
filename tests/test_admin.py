"""The admin page without a browser: its store queries on both stores, sessions, CSRF,
tenancy, the Content-Security-Policy, deliveries, the pool now and the charts.

The scenarios in a real browser are in tests/test_admin_browser.py (slow).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from admin_site import BETA, DEFAULT, HOSTILE, IMG, SCRIPT, make_tokens, write_rules
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from store_queries import rows
from test_service import serve

from factories import TEAM, deal_event
from salesbot_core import Engine
from salesbot_core.admin import charts, sessions
from salesbot_core.admin.reads import pool_state
from salesbot_core.admin.views import HEADERS
from salesbot_core.errors import RulesetError
from salesbot_core.http.app import create_app
from salesbot_core.http.delivery import add_webhook
from salesbot_core.store import Activity, Switch
from salesbot_core.tokens import revoke_token
from salesbot_plugins.postgres_store import SCHEMA_VERSION as POSTGRES_VERSION
from salesbot_plugins.sqlite_store import SCHEMA_VERSION as SQLITE_VERSION

# --- The store queries, on SQLite and PostgreSQL ------------------------------------------


def test_a_switch_keeps_who_set_it_and_when(engine_on: Engine) -> None:
    before = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    engine_on.set_bot_active("default", "inbound", False, by="token default/page")
    after = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    found = engine_on.store.switches("default")
    assert list(found) == ["inbound"]
    assert found["inbound"][:2] == (False, "token default/page")
    assert before <= str(found["inbound"].at) <= after
    assert engine_on.store.get_switches("default") == {"inbound": False}
    # The engine honours it at the next event, as for `salesbot bot disable`.
    assert engine_on.handle(deal_event(1)).decisions[0].reason == "the bot is switched off"
    engine_on.set_bot_active("default", "inbound", True)
    assert engine_on.store.switches("default")["inbound"][:2] == (True, None)
    assert engine_on.store.switches("beta") == {}


def test_distribution_recent_outcomes_and_activity(engine_on: Engine) -> None:
    days = ["2025-01-01", "2025-01-01", "2025-01-01", "2025-01-10", "2025-01-10", "2025-01-10", "2025-01-10"]
    for n, day in enumerate(days, 1):
        engine_on.handle({**deal_event(n), "at": f"{day}T10:00:00Z"})
    engine_on.handle(deal_event(8, owners=["jan"]))  # no bot: an outcome with no decision
    store = engine_on.store
    assert store.distribution("default", "inbound") == {"anna": 3, "bartek": 2, "celina": 2}
    assert store.distribution("default", "inbound", "2025-01-05T00:00:00.000000Z") == {
        "anna": 2,
        "bartek": 1,
        "celina": 1,
    }
    assert store.distribution("default", "other") == {}
    latest = store.recent_outcomes("default", 3)
    assert [o.event_id for _, o in latest] == ["e8", "e7", "e6"]
    assert [seq for seq, _ in latest] == sorted((seq for seq, _ in latest), reverse=True)
    older = store.recent_outcomes("default", 10, before=latest[-1][0])
    assert [o.event_id for _, o in older] == ["e5", "e4", "e3", "e2", "e1"]
    by_bot = store.recent_outcomes("default", 2, bot="inbound")
    assert [o.event_id for _, o in by_bot] == ["e7", "e6"]
    assert store.recent_outcomes("beta", 10) == []
    assert store.activity("default", "2000-01-01T00:00:00.000000Z") == Activity(8, 7, 0, 0, 0)
    assert store.activity("default", "2999-01-01T00:00:00.000000Z") == Activity(0, 0, 0, 0, 0)
    assert store.activity("beta", "2000-01-01T00:00:00.000000Z") == Activity(0, 0, 0, 0, 0)
    # Assignments by the time of their events, events by the time they were logged (now).
    assert store.activity("default", "2025-01-05T00:00:00.000000Z") == Activity(8, 4, 0, 0, 0)


def test_recent_outcomes_page_through_outcomes_logged_in_one_instant(
    deal_bot_rules: Path, store_url: str
) -> None:
    """The page's list is ordered by the time each outcome was logged, then by seq: a
    cursor skips none and repeats none when many share one instant (SQLite keeps
    milliseconds)."""
    from test_replay import execute

    with Engine(deal_bot_rules, store_url) as engine:
        for n in range(1, 6):
            engine.handle(deal_event(n))
        execute(store_url, ["UPDATE outcomes SET created_at = '2026-01-01T00:00:00.000Z'"])
        pages, before = [], None
        while page := engine.store.recent_outcomes("default", 2, before=before):
            pages.append([o.event_id for _, o in page])
            before = page[-1][0]
        assert pages == [["e5", "e4"], ["e3", "e2"], ["e1"]]
        assert engine.store.recent_outcomes("default", 2, before=10**6) == []  # no such outcome
        assert engine.store.activity("default", "2026-01-01T00:00:00.000Z").events == 5
        assert engine.store.activity("default", "2026-01-01T00:00:00.001Z").events == 0


def test_an_older_sqlite_file_gains_who_and_when_of_its_switches(
    deal_bot_rules: Path, tmp_path: Path
) -> None:
    db = tmp_path / "old.db"
    with Engine(deal_bot_rules, db) as engine:
        engine.set_bot_active("default", "inbound", False)
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE bot_switches DROP COLUMN changed_by")
    conn.execute("ALTER TABLE bot_switches DROP COLUMN changed_at")
    conn.execute("PRAGMA user_version = 5")  # as schema version 5 left it
    conn.commit()
    conn.close()
    with Engine(deal_bot_rules, db) as engine:
        assert engine.store.switches("default") == {"inbound": Switch(False, None, None)}
    assert rows(str(db), "PRAGMA user_version") == [(SQLITE_VERSION,)]


def test_an_older_postgresql_database_gains_who_and_when_of_its_switches(
    deal_bot_rules: Path, postgres_url: str
) -> None:
    import psycopg

    with Engine(deal_bot_rules, postgres_url) as engine:
        engine.set_bot_active("default", "inbound", False)
    with psycopg.connect(postgres_url) as conn:
        conn.execute("ALTER TABLE bot_switches DROP COLUMN changed_by, DROP COLUMN changed_at")
        conn.execute("UPDATE salesbot_schema SET version = 4")  # as schema version 4 left it
    with Engine(deal_bot_rules, postgres_url) as engine:
        assert engine.store.switches("default") == {"inbound": Switch(False, None, None)}
    assert rows(postgres_url, "SELECT version FROM salesbot_schema") == [(POSTGRES_VERSION,)]


# --- The pool now, and the charts ---------------------------------------------------------

POOL = """
users:
  - {id: anna, name: Anna}
  - {id: bartek, name: Bartek, caps: {day: 0}}
  - {id: celina, name: Celina, working_hours: {days: [tue]}}
  - {id: olga, name: Olga, active: false}
  - {id: jan, name: Jan, out_of_office: [{start: "2025-01-01T00:00:00Z", end: "2025-02-01T00:00:00Z"}]}
bots:
  - {id: inbound, entity: deal, users: [anna, bartek, celina, olga, jan], active: false,
     trigger: {where: {$gt: {value: 1000}}}}
"""


def test_the_pool_now_gives_each_skipped_user_with_the_engines_reason(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    monday = datetime(2025, 1, 6, 12, tzinfo=UTC)
    with Engine(write_rules(**{"pool.yaml": POOL}), tmp_path / "s.db") as engine:
        # Off, and a condition no record of the page matches: the pool is shown regardless.
        decision = engine.pool_now("default", "inbound", monday)
        assert (decision.owner, decision.candidates) == ("anna", ["anna"])
        skipped = {s.user: s.reason for s in decision.skipped}
        assert skipped == {
            "bartek": "capacity reached: 0 per day",
            "celina": "does not work on mon (UTC)",
            "olga": "user is deactivated",
            "jan": "out of office until 2025-02-01T00:00:00+00:00",
        }
        assert {user: pool_state(reason) for user, reason in skipped.items()} == {
            "bartek": "at a cap",
            "celina": "outside working hours",
            "olga": "deactivated",
            "jan": "out of office",
        }
        assert pool_state("in a meeting (a host's calendar plugin)") == "unavailable"
        assert rows(str(tmp_path / "s.db"), "SELECT COUNT(*) FROM outcomes") == [(0,)]  # nothing written


def test_bars_are_drawn_to_scale_with_the_pool_first_and_others_after() -> None:
    chart = charts.bars("Today", {"celina": 4, "anna": 2, "zoe": 1}, ["anna", "bartek", "celina"])
    assert [(b.label, b.count, b.width, b.y) for b in chart.bars] == [
        ("anna", 2, 150, 0),
        ("bartek", 0, 0, 24),
        ("celina", 4, 300, 48),
        ("zoe", 1, 75, 72),
    ]
    assert (chart.total, chart.height) == (7, 96)
    assert [b.width for b in charts.bars("None", {}, ["anna"]).bars] == [0]


# --- Sessions -----------------------------------------------------------------------------


def test_a_session_cookie_names_the_token_and_is_refused_when_forged_or_expired() -> None:
    key = sessions.new_key()
    session, cookie = sessions.issue(key, "default", "page", now=1000)
    assert sessions.read(key, cookie, now=1001) == session
    assert sessions.read(key, cookie, now=1000 + sessions.SESSION_SECONDS) is None  # expired
    assert sessions.read(sessions.new_key(), cookie, now=1001) is None  # another key
    payload, signature = cookie.rsplit(".", 1)
    forged = payload.replace(payload[:4], "eyJh") + "x." + signature
    assert sessions.read(key, forged, now=1001) is None
    assert sessions.read(key, "x" * 5000, now=1001) is None
    assert sessions.read(key, None) is None
    token = sessions.csrf_token(key, session.nonce)
    assert sessions.csrf_ok(key, session.nonce, token)
    assert not sessions.csrf_ok(key, session.nonce, "")
    assert not sessions.csrf_ok(key, "another", token)
    assert not sessions.csrf_ok(key, None, token)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], str]]:
    db = str(tmp_path / "salesbot.db")
    folder = write_rules(tmp_path / "rulesets")
    with Engine(folder, db) as engine:
        engine.handle({**deal_event(1, owners=["bot:inbound"], title=HOSTILE)})
    made = make_tokens(db)
    with TestClient(create_app(rulesets=folder, db=db)) as client:
        yield client, made, db


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, html
    return found.group(1)


def sign_in(client: TestClient, secret: str) -> Any:
    form = client.get("/signin")
    return client.post("/signin", data={"csrf": csrf_of(form.text), "token": secret}, follow_redirects=False)


def signed_in(client: TestClient, secret: str, page: str = "/") -> str:
    """Sign in with ``secret``; the CSRF token of the session (from ``page``'s forms)."""
    sign_in(client, secret)
    return csrf_of(client.get(page).text)


def test_sign_in_takes_a_token_with_manage_and_keeps_only_a_signed_name(
    site: tuple[TestClient, dict[str, str], str],
) -> None:
    client, made, _ = site
    assert client.get("/", follow_redirects=False).headers["location"] == "/signin"
    for secret in (made["read"], "sb_unknown", ""):
        refused = sign_in(client, secret)
        assert refused.status_code == 401
        assert "Unknown or revoked token, or one without the manage scope." in refused.text
    no_csrf = client.post("/signin", data={"token": made["page"]}, follow_redirects=False)
    assert no_csrf.status_code == 403
    done = sign_in(client, made["page"])
    assert (done.status_code, done.headers["location"]) == (303, "/")
    cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("salesbot_session="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower() and "secure" not in attributes  # http, not https
    value = cookie.split(";")[0].split("=", 1)[1]
    assert made["page"] not in value and made["page"][3:20] not in value
    assert client.get("/").status_code == 200


def test_over_https_the_session_cookie_is_secure(site: tuple[TestClient, dict[str, str], str]) -> None:
    client, made, _ = site
    client.base_url = "https://testserver"  # type: ignore[assignment]
    done = sign_in(client, made["page"])
    cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("salesbot_session="))
    assert "secure" in {part.strip().lower() for part in cookie.split(";")[1:]}
    assert client.get("https://testserver/").status_code == 200


def test_revoking_the_token_ends_its_sessions_and_sign_out_needs_the_csrf_token(
    site: tuple[TestClient, dict[str, str], str],
) -> None:
    client, made, db = site
    sign_in(client, made["page"])
    page = client.get("/a/default")
    assert client.post("/signout", data={}, follow_redirects=False).status_code == 403
    out = client.post("/signout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert (out.status_code, out.headers["location"]) == (303, "/signin")
    assert client.get("/a/default", follow_redirects=False).headers["location"] == "/signin"
    sign_in(client, made["page"])
    assert client.get("/a/default").status_code == 200
    with Engine(write_rules(Path(db).parent / "rulesets"), db) as engine:
        revoke_token(engine.store, "default", "page")
    assert client.get("/a/default", follow_redirects=False).headers["location"] == "/signin"


def test_a_cookie_copied_before_sign_out_is_refused_after_it_by_every_worker(tmp_path: Path) -> None:
    """Over HTTP, against a real ``salesbot serve --workers 2``: after sign-out, a copy of
    the session cookie answers exactly as no session does, whichever worker takes it."""
    db = str(tmp_path / "salesbot.db")
    folder = write_rules(tmp_path / "rulesets")
    made = make_tokens(db)
    with contextlib.contextmanager(serve)(folder, db, tmp_path, "--workers", "2") as http:
        none_get = http.get("/a/default", follow_redirects=False)
        assert (none_get.status_code, none_get.headers["location"]) == (303, "/signin")
        none_post = http.post("/a/default/bots/inbound/active", data={"active": "off"})
        assert (none_post.status_code, "sign in first" in none_post.text) == (403, True)

        done = sign_in(http, made["page"])  # type: ignore[arg-type]
        assert (done.status_code, done.headers["location"]) == (303, "/")
        copied = {sessions.SESSION_COOKIE: http.cookies[sessions.SESSION_COOKIE]}
        csrf = csrf_of(http.get("/a/default").text)
        with httpx.Client(base_url=http.base_url, cookies=copied, timeout=60) as copy:
            # Each request may go to either worker: both take the copy before sign-out.
            assert [copy.get("/a/default").status_code for _ in range(10)] == [200] * 10
            out = http.post("/signout", data={"csrf": csrf}, follow_redirects=False)
            assert (out.status_code, out.headers["location"]) == (303, "/signin")
            for _ in range(10):
                got = copy.get("/a/default", follow_redirects=False)
                assert (got.status_code, got.headers["location"]) == (303, "/signin")
                home = copy.get("/", follow_redirects=False)
                assert (home.status_code, home.headers["location"]) == (303, "/signin")
                posted = copy.post("/a/default/bots/inbound/active", data={"active": "off", "csrf": csrf})
                assert (posted.status_code, posted.text) == (none_post.status_code, none_post.text)
        # Signing in again is a new session, unaffected by the ended one.
        sign_in(http, made["page"])  # type: ignore[arg-type]
        assert http.get("/a/default").status_code == 200
    assert rows(db, "SELECT COUNT(*) FROM ended_sessions") == [(1,)]
    assert rows(db, "SELECT COUNT(*) FROM bot_switches") == [(0,)]


def admin_routes(client: TestClient) -> list[APIRoute]:
    found = [r for r in client.app.routes if isinstance(r, APIRoute) and r.path.startswith("/a/{account}")]  # type: ignore[attr-defined]
    assert len(found) == 34
    return found


def sample_path(route: APIRoute, account: str) -> str:
    values = {"account": account, "bot": "inbound", "entity": "deal", "record_id": "d1", "delivery": "x"}
    values.update(user="anna", version="1", draft="d")
    return route.path.format(**values)


def test_an_account_token_gets_404_on_every_page_of_another_account(
    site: tuple[TestClient, dict[str, str], str],
) -> None:
    client, made, _ = site
    csrf = signed_in(client, made["beta"], "/a/beta")
    for route in admin_routes(client):
        method = next(iter(route.methods))
        for account in ("default", "nobody"):
            response = client.request(
                method, sample_path(route, account), data={"csrf": csrf, "active": "off", "count": "1"}
            )
            assert response.status_code == 404, route.path
            assert "<h1>Not found</h1>" in response.text
            assert "anna" not in response.text and "inbound" not in response.text
    overview = client.get("/").text
    assert 'href="/a/beta"' in overview and 'href="/a/default"' not in overview


def test_every_form_post_without_its_csrf_token_is_refused(
    site: tuple[TestClient, dict[str, str], str],
) -> None:
    client, made, db = site
    sign_in(client, made["page"])
    posts = [r for r in admin_routes(client) if "POST" in r.methods]
    assert len(posts) == 15
    for route in posts:
        for form in ({"active": "off", "count": "1"}, {"active": "off", "count": "1", "csrf": "0" * 64}):
            refused = client.post(sample_path(route, "default"), data=form)
            assert refused.status_code == 403, route.path
            assert "CSRF token is missing or wrong" in refused.text
    assert rows(db, "SELECT COUNT(*) FROM bot_switches") == [(0,)]


def test_every_page_has_a_strict_csp_and_no_inline_script_or_style(
    site: tuple[TestClient, dict[str, str], str],
) -> None:
    client, made, _ = site
    csrf = signed_in(client, made["admin"])
    pages = [client.get("/signin"), client.get("/")]
    for route in admin_routes(client):
        if "GET" in route.methods:
            pages.append(client.get(sample_path(route, "default")))
    pages.append(client.post("/a/default/bots/inbound/simulate", data={"csrf": csrf, "count": "3"}))
    for response in pages:
        # The editing pages (tests/test_admin_editing.py) say the rules come from files.
        assert response.status_code == 200 or (
            response.status_code == 409 and "come from ruleset files" in response.text
        ), (response.url, response.text)
        assert response.headers["content-security-policy"] == HEADERS["Content-Security-Policy"]
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        html = response.text
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [], response.url
        assert re.findall(r"<[^>]*\s(?:style|on[a-z]+)=|<style", html) == [], response.url
        assert SCRIPT not in html and IMG not in html  # escaped wherever it is shown
    record = client.get("/a/default/records/deal/d1").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in record


def test_the_dry_run_form_is_bounded(site: tuple[TestClient, dict[str, str], str]) -> None:
    client, made, _ = site
    csrf = signed_in(client, made["page"])
    ran = client.post("/a/default/bots/inbound/simulate", data={"csrf": csrf, "count": "3"})
    assert "3 records: 3 assigned; nothing is written" in ran.text
    for count in ("0", "101", "x", "-1"):
        refused = client.post("/a/default/bots/inbound/simulate", data={"csrf": csrf, "count": count})
        assert refused.status_code == 400
        assert "the number of records must be a whole number from 1 to 100" in refused.text
    huge = client.post("/a/default/bots/inbound/simulate", data={"csrf": csrf, "count": "1" * 10_000})
    assert huge.status_code == 413


def test_a_failed_delivery_shows_its_last_error_and_retry_queues_it_again(
    site: tuple[TestClient, dict[str, str], str],
) -> None:
    client, made, db = site
    with Engine(write_rules(Path(db).parent / "rulesets"), db) as engine:
        hook = add_webhook(engine.store, "default", "https://crm.example/hook", ["assignment"])
        engine.handle(deal_event(2, owners=["bot:inbound"]))
        (claimed,) = engine.store.claim_deliveries("9999-01-01T00:00:00Z", "9999-01-02T00:00:00Z", 10)
        assert engine.store.finish_delivery(claimed.id, 1, "dead", "9999-01-02T00:00:00Z", "HTTP 500 <b>")
    sign_in(client, made["page"])
    page = client.get("/a/default/deliveries").text
    assert f"<code>{claimed.id}</code>" in page and hook.id in page and "HTTP 500 &lt;b&gt;" in page
    done = client.post(
        f"/a/default/deliveries/{claimed.id}/retry", data={"csrf": csrf_of(page)}, follow_redirects=False
    )
    assert (done.status_code, done.headers["location"]) == (303, "/a/default/deliveries")
    assert rows(db, "SELECT status, attempts, last_error FROM deliveries") == [("pending", 0, None)]
    again = client.post(f"/a/default/deliveries/{claimed.id}/retry", data={"csrf": csrf_of(page)})
    assert again.status_code == 404  # pending already: nothing to retry


def test_the_overview_shows_the_rules_status_serve_keeps(
    site: tuple[TestClient, dict[str, str], str],
) -> None:
    """The engine's ``rules_status``: when and from which files the running rules were
    loaded, and the errors of the last reload that failed, escaped."""
    client, made, db = site
    sign_in(client, made["admin"])
    loaded = re.search(r"Loaded at (\S+Z) from 2 file\(s\): beta.yaml, default.yaml\.", client.get("/").text)
    assert loaded is not None
    # A file name from the folder reaches the page escaped.
    (Path(db).parent / "rulesets" / "<i>x.yaml").write_text(
        "bots: [{id: x, users: [ghost]}]\n", encoding="utf-8"
    )
    with pytest.raises(RulesetError):
        client.app.state.service.run(lambda engine: engine.reload())  # type: ignore[attr-defined]
    page = client.get("/").text
    assert f"Loaded at {loaded.group(1)} from 2 file(s)" in page  # the last good rules run on
    assert "The last reload failed" in page
    assert "&lt;i&gt;x.yaml: bot &#39;x&#39;: field &#39;users" in page and "<i>x" not in page


def test_an_account_token_sees_only_its_own_files_and_reload_problems(
    site: tuple[TestClient, dict[str, str], str],
) -> None:
    """A reload broken in both accounts' files and in a file of no readable account: an
    account's admin is shown its own part, named without the server's folder; an admin,
    everything."""
    client, made, db = site
    folder = Path(db).parent / "rulesets"
    (folder / "beta.yaml").write_text(BETA.replace("users: [zoe]}", "users: [zoe, ghost]}"), encoding="utf-8")
    (folder / "default-more.yaml").write_text(
        "bots: [{id: more, entity: deal, users: [anna]}, {id: also, entity: deal, users: [anna]}]\n",
        encoding="utf-8",
    )
    (folder / "zz-garbage.yaml").write_text("bots: [\n", encoding="utf-8")
    with pytest.raises(RulesetError):
        client.app.state.service.run(lambda engine: engine.reload())  # type: ignore[attr-defined]
    # default-more.yaml is of default and reads well (loaded first): default.yaml's bot
    # id is used twice, and the problem names the other file by its path.
    (folder / "default-more.yaml").write_text(
        "bots: [{id: inbound, entity: deal, users: [anna]}]\n", encoding="utf-8"
    )
    with pytest.raises(RulesetError):
        client.app.state.service.run(lambda engine: engine.reload())  # type: ignore[attr-defined]
    beta_problem = (
        "beta.yaml: bot &#39;beta-bot&#39;: field &#39;users.1&#39;: unknown user &#39;ghost&#39;: "
        "declare it under &#39;users&#39; in a ruleset file of account &#39;beta&#39;"
    )
    default_problem = (
        "default.yaml: bot &#39;inbound&#39;: field &#39;id&#39;: bot id is already used in default-more.yaml"
    )

    sign_in(client, made["page"])
    page = client.get("/").text
    rules = page[page.index('<h2 id="rules-h">') :]
    assert re.search(r"Loaded at \S+Z from 1 file\(s\): default\.yaml\.</p>", rules)
    assert "The last reload failed</strong>; the last good rules keep running:" in rules
    assert re.findall(r"<li>(.*?)</li>", rules) == [default_problem]
    assert "Other problems are in files only an admin sees." in rules
    for secret in ("beta", "zoe", "ghost", "zz-garbage", "YAML", str(folder), str(Path(db).parent)):
        assert secret not in page, secret

    sign_in(client, made["beta"])
    page = client.get("/").text
    rules = page[page.index('<h2 id="rules-h">') :]
    assert re.search(r"Loaded at \S+Z from 1 file\(s\): beta\.yaml\.</p>", rules)
    assert re.findall(r"<li>(.*?)</li>", rules) == [beta_problem]
    assert "Other problems are in files only an admin sees." in rules
    for secret in ("default", "inbound", "anna", "zz-garbage", str(folder), str(Path(db).parent)):
        assert secret not in rules, secret

    sign_in(client, made["admin"])
    rules = client.get("/").text
    rules = rules[rules.index('<h2 id="rules-h">') :]
    assert re.search(r"Loaded at \S+Z from 2 file\(s\): beta\.yaml, default\.yaml\.</p>", rules)
    assert f"<p>Folder: <code>{folder}</code></p>" in rules
    shown = re.findall(r"<li>(.*?)</li>", rules)
    assert [line.split(": ", 1)[0] for line in shown] == [
        str(folder / "beta.yaml"),
        str(folder / "default.yaml"),
        str(folder / "zz-garbage.yaml"),
    ]
    assert shown[0] == f"{folder}/{beta_problem}"
    assert shown[1] == f"{folder}/{default_problem.replace(' in ', f' in {folder}/')}"
    assert shown[2].startswith(f"{folder}/zz-garbage.yaml: YAML syntax error")
    assert "only an admin sees" not in rules


def test_the_bots_list_is_paginated(write_rules: Callable[..., Path], tmp_path: Path) -> None:
    many = "bots:\n" + "".join(f"  - {{id: b{n:03}, entity: deal, users: [anna]}}\n" for n in range(120))
    folder = write_rules(**{"team.yaml": TEAM, "many.yaml": many})
    db = str(tmp_path / "salesbot.db")
    with Engine(folder, db):
        pass
    made = make_tokens(db)
    with TestClient(create_app(rulesets=folder, db=db)) as client:
        sign_in(client, made["page"])
        first, last = client.get("/a/default").text, client.get("/a/default?page_no=3").text
    assert first.count('<tr id="bot-') == 50 and 'id="bot-b000"' in first and 'id="bot-b050"' not in first
    assert 'href="/a/default?page_no=2">Next page' in first
    assert last.count('<tr id="bot-') == 20 and 'id="bot-b119"' in last and "Next page" not in last


@pytest.fixture
def engine_on(deal_bot_rules: Path, store_url: str) -> Iterator[Engine]:
    with Engine(deal_bot_rules, store_url) as engine:
        yield engine


def test_the_replay_page_shows_the_distribution_as_it_was_and_would_have_been(
    site: tuple[TestClient, dict[str, str], str],
) -> None:
    client, made, db = site
    with Engine(write_rules(Path(db).parent / "rulesets"), db) as engine:
        for n in (2, 3, 4):
            engine.handle(deal_event(n, owners=["bot:inbound"]))
    before = rows(db, "SELECT COUNT(*), MAX(seq) FROM outcomes")
    csrf = signed_in(client, made["page"], "/a/default/replay")
    candidate = DEFAULT.replace(
        "entity: deal\n    users: [anna, bartek, celina]", "entity: deal\n    users: [jan]"
    )
    assert candidate != DEFAULT
    shown = client.post("/a/default/replay", data={"csrf": csrf, "since": "1d", "rules": candidate})
    assert shown.status_code == 200
    table = shown.text[shown.text.index('id="replay-distribution"') :]

    def row(bot: str, user: str) -> list[str]:
        found = re.search(
            rf'<tr><td data-bot="{bot}">[^<]*</td><td data-user="{user}">[^<]*</td>(.*?)</tr>', table
        )
        assert found, (bot, user)
        return re.findall(r'<td class="num">([^<]*)</td>', found.group(1))

    # As it was: anna, celina, anna, celina (bartek is on holiday); under the candidate: jan.
    assert row("inbound", "anna") == ["2", "0", "-2"]
    assert row("inbound", "celina") == ["2", "0", "-2"]
    assert row("inbound", "jan") == ["0", "4", "+4"]
    assert "4 records would get other owners; nothing was written." in shown.text
    assert shown.text.count('<a href="/a/default/records/deal/') == 4
    assert rows(db, "SELECT COUNT(*), MAX(seq) FROM outcomes") == before


def test_the_replay_page_names_the_file_bot_and_field_of_bad_candidate_rules(
    site: tuple[TestClient, dict[str, str], str],
) -> None:
    client, made, _ = site
    csrf = signed_in(client, made["page"], "/a/default/replay")
    bad = DEFAULT.replace("strategy", "strategy").replace(
        "    entity: deal\n    users: [anna, bartek, celina]",
        "    entity: deal\n    users: [anna]\n    strategy: nope",
    )
    shown = client.post("/a/default/replay", data={"csrf": csrf, "since": "30d", "rules": bad})
    assert shown.status_code == 422
    assert "candidate.yaml: bot &#39;inbound&#39;: field &#39;strategy&#39;" in shown.text
    # The pasted rules come back, escaped, for the admin to fix.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown.text and SCRIPT not in shown.text
    wrong_window = client.post("/a/default/replay", data={"csrf": csrf, "since": "5y", "rules": DEFAULT})
    assert wrong_window.status_code == 400
