"""Signed inbound requests: the signature scheme, the service refusing unsigned or badly
signed requests of an account that signs, the signing commands, and the schema
migration that added signing secrets, webhooks and deliveries."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from store_queries import rows
from test_service import DEAL_EVENT, bearer, rules, serve, tokens

from salesbot_core import Engine
from salesbot_core.cli import main
from salesbot_core.engine import open_store
from salesbot_core.http.app import create_app
from salesbot_core.http.common import PROBLEM_JSON
from salesbot_core.http.signing import (
    SIGNATURE_HEADER,
    SignatureError,
    environment_name,
    environment_secrets,
    signature,
    signature_header,
    verify,
)
from salesbot_core.registry import make_plugin_manager
from salesbot_plugins.postgres_store import SCHEMA_VERSION as POSTGRES_VERSION
from salesbot_plugins.sqlite_store import SCHEMA_VERSION as SQLITE_VERSION


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"id":"e1"}'
    expected = hmac.new(b"whsec_k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("whsec_k", 1700000000, body) == expected
    assert signature_header(["whsec_k"], body, 1700000000) == f"t=1700000000,v1={expected}"


@pytest.mark.parametrize(
    ("header", "body", "now", "message"),
    [
        (None, b"{}", 1000, "send a Salesbot-Signature header"),
        ("v1=abc", b"{}", 1000, "has no timestamp"),
        ("t=1000", b"{}", 1000, "has no signature"),
        (signature_header(["k"], b"{}", 1000), b"{} ", 1000, "no signature .* matches"),  # tampered body
        (signature_header(["other"], b"{}", 1000), b"{}", 1000, "no signature .* matches"),  # wrong secret
        (signature_header(["k"], b"{}", 1000), b"{}", 1301, "more than 300 seconds"),  # stale
        (signature_header(["k"], b"{}", 1000), b"{}", 699, "more than 300 seconds"),  # from the future
        ("t=1000,v1=\u00e9\u00e9", b"{}", 1000, "no signature .* matches"),  # not ASCII
    ],
)
def test_bad_signatures_say_why(header: str | None, body: bytes, now: int, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        verify(header, body, ["k"], now=now)


def test_rotation_any_signature_of_any_secret_is_valid() -> None:
    body = b'{"a":1}'
    verify(signature_header(["k"], body, 1000), body, ["k"], now=1300)
    both = signature_header(["old", "new"], body, 1000)
    verify(both, body, ["new"], now=1000)  # the receiver moved on: the second v1 matches
    verify(both, body, ["old"], now=1000)  # not yet: the first one does
    verify(signature_header(["old"], body, 1000), body, ["new", "old"], now=1000)
    with pytest.raises(SignatureError):
        verify(both, body, ["newer"], now=1000)


@pytest.fixture
def signed(
    write_rules: Callable[..., Path], tmp_path: Path
) -> Iterator[tuple[TestClient, dict[str, str], str]]:
    """The service on an account ``default`` that signs, with its tokens and secret."""
    db = str(tmp_path / "salesbot.db")
    folder = rules(write_rules)
    made = tokens(db)
    enabled = CliRunner().invoke(main, ["signing", "enable", "--account", "default", "--db", db])
    assert enabled.exit_code == 0, enabled.output
    secret = enabled.stdout.strip()
    assert secret.startswith("whsec_") and "only time" in enabled.stderr
    with TestClient(create_app(rulesets=folder, db=db)) as client:
        yield client, made, secret


def post(client: TestClient, path: str, body: bytes, headers: dict[str, str]) -> object:
    return client.post(
        f"/v1/accounts/default/{path}", content=body, headers={"Content-Type": "application/json", **headers}
    )


def test_an_account_that_signs_needs_a_valid_signature(
    signed: tuple[TestClient, dict[str, str], str],
) -> None:
    client, made, secret = signed
    body = json.dumps(DEAL_EVENT).encode()
    auth = bearer(made["all"])

    def refused(response: object, detail: str) -> None:
        assert response.status_code == 401, response.text  # type: ignore[attr-defined]
        assert response.headers["content-type"] == PROBLEM_JSON  # type: ignore[attr-defined]
        problem = response.json()  # type: ignore[attr-defined]
        assert problem["type"] == "urn:salesbot:problem:bad-signature" and detail in problem["detail"]

    refused(post(client, "events", body, auth), "send a Salesbot-Signature header")
    now = int(time.time())
    tampered = body.replace(b"d1", b"d2")
    refused(
        post(client, "events", tampered, auth | {SIGNATURE_HEADER: signature_header([secret], body, now)}),
        "no signature",
    )
    stale = signature_header([secret], body, now - 301)
    refused(post(client, "events", body, auth | {SIGNATURE_HEADER: stale}), "more than 300 seconds")
    wrong = signature_header(["whsec_wrong"], body, now)
    refused(post(client, "events", body, auth | {SIGNATURE_HEADER: wrong}), "no signature")
    # Nothing of the refused requests was processed.
    assert client.get("/v1/accounts/default/records/deal/d1", headers=auth).status_code == 404

    good = post(client, "events", body, auth | {SIGNATURE_HEADER: signature_header([secret], body)})
    assert good.status_code == 200, good.text  # type: ignore[attr-defined]
    assert good.json()["owners_after"] != good.json()["owners_before"]  # type: ignore[attr-defined]

    batch = json.dumps({"events": [{**DEAL_EVENT, "id": "e2"}]}).encode()
    refused(post(client, "events:batch", batch, auth), "send a Salesbot-Signature")
    ok = post(client, "events:batch", batch, auth | {SIGNATURE_HEADER: signature_header([secret], batch)})
    assert ok.status_code == 200, ok.text  # type: ignore[attr-defined]
    listing = json.dumps(
        {"entity": "deal", "record_ids": ["d1"], "bot": "inbound", "operation": "op"}
    ).encode()
    refused(post(client, "assignments", listing, auth), "send a Salesbot-Signature")
    ok = post(client, "assignments", listing, auth | {SIGNATURE_HEADER: signature_header([secret], listing)})
    assert ok.status_code == 200, ok.text  # type: ignore[attr-defined]
    # The token still comes first: a signature is no substitute for it.
    no_token = post(client, "events", body, {SIGNATURE_HEADER: signature_header([secret], body)})
    assert no_token.status_code == 401 and "token" in no_token.json()["detail"]  # type: ignore[attr-defined]
    # Another account does not sign: its requests need no signature.
    beta = client.post(
        "/v1/accounts/beta/events",
        json={
            "id": "b1",
            "kind": "created",
            "record": {"entity": "deal", "id": "x", "owners": ["bot:secret-bot"]},
        },
        headers=bearer(made["beta"]),
    )
    assert beta.status_code == 200, beta.text


def test_rotation_and_disable_through_the_commands(
    signed: tuple[TestClient, dict[str, str], str], tmp_path: Path
) -> None:
    client, made, old = signed
    db = ["--db", str(tmp_path / "salesbot.db")]
    runner = CliRunner()
    new = runner.invoke(main, ["signing", "enable", "--account", "default", *db]).stdout.strip()
    assert new != old
    auth = bearer(made["all"])
    body = json.dumps(DEAL_EVENT).encode()
    for i, keys in enumerate((["old"], ["new"], ["old", "new"])):
        event = json.dumps({**DEAL_EVENT, "id": f"r{i}"}).encode()
        header = signature_header([{"old": old, "new": new}[k] for k in keys], event)
        answer = post(client, "events", event, auth | {SIGNATURE_HEADER: header})
        assert answer.status_code == 200, answer.text  # type: ignore[attr-defined]
    retired = runner.invoke(main, ["signing", "disable", "--account", "default", "--old", *db])
    assert retired.stdout == "removed 1 signing secret(s) of account 'default'; 1 left\n"
    stale_key = post(client, "events", body, auth | {SIGNATURE_HEADER: signature_header([old], body)})
    assert stale_key.status_code == 401  # type: ignore[attr-defined]
    off = runner.invoke(main, ["signing", "disable", "--account", "default", *db])
    assert off.stdout == "removed 1 signing secret(s) of account 'default'; 0 left\n"
    unsigned = post(client, "events", body, auth)
    assert unsigned.status_code == 200, unsigned.text  # type: ignore[attr-defined]


def test_signing_secrets_from_the_environment_by_account() -> None:
    assert environment_name("default") == "SALESBOT_SIGNING_SECRET_DEFAULT"
    assert environment_name("acme-eu.2@x") == "SALESBOT_SIGNING_SECRET_ACME_EU_2_X"
    environ = {"SALESBOT_SIGNING_SECRET_ACME": " whsec_new , whsec_old,, ", "SALESBOT_SIGNING_SECRET_B": ""}
    assert environment_secrets(environ, "acme") == ["whsec_new", "whsec_old"]
    assert environment_secrets(environ, "b") == [] and environment_secrets(environ, "other") == []


def test_a_real_serve_takes_signing_secrets_from_its_environment(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    """No secret in the store: ``SALESBOT_SIGNING_SECRET_DEFAULT`` alone makes account
    default sign, with both of its secrets valid (a rotation); beta is untouched."""
    db = str(tmp_path / "salesbot.db")
    folder = rules(write_rules)
    with Engine(folder, db):
        pass
    made = tokens(db)
    env = {"SALESBOT_SIGNING_SECRET_DEFAULT": "whsec_env_new,whsec_env_old"}
    for client in serve(folder, db, tmp_path, env=env):
        auth = bearer(made["all"]) | {"Content-Type": "application/json"}
        url = "/v1/accounts/default/events"
        body = json.dumps(DEAL_EVENT).encode()
        unsigned = client.post(url, content=body, headers=auth)
        assert unsigned.status_code == 401 and "Salesbot-Signature" in unsigned.json()["detail"]
        wrong = client.post(
            url, content=body, headers=auth | {SIGNATURE_HEADER: signature_header(["x"], body)}
        )
        assert wrong.status_code == 401, wrong.text
        for i, key in enumerate(("whsec_env_old", "whsec_env_new")):
            event = json.dumps({**DEAL_EVENT, "id": f"s{i}"}).encode()
            signed = client.post(
                url, content=event, headers=auth | {SIGNATURE_HEADER: signature_header([key], event)}
            )
            assert signed.status_code == 200, signed.text
        beta = {
            "id": "b1",
            "kind": "created",
            "record": {"entity": "deal", "id": "x", "owners": ["bot:secret-bot"]},
        }
        answer = client.post("/v1/accounts/beta/events", json=beta, headers=bearer(made["beta"]))
        assert answer.status_code == 200, answer.text


def test_signing_secrets_on_both_stores(store_url: str) -> None:
    store = open_store(make_plugin_manager(), store_url)
    try:
        assert store.signing_secrets("acme") == []
        store.add_signing_secret("acme", "whsec_1")
        store.add_signing_secret("acme", "whsec_2")
        store.add_signing_secret("beta", "whsec_b")
        assert store.signing_secrets("acme") == ["whsec_2", "whsec_1"]
        assert store.remove_signing_secrets("acme", keep_newest=True) == 1
        assert store.signing_secrets("acme") == ["whsec_2"]
        assert store.remove_signing_secrets("acme") == 1
        assert store.signing_secrets("acme") == [] and store.signing_secrets("beta") == ["whsec_b"]
    finally:
        store.close()


NEW_TABLES = ("signing_secrets", "webhooks", "deliveries")


def test_a_version_4_sqlite_file_gets_the_webhook_tables(deal_bot_rules: Path, tmp_path: Path) -> None:
    db = tmp_path / "v4.db"
    with Engine(deal_bot_rules, db) as engine:
        engine.handle(
            {
                "id": "e1",
                "kind": "created",
                "record": {"entity": "deal", "id": "d1", "owners": ["bot:inbound"]},
            }
        )
    conn = sqlite3.connect(db)
    for table in NEW_TABLES:
        conn.execute(f"DROP TABLE {table}")
    conn.execute("PRAGMA user_version = 4")
    conn.close()
    with Engine(deal_bot_rules, db) as engine:
        engine.store.add_signing_secret("default", "whsec_x")
        assert engine.store.webhooks() == []
        assert engine.explain("default", "deal", "d1")  # older data is still there
    assert rows(str(db), "PRAGMA user_version") == [(SQLITE_VERSION,)]
    assert rows(str(db), "SELECT account, secret FROM signing_secrets") == [("default", "whsec_x")]


def test_a_version_3_postgresql_database_gets_the_webhook_tables(
    deal_bot_rules: Path, postgres_url: str
) -> None:
    import psycopg

    with Engine(deal_bot_rules, postgres_url):
        pass
    with psycopg.connect(postgres_url) as conn:
        for table in NEW_TABLES:
            conn.execute(f"DROP TABLE {table}")
        conn.execute("UPDATE salesbot_schema SET version = 3")
    with Engine(deal_bot_rules, postgres_url) as engine:
        engine.store.add_signing_secret("default", "whsec_x")
        assert engine.store.webhooks() == []
    assert rows(postgres_url, "SELECT version FROM salesbot_schema") == [(POSTGRES_VERSION,)]
    assert rows(postgres_url, "SELECT account, secret FROM signing_secrets") == [("default", "whsec_x")]
