"""Rules kept in the store: versions, checks, drafts, restore, and engines that see a publish.

Every test runs on SQLite and on a real PostgreSQL server (``store_url``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from salesbot_core import Engine
from salesbot_core.errors import EventError, StaleVersion
from salesbot_core.managing import RulesInFolder
from salesbot_core.rulebook import NotFound, RulebookError, UserInPools, sync_users
from salesbot_core.rulebook import remove_user as rulebook_remove_user
from salesbot_plugins.kept_rules import ACCOUNT_TABLES

TEAM: dict[str, Any] = {
    "users": [{"id": "anna"}, {"id": "bartek"}, {"id": "celina", "name": "Celina Nowak"}],
    "bots": [
        {"id": "inbound", "users": ["anna", "bartek"], "actions": {"tag": "inbound"}},
        {"id": "partners", "entity": "person", "users": ["celina"], "fallback": "anna"},
    ],
}


def deal(event_id: str, bot: str, account: str = "acme") -> dict[str, Any]:
    return {
        "id": event_id,
        "account": account,
        "kind": "created",
        "record": {"entity": "deal", "id": f"d-{event_id}", "owners": [f"bot:{bot}"]},
    }


@pytest.fixture
def engines(store_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one store, as two workers are: one publishes, the other routes."""
    first = Engine(None, store_url)
    second = Engine(None, store_url)
    first.store.create_account("acme", "professional", True)
    yield first, second
    first.close()
    second.close()


def test_an_outcome_names_the_version_it_was_decided_under_in_another_engine(
    engines: tuple[Engine, Engine],
) -> None:
    editor, worker = engines
    assert editor.publish("acme", TEAM, 0, author="ops", message="first team") == 1
    first = worker.handle(deal("e1", "inbound"))
    assert (first.owners_after, first.rules_version) == (["anna"], 1)
    # The other engine publishes a new bot: the worker takes an event for it at once.
    vip = {**TEAM, "bots": [*TEAM["bots"], {"id": "vip", "users": ["celina"]}]}
    assert editor.publish("acme", vip, 1, author="ops") == 2
    second = worker.handle(deal("e2", "vip"))
    assert (second.owners_after, second.rules_version) == (["celina"], 2)
    third = worker.handle(deal("e3", "inbound"))
    assert (third.owners_after, third.rules_version) == (["bartek"], 2)
    assert "  decided under rules version 2" in third.explain()
    # A bot removed in the other engine: its events are refused from the next one on.
    assert editor.publish("acme", TEAM, 2) == 3
    with pytest.raises(EventError, match="'bot:vip' is not a bot of account 'acme'"):
        worker.handle(deal("e4", "vip"))


def test_a_stale_publish_is_refused_and_writes_nothing(engines: tuple[Engine, Engine]) -> None:
    editor, other = engines
    editor.publish("acme", TEAM, 0)
    other.publish("acme", {**TEAM, "settings": {"timezone": "Europe/Warsaw"}}, 1)
    with pytest.raises(StaleVersion) as raised:
        editor.publish("acme", {**TEAM, "settings": {"multiple_owners": True}}, 1)
    assert (raised.value.expected, raised.value.current) == (1, 2)
    assert [v.version for v in editor.versions("acme")] == [2, 1]
    assert editor.rulebook("acme")[1]["settings"] == {"timezone": "Europe/Warsaw"}


def test_an_invalid_rulebook_names_each_field_and_writes_nothing(engines: tuple[Engine, Engine]) -> None:
    editor, _ = engines
    editor.publish("acme", TEAM, 0)
    bad = {
        "users": [{"id": "anna"}, {"id": "bartek", "timezone": "Mars/Base"}],
        "bots": [
            {"id": "inbound", "users": ["anna", "ghost"]},
            {"id": "later", "users": ["anna"], "strategy": "coin_toss"},
        ],
    }
    with pytest.raises(RulebookError) as raised:
        editor.publish("acme", bad, 1)
    assert [(p.field, p.message) for p in raised.value.problems] == [
        ("users[1].timezone", "Value error, unknown time zone 'Mars/Base'"),
    ]
    bad["users"][1] = {"id": "bartek"}
    with pytest.raises(RulebookError) as raised:
        editor.publish("acme", bad, 1)
    assert [p.field for p in raised.value.problems] == ["bots[0].users[1]", "bots[1].strategy"]
    assert raised.value.problems[0].message.startswith("unknown user 'ghost'")
    assert [v.version for v in editor.versions("acme")] == [1]


