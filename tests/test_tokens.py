"""API tokens of ``salesbot serve``: created once, kept as a hash, listed, revoked, on both
stores; and the schema migration that added them."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from store_queries import rows

from salesbot_core import Engine
from salesbot_core.cli import main
from salesbot_core.engine import open_store
from salesbot_core.errors import SalesbotError
from salesbot_core.registry import make_plugin_manager
from salesbot_core.tokens import authenticate, create_token, revoke_token


def store(url: str):
    return open_store(make_plugin_manager(), url)


def test_a_token_is_kept_as_its_hash_and_authenticates_until_revoked(store_url: str) -> None:
    s = store(store_url)
    try:
        secret = create_token(s, "acme", "crm-prod", ["read", "events"])
        assert secret.startswith("sb_") and len(secret) > 40
        stored = rows(store_url, "SELECT account, name, hash, scopes FROM tokens")
        assert stored == [
            ("acme", "crm-prod", hashlib.sha256(secret.encode()).hexdigest(), json.dumps(["events", "read"]))
        ]
        found = authenticate(s, secret)
        assert found is not None and (found.account, found.name, found.scopes) == (
            "acme",
            "crm-prod",
            ["events", "read"],
        )
        assert authenticate(s, secret + "x") is None
        assert authenticate(s, "not-a-token") is None
        with pytest.raises(SalesbotError, match="already has a token named 'crm-prod'"):
            create_token(s, "acme", "crm-prod")
        other = create_token(s, "*", "ops")
        assert [(t.account, t.name) for t in s.tokens()] == [("*", "ops"), ("acme", "crm-prod")]
        assert [t.name for t in s.tokens("acme")] == ["crm-prod"]
        revoke_token(s, "acme", "crm-prod")
        assert authenticate(s, secret) is None
        assert authenticate(s, other) is not None
        with pytest.raises(SalesbotError, match="has no token 'crm-prod' that is not revoked"):
            revoke_token(s, "acme", "crm-prod")
        assert s.tokens("acme")[0].revoked_at is not None
    finally:
        s.close()


@pytest.mark.parametrize(
    ("account", "name", "scopes", "message"),
    [
        ("acme", "crm prod", ["read"], "token name 'crm prod'"),
        ("a/b", "crm", ["read"], "account 'a/b' is not an account id"),
        ("acme", "crm", ["write"], "unknown scope 'write'"),
        ("acme", "crm", [], "unknown scope (none)"),
    ],
)
def test_bad_tokens_are_refused(
    tmp_path: Path, account: str, name: str, scopes: list[str], message: str
) -> None:
    s = store(str(tmp_path / "s.db"))
    try:
        with pytest.raises(SalesbotError, match=message.replace("(", r"\(").replace(")", r"\)")):
            create_token(s, account, name, scopes)
        assert s.tokens() == []
    finally:
        s.close()


def test_the_token_commands(tmp_path: Path) -> None:
    db = ["--db", str(tmp_path / "s.db")]
    runner = CliRunner()
    created = runner.invoke(
        main, ["token", "create", "--account", "acme", "--name", "crm", "--scope", "read", *db]
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert secret.startswith("sb_") and "only time" in created.stderr
    admin = runner.invoke(main, ["token", "create", "--admin", "--name", "ops", *db])
    assert admin.exit_code == 0, admin.output
    listed = runner.invoke(main, ["token", "list", "--json", *db])
    assert listed.exit_code == 0, listed.output
    assert secret not in listed.stdout and admin.stdout.strip() not in listed.stdout
    assert [(t["account"], t["name"], t["scopes"], t["revoked_at"]) for t in json.loads(listed.stdout)] == [
        ("*", "ops", ["events", "read", "manage"], None),
        ("acme", "crm", ["read"], None),
    ]
    table = runner.invoke(main, ["token", "list", "--account", "acme", *db], env={"COLUMNS": "200"})
    assert "crm" in table.stdout and "ops" not in table.stdout and secret not in table.stdout
    revoked = runner.invoke(main, ["token", "revoke", "--account", "acme", "crm", *db])
    assert (revoked.exit_code, revoked.stdout) == (0, "token 'crm' of account 'acme' is revoked\n")
    again = runner.invoke(main, ["token", "revoke", "--account", "acme", "crm", *db])
    assert again.exit_code == 1
    assert again.stderr == "error: account 'acme' has no token 'crm' that is not revoked already\n"
    both = runner.invoke(main, ["token", "create", "--admin", "--account", "acme", "--name", "x", *db])
    assert both.exit_code == 2


def test_a_version_3_sqlite_file_gets_the_tokens_table(deal_bot_rules: Path, tmp_path: Path) -> None:
    db = tmp_path / "v3.db"
    with Engine(deal_bot_rules, db):
        pass
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE tokens")
    conn.execute("PRAGMA user_version = 3")
    conn.close()
    s = store(str(db))
    try:
        create_token(s, "acme", "crm")
    finally:
        s.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone() == (7,)
    assert conn.execute("SELECT account, name FROM tokens").fetchall() == [("acme", "crm")]
    conn.close()


def test_a_version_2_postgresql_database_gets_the_tokens_table(
    deal_bot_rules: Path, postgres_url: str
) -> None:
    import psycopg

    with Engine(deal_bot_rules, postgres_url):
        pass
    with psycopg.connect(postgres_url) as conn:
        conn.execute("DROP TABLE tokens")
        conn.execute("UPDATE salesbot_schema SET version = 2")
    s = store(postgres_url)
    try:
        create_token(s, "acme", "crm")
    finally:
        s.close()
    assert rows(postgres_url, "SELECT version FROM salesbot_schema") == [(6,)]
    assert rows(postgres_url, "SELECT account, name FROM tokens") == [("acme", "crm")]
