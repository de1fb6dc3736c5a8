"""The command line of rules kept in the store: ``salesbot rules pull|push|versions|diff|
restore`` and the operator's ``salesbot account`` commands, on real SQLite files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from cli_runner import ROOT, salesbot

from factories import deal_event
from salesbot_core import Engine
from salesbot_core.models import PLANS
from salesbot_core.vocabulary import PLAN_NAMES


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "salesbot.db")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the shipped rulesets: account ``default`` in two files (YAML and TOML)."""
    return shutil.copytree(ROOT / "rulesets", tmp_path / "rulesets")


def ok(*args: str) -> str:
    result = salesbot(*args)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def stored(db: str, account: str = "default") -> tuple[int, dict[str, object]]:
    with Engine(None, db) as engine:
        return engine.rulebook(account)


def test_push_publishes_the_shipped_folder_as_version_1(folder: Path, db: str) -> None:
    out = ok("rules", "push", "--account", "default", str(folder), "--db", db, "-m", "from files")
    assert out == "created account 'default'\naccount 'default': published, version 1\n"
    version, book = stored(db)
    assert version == 1
    # Both files' users and bots, in file order; the operator's settings are not versioned.
    assert [bot["id"] for bot in book["bots"]] == ["inbound", "enterprise", "partners"]  # type: ignore[index]
    assert book["settings"] == {"multiple_owners": False}


def test_pull_then_push_round_trips_to_the_same_version(folder: Path, db: str, tmp_path: Path) -> None:
    ok("rules", "push", "-a", "default", str(folder), "--db", db)
    pulled = tmp_path / "pulled"
    out = ok("rules", "pull", "-a", "default", str(pulled), "--db", db)
    assert out == f"wrote {pulled / 'default.yaml'} (account 'default', version 1)\n"
    document = yaml.safe_load((pulled / "default.yaml").read_text(encoding="utf-8"))
    assert list(document) == ["account", "settings", "users", "bots"]
    assert list(document["bots"][0])[:3] == ["id", "name", "entity"]
    assert document["settings"] == {"plan": "professional", "enabled": True, "multiple_owners": False}
    assert ok("rules", "push", "-a", "default", str(pulled), "--db", db) == (
        "account 'default': unchanged, version 1\n"
    )
    _, book = stored(db)
    assert {
        "settings": {"multiple_owners": False},
        "users": document["users"],
        "bots": document["bots"],
    } == book
    # The pulled folder is a valid folder on its own.
    assert "3 bots in" in ok("validate", "-r", str(pulled))


def test_pull_refuses_to_overwrite_the_accounts_files_unless_forced(folder: Path, db: str) -> None:
    ok("rules", "push", "-a", "default", str(folder), "--db", db)
    refused = salesbot("rules", "pull", "-a", "default", str(folder), "--db", db)
    assert refused.exit_code == 1
    assert refused.stderr == (
        f"error: {folder} already holds ruleset files of account 'default' (example.yaml, partners.toml): "
        "pass --force to replace them\n"
    )
    assert sorted(p.name for p in folder.iterdir()) == ["example.yaml", "partners.toml"]
    out = ok("rules", "pull", "-a", "default", str(folder), "--db", db, "--force")
    assert sorted(p.name for p in folder.iterdir()) == ["default.yaml"]
    assert "removed" in out and ok("rules", "push", "-a", "default", str(folder), "--db", db).endswith(
        "unchanged, version 1\n"
    )


def test_an_invalid_file_is_named_with_its_bot_and_field_and_nothing_is_written(
    folder: Path, db: str
) -> None:
    text = (folder / "partners.toml").read_text(encoding="utf-8")
    (folder / "partners.toml").write_text(text.replace('strategy = "round_robin"', 'strategy = "nope"'))
    result = salesbot("rules", "push", "-a", "default", str(folder), "--db", db)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: {folder / 'partners.toml'}: bot 'partners': field 'strategy': unknown strategy 'nope'"
    )
    assert ok("account", "list", "--json", "--db", db) == '{"accounts": []}\n'


def test_a_stale_expect_version_names_the_current_one(folder: Path, db: str) -> None:
    ok("rules", "push", "-a", "default", str(folder), "--db", db, "--expect-version", "0")
    result = salesbot("rules", "push", "-a", "default", str(folder), "--db", db, "--expect-version", "0")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: account 'default': the rules are at version 1, not 0; read them again and make the "
        "change on the current version\n"
    )


def test_the_files_plan_sets_the_accounts_standing(folder: Path, db: str) -> None:
    ok("rules", "push", "-a", "default", str(folder), "--db", db)
    ok("account", "set", "default", "--plan", "growth", "--db", db)
    # The files still say professional: a push sets it back, and makes no version.
    assert ok("rules", "push", "-a", "default", str(folder), "--db", db) == (
        "account 'default': plan professional\naccount 'default': unchanged, version 1\n"
    )


#: An account without a rate limit of its own: serve's defaults apply.
NO_OWN_LIMIT = {"rate_limit": None, "rate_burst": None}