def test_the_plan_the_operator_set_limits_every_publish(engines: tuple[Engine, Engine]) -> None:
    editor, _ = engines
    editor.store.update_account("acme", plan="automation")
    with pytest.raises(RulebookError) as raised:
        editor.publish("acme", TEAM, 0)
    assert [(p.field, p.message) for p in raised.value.problems] == [
        ("bots[1].entity", "plan 'automation' allows bots for deal records only"),
        (
            "bots[1]",
            "plan 'automation' allows 1 bot(s) per account; 'inbound' in account acme is already one",
        ),
    ]
    one = {**TEAM, "bots": TEAM["bots"][:1]}
    assert editor.publish("acme", one, 0) == 1
    assert editor.rules.account_settings("acme").plan == "automation"


def test_restore_is_a_new_version_with_the_old_content_and_diffs_say_what_changed(
    engines: tuple[Engine, Engine],
) -> None:
    editor, worker = engines
    editor.publish("acme", TEAM, 0, author="ops", message="first")
    changed = {
        "settings": {"timezone": "Europe/Warsaw"},
        "users": TEAM["users"],
        "bots": [{**TEAM["bots"][0], "users": ["bartek"]}, TEAM["bots"][1]],
    }
    editor.publish("acme", changed, 1, author="ops", message="bartek alone")
    assert editor.version_diff("acme", 2) == [
        {"op": "added", "path": "settings.timezone", "after": "Europe/Warsaw"},
        {"op": "changed", "path": "bots.inbound.users", "before": ["anna", "bartek"], "after": ["bartek"]},
    ]
    assert editor.restore("acme", 1, 2, author="lead") == 3
    versions = editor.versions("acme")
    assert [(v.version, v.author, v.message, v.restored_from) for v in versions] == [
        (3, "lead", "restore version 1", 1),
        (2, "ops", "bartek alone", None),
        (1, "ops", "first", None),
    ]
    assert editor.rulebook("acme", 3)[1] == editor.rulebook("acme", 1)[1]
    assert editor.version_diff("acme", 3, against=1) == []
    assert worker.handle(deal("e1", "inbound")).owners_after == ["anna"]
    # Publishing what is already current makes no version.
    assert editor.publish("acme", TEAM, 3) == 3


def test_a_version_number_past_any_a_store_holds_is_no_version(engines: tuple[Engine, Engine]) -> None:
    """2**63 reached SQLite as an integer and overflowed (schemathesis found it on
    ``GET .../versions/{number}/diff``): it names no version, and every version is before it."""
    editor, _ = engines
    editor.publish("acme", TEAM, 0, author="ops")
    for number in (2**63, -1):
        with pytest.raises(NotFound) as raised:
            editor.rulebook("acme", number)
        assert str(raised.value) == f"account 'acme' has no rules version {number}"
        with pytest.raises(NotFound):
            editor.version_diff("acme", number)
    assert [v.version for v in editor.versions("acme", before=2**63)] == [1]


def test_a_user_in_pools_is_removed_only_with_them(engines: tuple[Engine, Engine]) -> None:
    editor, _ = engines
    editor.publish("acme", TEAM, 0)
    _, book = editor.rulebook("acme")
    with pytest.raises(UserInPools) as raised:
        rulebook_remove_user(book, "anna")
    assert raised.value.bots == ["inbound", "partners"]
    without = rulebook_remove_user(book, "anna", from_pools=True)
    assert editor.publish("acme", without, 1) == 2
    _, book = editor.rulebook("acme")
    assert [u["id"] for u in book["users"]] == ["bartek", "celina"]
    assert book["bots"] == [
        {"id": "inbound", "users": ["bartek"], "actions": {"tag": "inbound"}},
        {"id": "partners", "entity": "person", "users": ["celina"]},
    ]


