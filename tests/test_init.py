"""``salesbot init``: a commented rulesets folder that validates and routes as written."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

from click.testing import CliRunner, Result

from salesbot_core.cli import main
from salesbot_core.starter import starter_text

ROOT = Path(__file__).parent.parent

STARTER = starter_text()


def invoke(*args: str) -> Result:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(main, list(args), prog_name="salesbot")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_init_writes_a_folder_that_validates_and_routes(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "rulesets"
    result = invoke("init", str(folder))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"wrote {folder / 'salesbot.yaml'}",
        f"check it with: salesbot validate -r {folder}",
    ]
    text = (folder / "salesbot.yaml").read_text(encoding="utf-8")
    assert text == STARTER
    assert text.splitlines()[:3] == [
        "# yaml-language-server: $schema=salesbot.schema.json",
        "# The line above lets an editor check this file against salesbot's JSON Schema:",
        "# generate it with `salesbot schema > salesbot.schema.json` in this folder.",
    ]
    validated = json.loads(invoke("validate", "-r", str(folder), "--json").stdout)
    assert [(b["account"], b["id"], b["users"]) for b in validated["bots"]] == [
        ("default", "inbound", ["anna", "bartek", "celina"])
    ]
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"e{n}",
                    "kind": "created",
                    "record": {"entity": "deal", "id": f"d{n}", "owners": ["bot:inbound"]},
                }
            )
            + "\n"
            for n in range(1, 8)
        )
    )
    run = json.loads(
        invoke("run", str(events), "-r", str(folder), "--db", str(tmp_path / "s.db"), "--json").stdout
    )
    assert run["statuses"] == {"assigned": 7}
    assert [(a["user"], a["this_run"]) for a in run["assignments"]] == [
        ("anna", 3),
        ("bartek", 2),
        ("celina", 2),
    ]


def test_every_option_shown_is_valid_when_uncommented(tmp_path: Path) -> None:
    uncommented = re.sub(r"^(\s*)# (\s*[a-z_]+:)", r"\1\2", STARTER, flags=re.MULTILINE)
    assert uncommented.count("\n#") == STARTER.count("\n#") - 4  # settings: and its three lines
    for option in ("fallback: anna", "sticky: false", "where: {$gte: {value: 10000}}", "tag: inbound-bot"):
        assert f"\n    {option}" in uncommented or f"  {option}" in uncommented
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "salesbot.yaml").write_text(uncommented, encoding="utf-8")
    result = invoke("validate", "-r", str(folder), "--json")
    assert result.exit_code == 0, result.output
    (bot,) = json.loads(result.stdout)["bots"]
    assert (bot["id"], bot["active"]) == ("inbound", True)


def test_init_overwrites_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "rulesets"
    folder.mkdir()
    (folder / "salesbot.yaml").write_text("mine\n")
    result = invoke("init", str(folder))
    assert (result.exit_code, result.stdout) == (1, "")
    exists = f"{folder / 'salesbot.yaml'} exists"
    assert result.stderr == f"error: {exists}: salesbot init overwrites nothing (pick another folder)\n"
    assert (folder / "salesbot.yaml").read_text() == "mine\n"
    assert sorted(p.name for p in folder.iterdir()) == ["salesbot.yaml"]


def test_init_leaves_a_folder_of_rulesets_alone(tmp_path: Path) -> None:
    """`cp rulesets/example.yaml x/ && salesbot init x` once broke x; a bare `salesbot init`
    in the repository would write into the shipped rulesets/."""
    folder = tmp_path / "x"
    folder.mkdir()
    example = (ROOT / "rulesets" / "example.yaml").read_text(encoding="utf-8")
    (folder / "example.yaml").write_text(example, encoding="utf-8")
    (folder / "team.TOML").write_text("", encoding="utf-8")
    result = invoke("init", str(folder))
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: {folder} already holds ruleset files (example.yaml, team.TOML): salesbot init writes "
        "into a new or empty folder (pick another folder)\n"
    )
    assert sorted(p.name for p in folder.iterdir()) == ["example.yaml", "team.TOML"]
    with contextlib.chdir(ROOT):  # the repository, whose rulesets/ every command reads
        bare = invoke("init")
    assert bare.exit_code == 1 and bare.stderr.startswith("error: rulesets already holds ruleset files (")
