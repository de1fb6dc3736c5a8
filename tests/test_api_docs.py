"""The API's reference pages (``/docs``, ``/redoc``): their assets come from the app, never
from another origin, under a strict Content-Security-Policy. In a real browser:
tests/test_admin_browser.py (slow)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from admin_site import write_rules
from fastapi.testclient import TestClient

from salesbot_core.http.app import create_app


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(rulesets=write_rules(tmp_path / "rulesets"), db=tmp_path / "s.db")) as made:
        yield made


def test_the_reference_pages_load_their_assets_from_the_app_only(client: TestClient) -> None:
    assets = {}
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "//" not in html  # no URL of another origin, whatever its scheme
        assets[page] = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert assets == {
        "/docs": [
            "/docs-static/swagger-ui.css",
            "/docs-static/favicon.png",
            "/docs-static/swagger-ui-bundle.js",
        ],
        "/redoc": ["/docs-static/favicon.png", "/docs-static/redoc.standalone.js"],
    }
    types = {".css": "text/css; charset=utf-8", ".png": "image/png", ".js": "text/javascript; charset=utf-8"}
    for url in {url for urls in assets.values() for url in urls}:
        served = client.get(url)
        assert (served.status_code, served.headers["content-type"]) == (200, types[Path(url).suffix]), url
        assert len(served.content) > 1000, url
    assert client.get("/openapi.json").json()["info"]["title"] == "salesbot"


def test_the_reference_pages_have_a_strict_csp_with_their_one_inline_script_hashed(
    client: TestClient,
) -> None:
    docs, redoc = client.get("/docs"), client.get("/redoc")
    (script,) = re.findall(r"<script>(.*?)</script>", docs.text, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    rest = (
        "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    assert docs.headers["content-security-policy"] == (
        f"default-src 'self'; script-src 'self' 'sha256-{digest}'; style-src 'self'; {rest}"
    )
    # Redoc has no inline script; its styles are <style> elements it makes as it runs.
    assert re.findall(r"<script>", redoc.text) == []
    assert redoc.headers["content-security-policy"] == (
        f"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; {rest}"
    )
    for response in (docs, redoc):
        policy = response.headers["content-security-policy"]
        assert "*" not in policy and "http" not in policy and "//" not in policy
        assert (response.headers["x-content-type-options"], response.headers["x-frame-options"]) == (
            "nosniff",
            "DENY",
        )
    # FastAPI's own CDN pages and their OAuth2 redirect are not served.
    assert client.get("/docs/oauth2-redirect").status_code == 404


def test_every_reference_in_the_openapi_document_resolves(client: TestClient) -> None:
    """A ``$ref`` pointing nowhere (a model's own ``#/$defs/...`` pasted into a route)
    makes ReDoc answer "Something went wrong" and breaks generated clients."""
    document = client.get("/openapi.json").json()
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert refs  # the document does use references
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in document["components"]["schemas"], ref


def test_every_answer_and_body_is_typed_and_every_account_route_declares_its_token(
    client: TestClient,
) -> None:
    """A CRM team generates its client from the document: each 2xx names its model, each
    body its model (events by ``Event``'s fields), and the bearer token is declared."""
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert document["components"]["securitySchemes"] == {
        "token": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token of the account (salesbot token create), or an admin token.",
        }
    }
    public = {("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics")}
    answers = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert ("security" not in operation) == ((method, path) in public), (method, path)
            if (method, path) not in public:
                assert operation["security"] == [{"token": []}], (method, path)
            [(status, answer)] = [(s, a) for s, a in operation["responses"].items() if s.startswith("2")]
            [(media, content)] = answer["content"].items()
            if media == "application/json":
                ref = content["schema"]["$ref"]
                assert ref.removeprefix("#/components/schemas/") in schemas, (method, path)
                answers[(method, path)] = (status, ref.rsplit("/", 1)[1])
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            if body:  # a model's schema (free-form ones too, as ``Document``), never a bare object
                assert "title" in body["schema"] and "properties" in body["schema"], (method, path)
    prefix = "/v1/accounts/{account}"
    assert answers[("post", f"{prefix}/events")] == ("200", "Outcome")
    assert answers[("post", f"{prefix}/webhooks")] == ("201", "Webhook")
    assert answers[("get", f"{prefix}/records/{{entity}}/{{record_id}}/explain")] == ("200", "Explanation")
    assert answers[("get", "/healthz")] == ("200", "Health")
    event = document["paths"][f"{prefix}/events"]["post"]["requestBody"]["content"]["application/json"]
    assert set(event["schema"]["required"]) == {"id", "kind", "record"}
    assert [
        member["properties"]["entity"]["const"] for member in event["schema"]["properties"]["record"]["oneOf"]
    ] == [
        "deal",
        "person",
        "company",
        "task",
    ]
    assert "default" not in event["schema"]["properties"]["account"]  # the URL's account


def test_registering_a_webhook_answers_201_with_its_secret_as_documented(
    client: TestClient, tmp_path: Path
) -> None:
    from salesbot_core.engine import open_store
    from salesbot_core.registry import make_plugin_manager
    from salesbot_core.tokens import create_token

    store = open_store(make_plugin_manager(), str(tmp_path / "s.db"))
    try:
        token = create_token(store, "default", "crm")
    finally:
        store.close()
    made = client.post(
        "/v1/accounts/default/webhooks",
        json={"url": "https://crm.example/hook"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert made.status_code == 201
    body = made.json()
    assert list(body) == ["id", "account", "url", "events", "created_at", "secret"]
    assert (body["account"], body["url"], body["events"]) == (
        "default",
        "https://crm.example/hook",
        ["assignment", "notification"],
    )
