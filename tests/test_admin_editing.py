"""Editing rules kept in the store from the admin page, form post by form post against a
real ``salesbot serve --rules-from store``, on SQLite and on PostgreSQL: the bot form, the
history with restore, the users' switches, drafts, and the folder mode that edits nothing.

The same scenarios in Chromium are in tests/test_admin_editing_browser.py.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pg_server
import pytest
from admin_site import make_tokens, publish_rules, write_rules
from test_service import bearer, serve

from salesbot_core import Engine
from salesbot_core.admin.botform import BotForm, from_bot, place, preview, to_bot
from salesbot_core.admin.conditionform import Built, Row, condition_of, rows_of
from salesbot_core.rulebook import FieldProblem

AUTHOR = "token default/page"


class Site:
    """A running serve with the rules in the store, and a browser-like client signed in."""

    def __init__(self, db: str, api: httpx.Client, secrets: dict[str, str]):
        self.db, self.api, self.secrets = db, api, secrets
        self.page = httpx.Client(base_url=str(api.base_url), timeout=60, follow_redirects=True)
        form = self.page.get("/signin")
        signed = self.page.post("/signin", data={"csrf": csrf_of(form.text), "token": secrets["page"]})
        assert signed.status_code == 200, signed.text

    def versions(self) -> list[Any]:
        with Engine(None, self.db) as engine:
            return engine.versions("default")

    def book(self) -> dict[str, Any]:
        with Engine(None, self.db) as engine:
            return engine.rulebook("default")[1]

    def form(self, path: str) -> dict[str, Any]:
        """The fields a page's form posts as it stands (hidden ones, text, checked boxes)."""
        html = self.page.get(path).text
        fields: dict[str, Any] = {}
        for tag in re.findall(r"<input [^>]*>", html):
            name = re.search(r'name="([^"]+)"', tag)
            value = re.search(r'value="([^"]*)"', tag)
            choice = 'type="checkbox"' in tag or 'type="radio"' in tag
            if name is None or (choice and " checked" not in tag):
                continue
            text = unescape(value.group(1) if value else "")
            if 'type="checkbox"' in tag or name.group(1).startswith("cond_"):
                fields.setdefault(name.group(1), []).append(text)
            else:
                fields[name.group(1)] = text
        for name, text in re.findall(r'<textarea [^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S):
            fields[name] = unescape(text)
        for name, body in re.findall(r'<select [^>]*name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
            chosen = re.search(r'<option value="([^"]*)" selected', body)
            if name.startswith("cond_") and name != "cond_join":  # one per row of the builder
                fields.setdefault(name, []).append(unescape(chosen.group(1)) if chosen else "eq")
            else:
                fields[name] = unescape(chosen.group(1)) if chosen else ""
        return fields


def unescape(text: str) -> str:
    import html

    return html.unescape(text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, html
    return found.group(1)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("editing")
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            db = str(folder / "salesbot.db")
        else:
            admin_url = request.getfixturevalue("postgres_admin_url")
            db = stack.enter_context(contextlib.contextmanager(pg_server.database_factory(admin_url))())
        publish_rules(db)
        secrets = make_tokens(db)
        client = stack.enter_context(
            contextlib.contextmanager(serve)(folder / "none", db, folder, "--rules-from", "store")
        )
        yield Site(db, client, secrets)


def test_a_bot_made_in_the_form_routes_the_next_event_and_the_page_shows_the_decision(site: Site) -> None:
    fields = site.form("/a/default/bots/new")
    assert fields["version"] == str(site.versions()[0].version)
    fields.update(
        id="vip",
        name="VIP deals",
        users=["jan", "celina"],
        note="VIP {record.title} for {owner.name}",
        message="a bot for VIP deals",
        do="publish",
    )
    saved = site.page.post("/a/default/bots/new", data=fields)
    assert saved.status_code == 200 and "/history?published=" in str(saved.url)
    assert "Published version" in saved.text and "a bot for VIP deals" in saved.text
    latest = site.versions()[0]
    assert (latest.author, latest.message) == (AUTHOR, "a bot for VIP deals")
    assert site.book()["bots"][-1] == {
        "id": "vip",
        "name": "VIP deals",
        "entity": "deal",
        "users": ["jan", "celina"],
        "actions": {"note": "VIP {record.title} for {owner.name}"},
    }
    outcome = site.api.post(
        "/v1/accounts/default/events",
        json={
            "id": "vip-1",
            "kind": "created",
            "record": {"entity": "deal", "id": "vip-1", "title": "Yacht", "owners": ["bot:vip"]},
        },
        headers=bearer(site.secrets["events"]),
    ).json()
    assert outcome["owners_after"] == ["jan"] and outcome["rules_version"] == latest.version
    record = site.page.get("/a/default/records/deal/vip-1").text
    assert "vip" in record and "VIP Yacht for Jan Kowalski" in record
    assert 'href="/a/default/bots/vip/edit"' in site.page.get("/a/default").text


def test_a_pool_edited_shows_in_the_history_and_is_restored(site: Site) -> None:
    before = site.versions()[0].version
    fields = site.form("/a/default/bots/switchme/edit")
    assert fields["users"] == ["anna", "celina"]
    fields.update(users=["anna", "jan"], do="publish", message="jan joins")
    site.page.post("/a/default/bots/switchme/edit", data=fields)
    assert site.versions()[0].version == before + 1
    history = site.page.get("/a/default/history").text
    assert "bots.switchme.users" in history and "jan joins" in history and AUTHOR in history
    confirm = site.page.get(f"/a/default/history/{before}/restore")
    assert f"Restore version {before}?" in confirm.text and "bots.switchme.users" in confirm.text
    done = site.page.post(
        f"/a/default/history/{before}/restore",
        data={"csrf": csrf_of(confirm.text), "expected": str(before + 1)},
    )
    assert "Published version" in done.text and f"restore version {before}" in done.text
    latest = site.versions()[0]
    assert (latest.version, latest.restored_from, latest.author) == (before + 2, before, AUTHOR)
    assert next(b for b in site.book()["bots"] if b["id"] == "switchme")["users"] == ["anna", "celina"]
    # A restore on a version that is no longer current is refused.
    again = site.page.post(
        f"/a/default/history/{before}/restore", data={"csrf": csrf_of(confirm.text), "expected": str(before)}
    )
    assert again.status_code == 409 and site.versions()[0].version == before + 2


def test_a_validation_error_names_the_field_keeps_what_was_typed_and_writes_nothing(site: Site) -> None:
    count = len(site.versions())
    fields = site.form("/a/default/bots/inbound/edit")
    fields.update(
        users=["anna", "ghost"], name="Typed <b>name</b>", where_mode="raw", where="{bad: [", do="publish"
    )
    refused = site.page.post("/a/default/bots/inbound/edit", data=fields)
    assert refused.status_code == 422
    assert "trigger.where: not readable YAML" in refused.text
    fields["where"] = "$gt: {value: 10}"
    refused = site.page.post("/a/default/bots/inbound/edit", data=fields)
    assert refused.status_code == 422
    assert re.search(
        r'<span class="problem" id="users-problem">users\[1\]: unknown user &#39;ghost&#39;', refused.text
    )
    assert 'value="Typed &lt;b&gt;name&lt;/b&gt;"' in refused.text
    assert '<input type="checkbox" name="users" value="ghost" checked>' in refused.text
    assert "$gt:" in refused.text
    assert len(site.versions()) == count


def test_a_stale_form_is_refused_with_the_current_version_and_the_typed_values(site: Site) -> None:
    fields = site.form("/a/default/bots/dist/edit")
    current = site.versions()[0].version
    fields.update(name="Mine", version=str(current - 1), do="publish")
    refused = site.page.post("/a/default/bots/dist/edit", data=fields)
    assert refused.status_code == 409
    assert f"they are now at version {current}" in refused.text
    assert 'value="Mine"' in refused.text and f'name="version" value="{current}"' in refused.text
    assert site.versions()[0].version == current
    # Saved again, from the form as it came back, it publishes.
    fields["version"] = str(current)
    assert "Published version" in site.page.post("/a/default/bots/dist/edit", data=fields).text
    assert next(b for b in site.book()["bots"] if b["id"] == "dist")["name"] == "Mine"


def test_a_user_switched_off_is_a_new_version_with_a_notice(site: Site) -> None:
    users = site.page.get("/a/default/users").text
    assert re.search(r'id="user-jan".*?On.*?/a/default/users/jan/active\?to=off', users, re.S)
    confirm = site.page.get("/a/default/users/jan/active?to=off")
    assert "Switch user jan off?" in confirm.text
    fields = site.form("/a/default/users/jan/active?to=off")
    done = site.page.post("/a/default/users/jan/active", data=fields)
    assert "Published version" in done.text and "user jan switched off" in done.text
    assert re.search(r'id="user-jan".*?Off', done.text, re.S)
    assert next(u for u in site.book()["users"] if u["id"] == "jan")["active"] is False
    assert site.versions()[0].author == AUTHOR


def test_a_draft_shows_its_diff_then_publishes_as_one_version(site: Site) -> None:
    count = len(site.versions())
    fields = site.form("/a/default/bots/inbound/edit")
    fields.update(tag="hot", priority="5", do="draft")
    draft = site.page.post("/a/default/bots/inbound/edit", data=fields)
    assert "/drafts/bot-inbound" in str(draft.url) and len(site.versions()) == count
    assert "bots.inbound.actions" in draft.text and "bots.inbound.priority" in draft.text
    assert "bot-inbound" in site.page.get("/a/default/history").text
    done = site.page.post(
        "/a/default/drafts/bot-inbound/publish", data={"csrf": csrf_of(draft.text), "message": "hot inbound"}
    )
    assert "Published version" in done.text and "hot inbound" in done.text
    assert len(site.versions()) == count + 1
    inbound = next(b for b in site.book()["bots"] if b["id"] == "inbound")
    assert (inbound["priority"], inbound["actions"]["tag"]) == (5, "hot")


def test_the_live_preview_renders_a_text_for_a_sample_record(site: Site) -> None:
    csrf = csrf_of(site.page.get("/a/default/bots/new").text)
    shown = site.page.post(
        "/a/default/preview",
        data={"csrf": csrf, "text": "{owner.name}: {record.value:,.0f}", "owner": "anna", "entity": "deal"},
    ).json()
    assert shown == {"text": "Anna Nowak: 12,000", "problems": []}
    bad = site.page.post("/a/default/preview", data={"csrf": csrf, "text": "{record.__class__}"}).json()
    assert bad["text"] is None and "not allowed" in bad["problems"][0]
    assert site.page.post("/a/default/preview", data={"text": "x"}).status_code == 403


def test_with_rules_from_files_the_page_edits_nothing(tmp_path: Path) -> None:
    db = str(tmp_path / "salesbot.db")
    secrets = make_tokens(db)
    with contextlib.contextmanager(serve)(write_rules(tmp_path / "rulesets"), db, tmp_path) as api:
        site = Site(db, api, secrets)
        bots = site.page.get("/a/default").text
        assert "/edit" not in bots and "New bot" not in bots
        csrf = csrf_of(bots)
        for path in ("/a/default/bots/new", "/a/default/bots/inbound/edit", "/a/default/users/jan/active"):
            refused = site.page.post(path, data={"csrf": csrf, "id": "x", "active": "off", "expected": "0"})
            assert refused.status_code == 409 and "come from ruleset files" in refused.text
        assert "come from ruleset files" in site.page.get("/a/default/history").text


# --- The form as data, without a server -----------------------------------------------------


def test_a_bot_goes_through_the_form_unchanged_and_keeps_a_plugins_fields() -> None:
    bot = {
        "id": "inbound",
        "entity": "person",
        "users": ["anna"],
        "strategy": "weighted",
        "options": {"weights": {"anna": 2}},
        "trigger": {"events": ["created"], "where": {"$gt": {"value": 1}}},
        "actions": {"related": {"company": True, "mode": "replace"}, "notify": "{bot.name}"},
        "priority": 3,
        "fallback": "anna",
        "sla": {"minutes": 5},
    }
    again, problems = to_bot(from_bot(bot), bot)
    assert problems == [] and again == {k: v for k, v in bot.items() if k != "id"}


def test_the_builder_shows_exactly_the_conditions_it_writes_and_leaves_the_rest_as_text() -> None:
    cases = [
        ({"$gte": {"value": 50000}}, Built("all", (Row("value", "gte", "50000"),))),
        ({"$eq": {"zip": "123"}}, Built("all", (Row("zip", "eq", '"123"'),))),
        ({"$or": [{"$eq": {"p": "a"}}, {"$eq": {"p": 2}}]}, Built("all", (Row("p", "oneof", "a, 2"),))),
        (
            {"$or": [{"$mt": {"t": ".*5[.]0 [(]x[)].*"}}, {"$nex": {"e": 1}}, {"$mt": {"t": "AC.*"}}]},
            Built("any", (Row("t", "contains", "5.0 (x)"), Row("e", "absent"), Row("t", "matches", "AC.*"))),
        ),
    ]
    for condition, built in cases:
        assert rows_of(condition) == built and condition_of(built) == (condition, [])
    for beyond in (
        {"value": 5},
        {"$imt": {"t": "a"}},
        {"$and": [{"$or": [{"$eq": {"a": 1}}, {"$gt": {"b": 1}}]}]},
    ):
        assert rows_of(beyond) is None
    assert condition_of(Built("all", (Row("", "eq", "x"), Row("v", "gt", " ")))) == (
        None,
        [
            FieldProblem("trigger.where", "row 1: a value needs a field"),
            FieldProblem("trigger.where", "row 2 (v): is greater than needs a value"),
        ],
    )


def test_problems_are_placed_next_to_their_fields_by_path() -> None:
    problems = [
        FieldProblem("bots[1].users[0]", "unknown user 'ghost'"),
        FieldProblem("bots[1].trigger.where", "bad"),
        FieldProblem("bots[0].strategy", "other bot"),
        FieldProblem("priority", "must be a whole number"),
    ]
    assert place(problems, 1) == (
        {
            "users": ["users[0]: unknown user 'ghost'"],
            "where": ["trigger.where: bad"],
            "priority": ["priority: must be a whole number"],
        },
        ["bots[0].strategy: other bot"],
    )
    assert to_bot(BotForm(priority="high"), {})[1] == [
        FieldProblem("priority", "must be a whole number, not 'high'")
    ]
    assert preview("{bot.name} {record.title}", {"id": "b", "entity": "task"}, None).text == "b Sample task"


def test_the_editing_pages_have_the_strict_csp_and_no_inline_script(site: Site) -> None:
    for path in (
        "/a/default/bots/new",
        "/a/default/bots/inbound/edit",
        "/a/default/history",
        "/a/default/history/1/restore",
        "/a/default/users",
        "/a/default/users/anna/active?to=off",
        "/a/default/users/celina/offboard",
    ):
        response = site.page.get(path)
        assert response.status_code == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>|<[^>]*\s(?:style|on[a-z]+)=", response.text) == [], (
            path
        )
    hostile = site.page.get("/a/default/bots/xss/edit").text
    assert "&lt;script&gt;alert(1)" in hostile and "<script>alert(1)" not in hostile


# --- The condition builder, the plugins' fields, offboarding with a preview -----------------


def test_the_condition_builder_shows_a_condition_as_rows_and_publishes_the_rows_it_is_given(
    site: Site,
) -> None:
    fields = site.form("/a/default/bots/dist/edit")
    assert fields["where_mode"] == "builder" and fields["where"] == "$gt:\n  value: 0\n"
    assert (fields["cond_field"], fields["cond_op"], fields["cond_value"]) == (
        ["value", "", ""],
        ["gt", "eq", "eq"],
        ["0", "", ""],
    )
    fields.update(
        cond_join="all",
        cond_field=["value", "process", "title"],
        cond_op=["gte", "oneof", "contains"],
        cond_value=["1000", "sales, partners", "a.b"],
        where="ignored in the builder's mode",
        do="publish",
        message="built",
    )
    saved = site.page.post("/a/default/bots/dist/edit", data=fields)
    assert "Published version" in saved.text and "built" in saved.text
    dist = next(b for b in site.book()["bots"] if b["id"] == "dist")
    assert dist["trigger"]["where"] == {
        "$and": [
            {"$gte": {"value": 1000}},
            {"$or": [{"$eq": {"process": "sales"}}, {"$eq": {"process": "partners"}}]},
            {"$mt": {"title": ".*a[.]b.*"}},
        ]
    }
    again = site.form("/a/default/bots/dist/edit")
    assert (again["cond_field"][:3], again["cond_op"][:3], again["cond_value"][:3]) == (
        ["value", "process", "title"],
        ["gte", "oneof", "contains"],
        ["1000", "sales, partners", "a.b"],
    )

    def owners(record_id: str, title: str) -> list[str]:
        record = {"entity": "deal", "id": record_id, "title": title, "value": 5000, "process": "partners"}
        answer = site.api.post(
            "/v1/accounts/default/events",
            json={"id": record_id, "kind": "created", "record": {**record, "owners": ["bot:dist"]}},
            headers=bearer(site.secrets["events"]),
        )
        return list(answer.json()["owners_after"])

    assert owners("built-1", "xa.bx") in (["anna"], ["celina"])  # bartek is away, jan off
    assert owners("built-2", "xaXbx") == []  # "contains a.b": the dot is a dot; the bot does not apply


def test_a_condition_row_without_a_value_is_named_and_nothing_is_written(site: Site) -> None:
    count = len(site.versions())
    fields = site.form("/a/default/bots/dist/edit")
    fields.update(
        cond_field=["value", "", ""], cond_op=["gt", "eq", "eq"], cond_value=["", "", ""], do="publish"
    )
    refused = site.page.post("/a/default/bots/dist/edit", data=fields)
    assert refused.status_code == 422
    assert (
        '<span class="problem" id="where-problem">trigger.where: row 1 (value): is greater than needs a value'
        in (refused.text)
    )
    assert len(site.versions()) == count


def test_the_live_check_answers_the_text_the_rows_make_or_the_problems_of_a_text(site: Site) -> None:
    csrf = csrf_of(site.page.get("/a/default/bots/new").text)

    def check(**posted: Any) -> Any:
        answer = site.page.post("/a/default/condition", data={"csrf": csrf, **posted})
        assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
        return answer.json()

    built = {"where_mode": "builder", "cond_field": ["value", "zip"], "cond_op": ["gte", "eq"]}
    assert check(**built, cond_value=["10", '"123"'], cond_join="any") == {
        "where": "$or:\n- $gte:\n    value: 10\n- $eq:\n    zip: '123'\n",
        "problems": [],
        "join": "any",
        "rows": [["value", "gte", "10"], ["zip", "eq", '"123"']],
    }
    assert check(where_mode="raw", where="$or: [{$eq: {process: a}}, {$eq: {process: b}}]")["rows"] == [
        ["process", "oneof", "a, b"]
    ]
    nested = check(where_mode="raw", where="{$and: [{$or: [{$eq: {a: 1}}, {$gt: {b: 2}}]}, {c: 3}]}")
    assert (nested["problems"], nested["rows"]) == ([], None)  # valid, beyond the builder
    bad = check(where_mode="raw", where="$mt: {title: '^acme'}")
    assert bad["rows"] is None and bad["problems"] == [
        "trigger.where.$mt.title: pattern '^acme': '^' is not supported: a pattern always matches the whole "
        "text (use .* for any text)"
    ]
    assert check(where_mode="builder", cond_field=["title"], cond_op=["contains"], cond_value=["50%"])[
        "problems"
    ] == [
        "trigger.where: row 1 (title): contains cannot look for ^, \\, % or control characters: write the "
        "pattern in the text below"
    ]
    assert site.page.post("/a/default/condition", data={"where": "x: 1"}).status_code == 403


def test_the_plugins_bot_fields_are_edited_in_the_form_and_a_bad_value_is_named(site: Site) -> None:
    html = site.page.get("/a/default/bots/switchme/edit").text
    assert 'id="plugin-sla"' in html and "How long the picked owner has to act" in html
    assert '<input type="checkbox" id="plugin-sticky" name="plugin-sticky" value="on">' in html
    fields = site.form("/a/default/bots/switchme/edit")
    fields.update(
        {"plugin-sticky": "on", "plugin-schedule": "days: [mon, tue]\nstart: '09:00'\nend: '17:00'\n"},
        do="publish",
    )
    assert "Published version" in site.page.post("/a/default/bots/switchme/edit", data=fields).text
    switchme = next(b for b in site.book()["bots"] if b["id"] == "switchme")
    assert (switchme["sticky"], switchme["schedule"]) == (
        True,
        {"days": ["mon", "tue"], "start": "09:00", "end": "17:00"},
    )
    again = site.form("/a/default/bots/switchme/edit")
    assert (
        again["plugin-sticky"] == ["on"]
        and again["plugin-schedule"] == "days:\n- mon\n- tue\nend: '17:00'\nstart: 09:00\n"
    )

    count = len(site.versions())
    again.update({"plugin-sla": "within: soon"}, do="publish")
    refused = site.page.post("/a/default/bots/switchme/edit", data=again)
    assert refused.status_code == 422
    assert re.search(r'<span class="problem" id="plugin-sla-problem">sla\.within: [^<]*soon', refused.text)
    assert len(site.versions()) == count
    again.update({"plugin-sla": "", "plugin-schedule": "", "plugin-sticky": []})
    assert "Published version" in site.page.post("/a/default/bots/switchme/edit", data=again).text
    switchme = next(b for b in site.book()["bots"] if b["id"] == "switchme")
    assert "sticky" not in switchme and "schedule" not in switchme and "sla" not in switchme


def _rows(html: str, table: str) -> list[str]:
    """The rows of a table of the offboarding page, as text."""
    body = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body, html
    return [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
        for row in re.findall(r"<tr.*?</tr>", body[1], re.S)
    ]


def test_offboarding_from_the_page_shows_where_each_record_would_go_then_moves_exactly_that(
    site: Site,
) -> None:
    for n in range(4):
        record = {"entity": "deal", "id": f"leave-{n}", "owners": ["bot:inbound"]}
        site.api.post(
            "/v1/accounts/default/events",
            json={"id": f"leave-{n}", "kind": "created", "record": record},
            headers=bearer(site.secrets["events"]),
        )
    site.api.post(
        "/v1/accounts/default/events",
        json={
            "id": "by-hand",
            "kind": "created",
            "record": {"entity": "deal", "id": "by-hand", "owners": ["anna"]},
        },
        headers=bearer(site.secrets["events"]),
    )
    with Engine(None, site.db) as engine:
        annas = sorted(r for e, r in engine.store.open_records("default", "anna") if r.startswith("leave-"))
        outcomes = len(engine.explain("default", "deal", "leave-0"))
    assert len(annas) >= 1

    users = site.page.get("/a/default/users").text
    assert 'href="/a/default/users/anna/offboard">Offboard…' in users
    preview = site.page.get("/a/default/users/anna/offboard")
    assert preview.status_code == 200 and "Offboard user anna?" in preview.text
    moved = _rows(preview.text, "moved")
    assert [row for row in moved if row.startswith("deal leave-")] == [
        f"deal {r} Celina Zając Inbound leads its own pick" for r in annas
    ]
    assert _rows(preview.text, "left") == ["deal by-hand no active bot of its own, and no to-bot"]
    with Engine(None, site.db) as engine:  # a preview writes nothing
        assert (
            sorted(r for e, r in engine.store.open_records("default", "anna") if r.startswith("leave-"))
            == annas
        )
        assert len(engine.explain("default", "deal", "leave-0")) == outcomes
        assert [s.active for s in engine.users("default") if s.user.id == "anna"] == [True]
    to_bot = site.page.get("/a/default/users/anna/offboard?to_bot=switchme").text
    assert _rows(to_bot, "left") == ["None."]
    assert "deal by-hand Celina Zając Switch me its own pick" in _rows(to_bot, "moved")

    fields = site.form("/a/default/users/anna/offboard")
    assert fields["operation"].startswith("page-") and fields["to_bot"] == ""
    done = site.page.post("/a/default/users/anna/offboard", data=fields)
    assert done.status_code == 200 and "User anna offboarded" in done.text
    assert f"User Anna Nowak is switched off: {len(moved)} records moved, 1 stay with them." in done.text
    assert _rows(done.text, "moved") == moved  # exactly what the preview showed
    with Engine(None, site.db) as engine:
        assert sorted(r for e, r in engine.store.open_records("default", "anna")) == ["by-hand"]
        assert all(engine.record("default", "deal", r).owners == ["celina"] for r in annas)  # type: ignore[union-attr]
    users = site.page.get("/a/default/users").text
    assert re.search(r'id="user-anna".*?Off</span> <small>\(offboarded by token default/page\)', users, re.S)
    # Switched on from the page, the offboarding's switch is on again too.
    back = site.form("/a/default/users/anna/active?to=on")
    site.page.post("/a/default/users/anna/active", data=back)
    with Engine(None, site.db) as engine:
        assert [s.active for s in engine.users("default") if s.user.id == "anna"] == [True]


def test_switching_a_user_off_says_their_records_stay_and_offers_the_offboarding(site: Site) -> None:
    confirm = site.page.get("/a/default/users/anna/active?to=off").text
    assert re.search(r"\(in the pools of [^)]*\)\. Their 1 open records stay with them\.", confirm)
    assert 'href="/a/default/users/anna/offboard" id="more">Offboard instead' in confirm


# --- The user form ---------------------------------------------------------------------------


def test_a_user_added_then_edited_in_the_form_is_one_version_each_and_the_users_page_shows_it(
    site: Site,
) -> None:
    fields = site.form("/a/default/users/new")
    assert {"plugin-working_hours", "plugin-out_of_office", "plugin-caps"} <= set(fields)
    assert fields["timezone"] == "UTC" and fields["version"] == str(site.versions()[0].version)
    fields.update(id="dora", name="Dora Lis", timezone="Europe/Warsaw", message="dora joins")
    added = site.page.post("/a/default/users/new", data=fields)
    assert added.status_code == 200 and "/a/default/users?published=" in str(added.url)
    assert "dora joins" in added.text
    assert site.book()["users"][-1] == {"id": "dora", "name": "Dora Lis", "timezone": "Europe/Warsaw"}
    count = len(site.versions())

    fields = site.form("/a/default/users/dora/edit")
    assert (fields["name"], fields["timezone"], fields["plugin-working_hours"]) == (
        "Dora Lis",
        "Europe/Warsaw",
        "",
    )
    fields.update(
        {
            "plugin-working_hours": "{days: [mon, fri], start: '08:00', end: '16:00'}",
            "plugin-out_of_office": "- {start: '2030-07-01T00:00:00', end: '2030-07-15T00:00:00', "
            "reason: sailing}",
            "plugin-caps": "day: 5",
        }
    )
    saved = site.page.post("/a/default/users/dora/edit", data=fields)
    assert saved.status_code == 200 and "user dora saved in the page" in saved.text
    latest = site.versions()[0]
    assert (len(site.versions()), latest.author) == (count + 1, AUTHOR)
    assert site.book()["users"][-1] == {
        "id": "dora",
        "name": "Dora Lis",
        "timezone": "Europe/Warsaw",
        "working_hours": {"days": ["mon", "fri"], "start": "08:00", "end": "16:00"},
        "out_of_office": [
            {"start": "2030-07-01T00:00:00", "end": "2030-07-15T00:00:00", "reason": "sailing"}
        ],
        "caps": {"day": 5},
    }
    users = site.page.get("/a/default/users").text
    row = re.search(r'<tr id="user-dora">(.*?)</tr>', users, re.S)
    assert row is not None
    cells = [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c)).strip()
        for c in re.findall(r"<t[dh].*?</t[dh]>", row[1], re.S)
    ]
    headers = re.findall(r'<th scope="col"[^>]*>([^<]*)</th>', users)
    assert headers == [
        "User",
        "Time zone",
        "Caps",
        "Out of office",
        "Working hours",
        "In the pools of",
        "Active",
    ]
    assert cells[:6] == [
        "Dora Lis dora Edit",
        "Europe/Warsaw",
        "day 5",
        "start 2030-07-01T00:00:00; end 2030-07-15T00:00:00; reason sailing",
        "days mon, fri; start 08:00; end 16:00",
        "—",
    ]
    assert 'href="/a/default/users/dora/edit"' in users and 'href="/a/default/users/new"' in users


