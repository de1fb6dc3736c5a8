"""A CRM team generates its client from the OpenAPI document: this does it with a real
generator no one here wrote (``openapi-python-client``), from the document a real
``salesbot serve`` on loopback serves, and then works through the generated package,
typed: routes an event, lists the bots, reads why the record has its owner. The generator
must not warn about or skip any part of the document."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_service import OTHER, RULES, serve, tokens

from salesbot_core import Engine

#: The package the generator names after the document's title.
PACKAGE = "salesbot_client"
#: The package alone (no project files around it), where the test imports it.
GENERATE = ["--meta", "none", "--output-path", PACKAGE]


@pytest.fixture
def generated(tmp_path: Path) -> Iterator[tuple[Any, str, str]]:
    """The generated package, imported, the served base URL and a token of ``default``."""
    folder = tmp_path / "rulesets"
    folder.mkdir()
    (folder / "default.yaml").write_text(textwrap.dedent(RULES.replace("MODE", "add")), encoding="utf-8")
    (folder / "beta.yaml").write_text(textwrap.dedent(OTHER), encoding="utf-8")
    db = str(tmp_path / "salesbot.db")
    with Engine(folder, db):
        pass
    token = tokens(db)["all"]
    for client in serve(folder, db, tmp_path):
        document = client.get("/openapi.json")
        assert document.status_code == 200
        (tmp_path / "openapi.json").write_bytes(document.content)
        bin_dir = Path(sys.executable).parent  # the generator's post-hook runs ruff from here
        done = subprocess.run(
            [str(bin_dir / "openapi-python-client"), "generate", "--path", "openapi.json", *GENERATE],
            cwd=tmp_path,
            env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        # Anything the generator could not read it reports and leaves out: nothing may be.
        assert "Warning" not in done.stdout and "WARNING" not in done.stdout, done.stdout
        sys.path.insert(0, str(tmp_path))
        try:
            yield importlib.import_module(PACKAGE), str(client.base_url).rstrip("/"), token
        finally:
            sys.path.remove(str(tmp_path))
            for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
                del sys.modules[name]


@pytest.mark.slow
def test_a_generated_client_routes_an_event_lists_bots_and_explains(generated: tuple[Any, str, str]) -> None:
    package, base, token = generated
    api = importlib.import_module(f"{PACKAGE}.api")
    models = importlib.import_module(f"{PACKAGE}.models")
    post_event = importlib.import_module(f"{PACKAGE}.api.events.post_event")
    get_bots = importlib.import_module(f"{PACKAGE}.api.read.get_bots")
    get_explain = importlib.import_module(f"{PACKAGE}.api.read.get_explain")
    assert api is not None
    client = package.AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)
    with client:
        event = models.PostEventPostedEvent(
            id="e1",
            kind=models.PostEventPostedEventKind.CREATED,
            record=models.PostEventPostedEventDeal(id="d1", owners=["bot:inbound"], title="New lift"),
        )
        outcome = post_event.sync(account="default", client=client, body=event)
        assert isinstance(outcome, models.Outcome)
        assert (outcome.event_id, outcome.record_id, outcome.owners_before, outcome.owners_after) == (
            "e1",
            "d1",
            ["bot:inbound"],
            ["anna"],
        )
        [decision] = outcome.decisions
        assert (decision.bot, decision.status, decision.owner) == (
            "inbound",
            models.DecisionStatus.ASSIGNED,
            "anna",
        )
        assert outcome.duplicate is False

        bots = get_bots.sync(account="default", client=client)
        assert isinstance(bots, models.Bots)
        assert (bots.account, bots.enabled, bots.version) == ("default", True, None)
        assert [(b.id, b.name, b.users, b.active) for b in bots.bots] == [
            ("inbound", "inbound", ["anna", "bartek", "celina"], True),
            ("warsztat", "Warsztat bot", ["anna", "bartek"], True),
        ]

        explained = get_explain.sync(account="default", entity="deal", record_id="d1", client=client)
        assert isinstance(explained, models.Explanation)
        assert (explained.account, explained.entity, explained.id) == ("default", "deal", "d1")
        [kept] = explained.outcomes
        assert kept.to_dict() == outcome.to_dict()
        assert (
            explained.explanation[0] == "event 'e1' (created) on deal d1: owners ['bot:inbound'] -> ['anna']"
        )

        # A problem comes back typed too.
        missing = get_explain.sync_detailed(account="default", entity="deal", record_id="nope", client=client)
        assert missing.status_code == 404 and isinstance(missing.parsed, models.Problem)
        assert missing.parsed.detail == "no event was processed for deal 'nope' in account 'default'"