def test_account_create_list_set_delete(db: str) -> None:
    assert ok("account", "create", "acme", "--plan", "growth", "--db", db) == (
        "account 'acme': active, growth, enabled, version 0\n"
    )
    assert ok("account", "create", "beta", "--disabled", "--db", db) == (
        "account 'beta': active, professional, disabled, version 0\n"
    )
    again = salesbot("account", "create", "acme", "--db", db)
    assert (again.exit_code, again.stderr) == (1, "error: account 'acme' already exists\n")
    assert ok("account", "set", "acme", "--suspend", "--disable", "--plan", "automation", "--db", db) == (
        "account 'acme': suspended, automation, disabled, version 0\n"
    )
    assert json.loads(ok("account", "list", "--json", "--db", db)) == {
        "accounts": [
            {"account": "acme", "status": "suspended", "plan": "automation", "enabled": False, "version": 0}
            | NO_OWN_LIMIT,
            {"account": "beta", "status": "active", "plan": "professional", "enabled": False, "version": 0}
            | NO_OWN_LIMIT,
        ]
    }
    lines = ok("account", "list", "--db", db).splitlines()
    assert [c.strip() for c in lines[2].split("┃")[1:-1]] == [
        "account",
        "status",
        "plan",
        "enabled",
        "version",
        "rate limit",
    ]
    table = [line.split("│")[1:-1] for line in lines if "│" in line]
    assert [[cell.strip() for cell in row] for row in table] == [
        ["acme", "suspended", "automation", "no", "0", "default"],
        ["beta", "active", "professional", "no", "0", "default"],
    ]
    refused = salesbot("account", "delete", "acme", "--db", db)
    assert refused.exit_code == 1 and "pass --yes" in refused.stderr
    assert ok("account", "delete", "acme", "--yes", "--db", db) == "deleted account 'acme'\n"
    missing = salesbot("account", "set", "acme", "--resume", "--db", db)
    assert (missing.exit_code, missing.stderr) == (1, "error: no account 'acme'\n")
    assert set(PLAN_NAMES) == set(PLANS)


def test_versions_diff_and_restore(folder: Path, db: str) -> None:
    ok("rules", "push", "-a", "default", str(folder), "--db", db, "-m", "first")
    example = folder / "example.yaml"
    example.write_text(
        example.read_text(encoding="utf-8").replace("multiple_owners: false", "multiple_owners: true")
    )
    ok("rules", "push", "-a", "default", str(folder), "--db", db, "-m", "two owners")
    assert ok("rules", "diff", "-a", "default", "2", "--db", db) == (
        "changed settings.multiple_owners: false -> true\n"
    )
    assert ok("rules", "diff", "-a", "default", "1", "--against", "1", "--db", db) == "no changes\n"
    assert ok("rules", "restore", "-a", "default", "1", "--db", db) == (
        "account 'default': version 1 restored as version 3\n"
    )
    listed = json.loads(ok("rules", "versions", "-a", "default", "--json", "--db", db))
    for version in listed["versions"]:
        assert version.pop("created_at").endswith("Z")
    assert listed == {
        "account": "default",
        "version": 3,
        "versions": [
            {"version": 3, "author": "cli", "message": "restore version 1", "restored_from": 1},
            {"version": 2, "author": "cli", "message": "two owners", "restored_from": None},
            {"version": 1, "author": "cli", "message": "first", "restored_from": None},
        ],
    }
    lines = ok("rules", "versions", "-a", "default", "--db", db).splitlines()
    assert [c.strip() for c in lines[2].split("┃")[1:-1]] == [
        "version",
        "created",
        "author",
        "message",
        "restored from",
    ]
    rows = [line.split("│")[1:-1] for line in lines if "│" in line]
    assert [[c.strip() for c in row[:1] + row[2:]] for row in rows] == [
        ["3", "cli", "restore version 1", "1"],
        ["2", "cli", "two owners", ""],
        ["1", "cli", "first", ""],
    ]
    assert stored(db)[1]["settings"] == {"multiple_owners": False}


def test_run_with_rules_from_the_store_routes_after_a_push(folder: Path, db: str, tmp_path: Path) -> None:
    ok("rules", "push", "-a", "default", str(folder), "--db", db)
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(deal_event(1, process="Sales")) + "\n", encoding="utf-8")
    ok("run", str(events), "--rules-from", "store", "--db", db, "-r", str(tmp_path / "no-such-folder"))
    assert json.loads(ok("show", "deal", "d1", "--json", "--db", db))["record"]["owners"] == ["anna"]


def test_a_new_bot_is_an_added_line_and_pull_version_gives_the_older_rules(
    folder: Path, db: str, tmp_path: Path
) -> None:
    ok("rules", "push", "-a", "default", str(folder), "--db", db)
    (folder / "vip.toml").write_text('[[bots]]\nid = "vip"\nusers = ["jan"]\n', encoding="utf-8")
    assert ok("rules", "push", "-a", "default", str(folder), "--db", db).endswith("published, version 2\n")
    assert ok("rules", "diff", "-a", "default", "2", "--db", db) == (
        'added bots.vip: {"id": "vip", "users": ["jan"]}\n'
    )
    ok("rules", "pull", "-a", "default", str(tmp_path / "v1"), "--version", "1", "--db", db)
    document = yaml.safe_load((tmp_path / "v1" / "default.yaml").read_text(encoding="utf-8"))
    assert [bot["id"] for bot in document["bots"]] == ["inbound", "enterprise", "partners"]
