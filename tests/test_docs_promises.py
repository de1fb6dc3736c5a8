"""What the docs and the command line's help promise a newcomer, each checked against
what the code does: the statuses service.md lists for a body, the threads and reloads
embedding.md speaks of, the schema file `schema --help` and `init` name, the test
command quickstart.md suggests, the database postgresql.md says to create, and the
shipped example's offboarding that sla.md describes."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from cli_runner import salesbot
from fastapi.testclient import TestClient
from test_readme import PAGES, ROOT
from test_service import DEAL_EVENT, bearer, rules, tokens

from salesbot_core import Engine
from salesbot_core.http.app import create_app


def _words(page: str) -> str:
    """The page's prose with its line breaks as spaces, to search for a sentence."""
    return re.sub(r"\s+", " ", PAGES[page])


def test_service_md_says_415_for_a_body_not_sent_as_json_and_422_for_malformed_json_as_served(
    write_rules, tmp_path: Path
) -> None:
    """docs/service.md's order of statuses for a body, and the server's answers to it."""
    assert (
        "415 for a body not sent as JSON (its `Content-Type`), 422 for one that is not valid JSON "
        "(`malformed-json`" in _words("docs/service.md")
    )
    folder, db = rules(write_rules), str(tmp_path / "salesbot.db")
    with Engine(folder, db):
        pass
    auth = bearer(tokens(db)["all"])
    url = "/v1/accounts/default/events"
    with TestClient(create_app(rulesets=folder, db=db)) as client:
        form = client.post(
            url, content=json.dumps(DEAL_EVENT), headers={**auth, "Content-Type": "text/plain"}
        )
        broken = client.post(url, content=b'{"id": ', headers={**auth, "Content-Type": "application/json"})
        assert (form.status_code, broken.status_code) == (415, 422)
        assert broken.json()["type"].endswith("malformed-json")
        # Neither reached the engine: the deal is not there.
        assert client.get("/v1/accounts/default/records/deal/d1", headers=auth).status_code == 404


def test_embedding_md_says_an_engine_is_shared_by_threads_and_reads_changed_files_on_reload() -> None:
    """The two facts a host app needs (tests/test_store_concurrency.py proves the first,
    tests/test_engine.py's reload tests the second)."""
    page = _words("docs/embedding.md")
    assert "**One engine per process, shared by its threads.** An `Engine` is safe to share" in page
    assert "**Changed ruleset files are read by `engine.reload()`**, not on their own" in page


def test_schema_help_and_init_name_the_same_schema_file(tmp_path: Path) -> None:
    """`salesbot schema --help` tells where to save the schema under the name the files
    `salesbot init` writes point at."""
    made = salesbot("init", str(tmp_path / "rules"))
    assert made.exit_code == 0, made.stderr
    [written] = sorted((tmp_path / "rules").glob("*.yaml"))
    first = written.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=salesbot.schema.json"
    helped = salesbot("schema", "--help")
    assert "salesbot schema > salesbot.schema.json" in re.sub(r"\s+", " ", helped.stdout)


def test_quickstart_suggests_no_bare_pytest_the_quickstart_install_lacks() -> None:
    """The quickstart's install (`pip install -e .`) brings no pytest: the page runs
    tests through tox only."""
    page = PAGES["docs/quickstart.md"]
    assert "pip install -e ." in page
    assert not re.search(r"(?<![\w-])(\.venv/bin/)?pytest(?! -m| \{)", page.replace("`pytest`", ""))
    assert "`tox -e py311 -- tests/test_decision.py`" in page


def test_postgresql_md_says_the_database_must_exist_first_and_how_to_create_it() -> None:
    """salesbot creates its tables, not the database: the page says so where it first
    explains the URL, and its next block creates the role and the database."""
    page = PAGES["docs/postgresql.md"]
    said = page.index("The database itself must exist first")
    block = re.search(r"```(?:sh|shell|bash)\n(.*?)```", page[said:], re.DOTALL)
    assert block is not None
    assert "createdb --owner salesbot crm" in block[1] and "createuser" in block[1]


def test_offboarding_celina_on_the_shipped_example_lists_the_15_persons_no_bot_can_take(
    tmp_path: Path,
) -> None:
    """The issue's example: on the shipped rules and events, the `partners` person bot
    has no `list` trigger, so offboarding celina moves her deals and lists her 15
    persons as staying, with why: counted as left, not as moved."""
    events = [
        json.loads(line)
        for line in (ROOT / "examples" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    with Engine(ROOT / "rulesets", str(tmp_path / "s.db")) as engine:
        engine.handle_many(events)
        summary = engine.offboard("default", "celina", "celina-leaves").summary()
        left = Counter((entry["entity"], entry["reason"]) for entry in summary["left"])
        assert left == {("person", "bot 'partners': not applied: the bot does not fire on 'list' events"): 15}
        assert summary["records_moved"] == len(summary["moved_records"]) == 73
        assert sum(n for per_user in summary["moved"].values() for n in per_user.values()) == 73
        # The persons left are celina's still; every record moved is no longer hers.
        for entry in summary["left"]:
            assert "celina" in engine.record("default", entry["entity"], entry["id"]).owners  # type: ignore[union-attr]
        for entry in summary["moved_records"]:
            record = engine.record("default", entry["entity"], entry["id"])
            assert "celina" not in record.owners  # type: ignore[union-attr]