def test_a_directory_sync_adds_updates_and_deactivates() -> None:
    book, report = sync_users(
        TEAM,
        [
            {"id": "anna", "name": "Anna Kowalska"},
            {"id": "bartek"},
            {"id": "dorota", "email": "dorota@example.com"},
        ],
    )
    assert report == {
        "added": ["dorota"],
        "updated": ["anna"],
        "deactivated": ["celina"],
        "unchanged": ["bartek"],
    }
    assert book["users"] == [
        {"id": "anna", "name": "Anna Kowalska"},
        {"id": "bartek"},
        {"id": "celina", "name": "Celina Nowak", "active": False},
        {"id": "dorota", "email": "dorota@example.com"},
    ]


def test_a_draft_gathers_edits_and_publishes_as_one_version(engines: tuple[Engine, Engine]) -> None:
    editor, worker = engines
    editor.publish("acme", TEAM, 0)
    _, book = editor.rulebook("acme")
    book["bots"][0]["users"] = ["bartek"]
    editor.save_draft("acme", "pools", book, 1, author="ops")
    book["users"].append({"id": "dorota"})
    book["bots"][0]["users"] = ["bartek", "dorota"]
    editor.save_draft("acme", "pools", book, 1, author="ops")
    assert worker.handle(deal("e1", "inbound")).owners_after == ["anna"]  # not published yet
    assert editor.publish_draft("acme", "pools", message="two edits") == 2
    assert editor.store.drafts("acme") == []
    assert [c["path"] for c in editor.version_diff("acme", 2)] == ["users.dorota", "bots.inbound.users"]
    assert worker.handle(deal("e2", "inbound")).owners_after == ["bartek"]


def test_a_draft_on_an_older_version_is_stale(engines: tuple[Engine, Engine]) -> None:
    editor, _ = engines
    editor.publish("acme", TEAM, 0)
    editor.save_draft("acme", "late", TEAM, 0)
    with pytest.raises(StaleVersion):
        editor.publish_draft("acme", "late")
    assert [d.draft for d in editor.store.drafts("acme")] == ["late"]


def test_a_suspended_account_takes_no_event(engines: tuple[Engine, Engine]) -> None:
    editor, worker = engines
    editor.publish("acme", TEAM, 0)
    editor.store.update_account("acme", status="suspended")
    with pytest.raises(EventError, match="account 'acme' is suspended"):
        worker.handle(deal("e1", "inbound"))
    editor.store.update_account("acme", status="active")
    assert worker.handle(deal("e1", "inbound")).owners_after == ["anna"]


def test_a_deleted_account_leaves_no_row_in_any_table(engines: tuple[Engine, Engine]) -> None:
    editor, worker = engines
    editor.publish("acme", TEAM, 0)
    worker.handle(deal("e1", "inbound"))
    editor.store.add_token("acme", "crm", "f" * 64, ["read"])
    assert editor.store.delete_account("acme") is True
    assert editor.store.accounts() == []
    assert editor.store.tokens("acme") == []
    assert list(editor.store.outcomes("acme", "deal", "d-e1")) == []
    assert editor.store.get_record("acme", "deal", "d-e1") is None
    with pytest.raises(EventError, match="'bot:inbound' is not a bot of account 'acme'"):
        worker.handle(deal("e2", "inbound"))


def test_every_table_of_an_account_is_deleted_with_it(tmp_path: Path) -> None:
    Engine(None, tmp_path / "s.db").close()
    conn = sqlite3.connect(tmp_path / "s.db")
    tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    with_account = {
        table
        for table in tables
        if "account" in [row[1] for row in conn.execute(f"SELECT * FROM pragma_table_info('{table}')")]
    }
    assert with_account == set(ACCOUNT_TABLES)


def test_an_engine_on_a_folder_refuses_edits(tmp_path: Path, deal_bot_rules: Path) -> None:
    with Engine(deal_bot_rules, tmp_path / "s.db") as engine:
        engine.store.create_account("acme", "professional", True)
        with pytest.raises(RulesInFolder, match="the rules come from the folder"):
            engine.publish("acme", TEAM, 0)
        assert engine.store.rules_versions("acme") == []
