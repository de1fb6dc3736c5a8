"""Property-based test of the HTTP API against its own OpenAPI document (schemathesis):
every operation, with generated requests and an admin token. No request a client sends
may get a 500, and every response must conform to the schema (status, content type, body).
Run twice: on rules from a folder, and on rules kept in the store, where the rule-editing
routes (bots, users, settings, versions, drafts) answer instead of a 409.
Marked slow: run in CI (``-m slow``); about a minute each."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis import checks
from test_service import OTHER, RULES, bearer, tokens

from salesbot_core import Engine
from salesbot_core.http.app import create_app

#: Examples per operation: enough for every status path, small enough for ~1 minute.
EXAMPLES = 60


#: No 500 for anything a client sends; status, content type, headers and body as declared.
#: (Not ``positive_data_acceptance``: a schema-valid request for an account, record or
#: bot that does not exist is rightly a 404 or 422.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
#: Filled by the fixtures before an app's first request starts its engine: ``folder``
#: and ``store``, each its rules (None: in the store), its store and an admin token.
PREPARED: dict[str, dict[str, Any]] = {}


def schema_of(setup: str) -> Any:
    """The app of a setup, made when the module is imported (schemathesis reads its schema
    then); its engine only when the first generated request starts it, on what the
    setup's fixture wrote. The schema is read as /openapi.json serves it, without a
    request (one would start the app while the tests are collected)."""
    app = create_app(lambda: Engine(PREPARED[setup]["rules"], PREPARED[setup]["db"]))
    made = schemathesis.openapi.from_dict(json.loads(json.dumps(app.openapi())))
    made.app = app
    return made


schema = schema_of("folder")
store_schema = schema_of("store")

FIRST_EVENT = {
    "id": "e1",
    "kind": "created",
    "record": {"entity": "deal", "id": "d1", "owners": ["bot:inbound"]},
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Rules in a folder and a store with one deal; an admin token for the requests."""
    if "folder" not in PREPARED:
        root = tmp_path_factory.mktemp("schema")
        folder = root / "rulesets"
        folder.mkdir()
        (folder / "default.yaml").write_text(textwrap.dedent(RULES.replace("MODE", "add")), encoding="utf-8")
        (folder / "beta.yaml").write_text(textwrap.dedent(OTHER), encoding="utf-8")
        db = str(root / "salesbot.db")
        with Engine(folder, db) as engine:
            engine.handle(FIRST_EVENT)
        PREPARED["folder"] = {"rules": folder, "db": db, "token": tokens(db)["admin"]}
    return PREPARED["folder"]


@pytest.fixture(scope="module")
def prepared_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same rules published in the store (account ``default``), a deal; an admin token."""
    if "store" not in PREPARED:
        db = str(Path(tmp_path_factory.mktemp("schema-store")) / "salesbot.db")
        book = yaml.safe_load(textwrap.dedent(RULES.replace("MODE", "add")))
        with Engine(None, db) as engine:
            engine.store.create_account("default", "professional", True)
            engine.publish("default", book, 0, author="test")
            engine.handle(FIRST_EVENT)
        PREPARED["store"] = {"rules": None, "db": db, "token": tokens(db)["admin"]}
    return PREPARED["store"]


# Derandomized: CI reruns exactly the cases that passed here. To explore new ones, run it
# without `derandomize` (random cases found the outbox `after=2**63` overflow).
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)


@pytest.mark.slow
@schema.parametrize()
@SETTINGS
def test_every_operation_conforms(case: Any, prepared: dict[str, Any]) -> None:
    case.call_and_validate(headers=bearer(prepared["token"]), checks=CHECKS)


@pytest.mark.slow
@store_schema.parametrize()
@SETTINGS
def test_every_operation_conforms_with_rules_in_the_store(case: Any, prepared_store: dict[str, Any]) -> None:
    """On the account that has rules, writing on its current version: the rules routes
    read, publish, keep drafts, diff and restore for real, as well as refuse."""
    if "account" in (case.path_parameters or {}):
        case.path_parameters["account"] = "default"
    headers = bearer(prepared_store["token"])
    if case.headers and "If-Match" in case.headers:
        with Engine(None, prepared_store["db"]) as engine:
            headers["If-Match"] = f'"v{engine.account("default").version}"'
    case.call_and_validate(headers=headers, checks=CHECKS)
