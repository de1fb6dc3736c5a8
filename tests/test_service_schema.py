"""Property-based test of the HTTP API against its own OpenAPI document (schemathesis):
every operation, with generated requests and an admin token. No request a client sends
may get a 500, and every response must conform to the schema (status, content type, body).
Marked slow: run in CI (``-m slow``); about a minute."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest
import schemathesis
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
#: Filled by the ``prepared`` fixture before the app's first request starts its engine.
PREPARED: dict[str, Any] = {}
#: The app is made when the module is imported (schemathesis reads its schema then); its
#: engine only when the first generated request starts it, on what ``prepared`` wrote.
APP = create_app(lambda: Engine(PREPARED["rules"], PREPARED["db"]))
# The schema as /openapi.json serves it, read without a request (one would start the app
# while the tests are collected); the generated requests go to the app in process.
schema = schemathesis.openapi.from_dict(json.loads(json.dumps(APP.openapi())))
schema.app = APP


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Rules and a store with one deal; an admin token for the requests."""
    if not PREPARED:
        root = tmp_path_factory.mktemp("schema")
        folder = root / "rulesets"
        folder.mkdir()
        (folder / "default.yaml").write_text(textwrap.dedent(RULES.replace("MODE", "add")), encoding="utf-8")
        (folder / "beta.yaml").write_text(textwrap.dedent(OTHER), encoding="utf-8")
        db = str(root / "salesbot.db")
        with Engine(folder, db) as engine:
            record = {"entity": "deal", "id": "d1", "owners": ["bot:inbound"]}
            engine.handle({"id": "e1", "kind": "created", "record": record})
        PREPARED.update(rules=folder, db=db, token=tokens(db)["admin"])
    return PREPARED


@pytest.mark.slow
@schema.parametrize()
# Derandomized: CI reruns exactly the cases that passed here. To explore new ones, run it
# without `derandomize` (random cases found the outbox `after=2**63` overflow).
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation_conforms(case: Any, prepared: dict[str, Any]) -> None:
    case.call_and_validate(headers=bearer(prepared["token"]), checks=CHECKS)