def test_a_bad_time_zone_or_working_hours_in_the_user_form_is_named_and_nothing_is_written(
    site: Site,
) -> None:
    fields = site.form("/a/default/users/jan/edit")
    count = len(site.versions())
    index = [u["id"] for u in site.book()["users"]].index("jan")
    fields.update({"timezone": "Mars/Olympus", "plugin-working_hours": "{start: '18:00', end: '09:00'}"})
    refused = site.page.post("/a/default/users/jan/edit", data=fields)
    assert refused.status_code == 422
    assert re.findall(r'<span class="problem" id="([^"]+)">([^<]*)</span>', refused.text) == [
        (
            "timezone-problem",
            f"users[{index}].timezone: Value error, unknown time zone &#39;Mars/Olympus&#39;",
        ),
        (
            "plugin-working_hours-problem",
            f"users[{index}].working_hours: Value error, start must be before end",
        ),
    ]
    assert 'value="Mars/Olympus"' in refused.text  # what was typed is kept
    fields.update({"timezone": "UTC", "plugin-working_hours": "[unclosed"})
    unreadable = site.page.post("/a/default/users/jan/edit", data=fields)
    assert unreadable.status_code == 422
    assert f"users[{index}].working_hours: not readable YAML or JSON" in unreadable.text
    assert len(site.versions()) == count


def test_the_user_form_refuses_a_stale_version_a_taken_id_and_a_post_without_csrf(site: Site) -> None:
    fields = site.form("/a/default/users/anna/edit")
    count = len(site.versions())
    stale = site.page.post("/a/default/users/anna/edit", data={**fields, "version": "1", "name": "Anna N."})
    assert stale.status_code == 409 and 'id="stale"' in stale.text and 'value="Anna N."' in stale.text
    taken = site.page.post("/a/default/users/new", data={**site.form("/a/default/users/new"), "id": "anna"})
    assert taken.status_code == 422 and "id: a user &#39;anna&#39; exists already" in taken.text
    without = {k: v for k, v in fields.items() if k != "csrf"}
    assert site.page.post("/a/default/users/anna/edit", data=without).status_code == 403
    assert site.page.get("/a/default/users/ghost/edit").status_code == 404
    assert len(site.versions()) == count
