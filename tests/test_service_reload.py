"""Rules reloaded while ``salesbot serve`` runs: a real serve process watching its rulesets
folder, the engine's ``rules_status``, and ``GET /v1/rulesets``."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from test_service import bearer, is_problem, serve, tokens

from factories import TEAM
from salesbot_core import Engine
from salesbot_core.errors import RulesetError
from salesbot_core.reloading import RulesStatus

serving = contextmanager(serve)

BOT = """
bots:
  - {id: inbound, users: [USERS]}
"""


def deal(n: int) -> dict[str, Any]:
    return {
        "id": f"e{n}",
        "kind": "created",
        "record": {"entity": "deal", "id": f"d{n}", "owners": ["bot:inbound"]},
    }


def until(check: Callable[[], Any], seconds: float = 30) -> Any:
    """Poll ``check`` until it returns something true; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not (found := check()):
        if time.monotonic() > deadline:
            pytest.fail("the service did not pick up the change")
        time.sleep(0.05)
    return found


@pytest.mark.slow
def test_edited_rules_apply_to_the_next_event_and_broken_ones_keep_the_last_good(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    folder = write_rules(**{"team.yaml": TEAM, "bots.yaml": BOT.replace("USERS", "anna")})
    db = str(tmp_path / "salesbot.db")
    with Engine(folder, db):
        pass
    made = tokens(db)
    events, admin = bearer(made["all"]), bearer(made["admin"])
    with serving(folder, db, tmp_path, "--reload-interval", "0.1") as client:

        def post(n: int) -> list[str]:
            done = client.post("/v1/accounts/default/events", json=deal(n), headers=events)
            assert done.status_code == 200, done.text
            return list(done.json()["owners_after"])

        def status() -> dict[str, Any]:
            got = client.get("/v1/rulesets", headers=admin)
            assert got.status_code == 200, got.text
            return dict(got.json())

        first = status()
        assert (first["folder"], first["files"], first["ok"], first["errors"]) == (
            str(folder),
            ["bots.yaml", "team.yaml"],
            True,
            [],
        )
        assert post(1) == ["anna"]

        (folder / "bots.yaml").write_text(BOT.replace("USERS", "celina"))
        until(lambda: status()["loaded_at"] > first["loaded_at"])
        assert post(2) == ["celina"]

        (folder / "bots.yaml").write_text("bots:\n  - {id: inbound, users: [celina], strategy: nope}\n")
        broken = until(lambda: status()["errors"])
        assert broken == [
            {
                "file": str(folder / "bots.yaml"),
                "bot": "inbound",
                "field": "strategy",
                "message": broken[0]["message"],
                "text": f"{folder / 'bots.yaml'}: bot 'inbound': field 'strategy': {broken[0]['message']}",
            }
        ]
        assert broken[0]["message"].startswith("unknown strategy 'nope'")
        # 200s keep coming, under the last good rules.
        assert [post(n) for n in (3, 4)] == [["celina"], ["celina"]]
        later = status()
        assert later["ok"] is False and later["checked_at"] > first["checked_at"]

        # Fixed: the errors go, the new rules run.
        (folder / "bots.yaml").write_text(BOT.replace("USERS", "bartek"))
        until(lambda: status()["ok"])
        assert post(5) == ["bartek"]

        # Only an admin token with the read scope sees it.
        is_problem(client.get("/v1/rulesets"), 401)
        is_problem(client.get("/v1/rulesets", headers=bearer("sb_nope")), 401)
        for name in ("all", "read", "beta"):
            is_problem(client.get("/v1/rulesets", headers=bearer(made[name])), 403)


def test_rules_status_on_the_engine(write_rules: Callable[..., Path], tmp_path: Path) -> None:
    folder = write_rules(**{"team.yaml": TEAM, "bots.yaml": BOT.replace("USERS", "anna")})
    with Engine(folder, tmp_path / "s.db") as engine:
        status = engine.rules_status
        assert isinstance(status, RulesStatus)
        assert (status.folder, status.files, status.errors) == (str(folder), ("bots.yaml", "team.yaml"), ())
        assert engine.reload() is False
        assert engine.rules_status.loaded_at == status.loaded_at
        assert engine.rules_status.checked_at > status.checked_at

        (folder / "bots.yaml").write_text('bots:\n  - {id: "in\\x1bbound", users: [ghost]}\n')
        with pytest.raises(RulesetError):
            engine.reload()
        broken = engine.rules_status
        assert broken.loaded_at == status.loaded_at and len(broken.errors) == 1
        (problem,) = broken.to_json()["errors"]
        # The bot id from the file is escaped; the rest names file, bot and field.
        assert problem["bot"] == "in\\x1bbound" and problem["field"] == "id"
        assert "\x1b" not in problem["text"] and "in\\x1bbound" in problem["text"]
        assert problem["file"] == str(folder / "bots.yaml")
        # The same broken files again: no second error, the problems stay.
        assert engine.reload() is False
        assert engine.rules_status.errors == broken.errors

        # Back to the running rules' files: no error any more, nothing reloaded.
        (folder / "bots.yaml").write_text(BOT.replace("USERS", "anna"))
        assert engine.reload() is False
        assert engine.rules_status.errors == () and engine.rules_status.loaded_at == status.loaded_at

        (folder / "extra.yaml").write_text(BOT.replace("inbound", "second").replace("USERS", "jan"))
        assert engine.reload() is True
        assert engine.rules_status.files == ("bots.yaml", "extra.yaml", "team.yaml")
        assert engine.rules_status.loaded_at > status.loaded_at


def test_rules_handed_in_have_a_status_without_a_folder(deal_bot_rules: Path, tmp_path: Path) -> None:
    with (
        Engine(deal_bot_rules, tmp_path / "a.db") as loaded,
        Engine(loaded.rules, tmp_path / "b.db") as engine,
    ):
        assert (engine.rules_status.folder, engine.rules_status.files) == (None, ())
        assert engine.reload() is False
        assert engine.rules_status.to_json()["ok"] is True
