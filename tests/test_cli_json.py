"""``--json`` on every command that prints data, tables that fit 80 columns, and shell
completion: run in this process with click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from factories import TEAM, deal_event
from salesbot_core.cli import main

ROOT = Path(__file__).parent.parent
BOTS = """
bots:
  - id: inbound
    name: Inbound leads
    users: [anna, bartek, celina]
    actions: {note: "Got {record.title}"}
  - id: people
    name: "Pe\u202eople"
    entity: person
    users: [jan]
    active: false
"""


def invoke(*args: str, columns: int = 200, env: dict[str, str] | None = None) -> Result:
    result = CliRunner(env={"COLUMNS": str(columns), **(env or {})}).invoke(
        main, list(args), prog_name="salesbot"
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def parsed(result: Result, exit_code: int = 0) -> Any:
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout)


@pytest.fixture
def folder(write_rules) -> Path:
    return write_rules(**{"team.yaml": TEAM, "bots.yaml": BOTS})


@pytest.fixture
def db(folder: Path, tmp_path: Path) -> str:
    """A store that processed deals d1 to d4 (anna, bartek, celina, anna)."""
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(deal_event(n, title=f"Deal {n}")) + "\n" for n in range(1, 5)))
    path = str(tmp_path / "s.db")
    assert invoke("run", str(events), "-r", str(folder), "--db", path, "--quiet").exit_code == 0
    return path


def test_run_json_has_the_summary_and_each_rejected_line(folder: Path, db: str, tmp_path: Path) -> None:
    events = tmp_path / "more.jsonl"
    events.write_text(
        "\n".join(
            [
                json.dumps(deal_event(5)),
                "{not json",
                json.dumps(deal_event(2, title="Deal 2")),
                json.dumps(deal_event(6, ["zofia"])),
            ]
        )
        + "\n"
    )
    result = invoke("run", str(events), "-r", str(folder), "--db", db, "--json")
    assert result.stderr == ""
    assert parsed(result, exit_code=1) == {
        "events": 4,
        "statuses": {"assigned": 1, "duplicate": 1},
        "rejected": [
            {
                "line": 2,
                "message": "not valid JSON: Expecting property name enclosed in double quotes: "
                "line 1 column 2 (char 1)",
            },
            {
                "line": 4,
                "message": "event 'e6': field 'record.owners.0': 'zofia' is not a user of account 'default'",
            },
        ],
        "assignments": [
            {"account": "default", "bot": "inbound", "user": "anna", "this_run": 0, "all_time": 2},
            {"account": "default", "bot": "inbound", "user": "bartek", "this_run": 1, "all_time": 2},
            {"account": "default", "bot": "inbound", "user": "celina", "this_run": 0, "all_time": 1},
        ],
    }


def test_validate_and_bots_json_list_every_bot(folder: Path, db: str) -> None:
    inbound = {
        "account": "default",
        "id": "inbound",
        "name": "Inbound leads",
        "entity": "deal",
        "strategy": "round_robin",
        "users": ["anna", "bartek", "celina"],
        "active": True,
        "file": str(folder / "bots.yaml"),
    }
    people = inbound | {
        "id": "people",
        "name": "Pe\u202eople",
        "entity": "person",
        "users": ["jan"],
        "active": False,
    }
    validated = invoke("validate", "-r", str(folder), "--json")
    assert parsed(validated) == {"rulesets": str(folder), "bots": [inbound, people]}
    assert "\u202e" not in validated.stdout and "Pe\\u202eople" in validated.stdout  # escaped by JSON
    assert invoke("bot", "enable", "people", "-r", str(folder), "--db", db).exit_code == 0
    listed = parsed(invoke("bots", "-r", str(folder), "--db", db, "--json"))
    assert listed == {"account": "default", "enabled": True, "bots": [inbound, people | {"active": True}]}


def test_options_show_and_explain_json(folder: Path, db: str) -> None:
    options = parsed(invoke("options", "deal", "-r", str(folder), "--db", db, "--json"))
    assert options == [{"owner": "bot:inbound", "id": "inbound", "name": "Inbound leads"}]
    assert parsed(invoke("options", "task", "-r", str(folder), "--db", db, "--json")) == []
    shown = parsed(invoke("show", "deal", "d2", "-r", str(folder), "--db", db, "--json"))
    assert (shown["account"], shown["record"]["id"], shown["record"]["owners"], shown["record"]["title"]) == (
        "default",
        "d2",
        ["bartek"],
        "Deal 2",
    )
    assert [(n["text"], n["bot"], n["event_id"]) for n in shown["wall"]] == [("Got Deal 2", "inbound", "e2")]
    explained = parsed(invoke("explain", "deal", "d3", "-r", str(folder), "--db", db, "--json"))
    assert (explained["account"], explained["entity"], explained["id"]) == ("default", "deal", "d3")
    (outcome,) = explained["outcomes"]
    assert (outcome["event_id"], outcome["owners_before"], outcome["owners_after"], outcome["duplicate"]) == (
        "e3",
        ["bot:inbound"],
        ["celina"],
        False,
    )
    assert [(d["bot"], d["status"], d["owner"]) for d in outcome["decisions"]] == [
        ("inbound", "assigned", "celina")
    ]


def test_simulate_json_goes_on_from_the_store(folder: Path, db: str, tmp_path: Path) -> None:
    result = parsed(invoke("simulate", "inbound", "-n", "4", "-r", str(folder), "--db", db, "--json"))
    assert result == {
        "account": "default",
        "bot": "inbound",
        "records": 4,
        "statuses": {"assigned": 4},
        "users": {"anna": 1, "bartek": 2, "celina": 1},
        "rejected": [],
        "decisions": [
            {
                "number": 1,
                "record_id": "sim-1",
                "owner": "bartek",
                "status": "assigned",
                "reason": "next in rotation after 'anna'",
            },
            {
                "number": 2,
                "record_id": "sim-2",
                "owner": "celina",
                "status": "assigned",
                "reason": "next in rotation after 'bartek'",
            },
            {
                "number": 3,
                "record_id": "sim-3",
                "owner": "anna",
                "status": "assigned",
                "reason": "next in rotation after 'celina'",
            },
            {
                "number": 4,
                "record_id": "sim-4",
                "owner": "bartek",
                "status": "assigned",
                "reason": "next in rotation after 'anna'",
            },
        ],
    }
    records = tmp_path / "records.jsonl"
    records.write_text('{"id": "r1"}\n[1]\n')
    partial = parsed(
        invoke("simulate", "inbound", "--records", str(records), "-r", str(folder), "--db", db, "--json"), 1
    )
    assert (partial["records"], partial["users"]) == (2, {"anna": 0, "bartek": 1, "celina": 0})
    assert partial["rejected"] == [{"number": 2, "message": "a record must be a JSON object"}]


@pytest.mark.parametrize("command", [["validate"], ["bots", "--db", "{db}"]])
def test_bot_tables_fit_80_columns_and_never_cut_an_id(command: list[str], tmp_path: Path) -> None:
    args = [arg.replace("{db}", str(tmp_path / "s.db")) for arg in command]
    result = invoke(*args, "-r", str(ROOT / "rulesets"), columns=80)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    assert "…" not in result.stdout
    ids = [
        line.split("│")[2 if command == ["validate"] else 1].strip() for line in lines if line.startswith("│")
    ]
    assert [i for i in ids if i] == ["inbound", "enterprise", "partners"]
    assert "round_robin" in result.stdout  # a strategy is an id too: not folded


def test_wide_terminals_show_every_column(tmp_path: Path) -> None:
    result = invoke("validate", "-r", str(ROOT / "rulesets"), columns=200)
    header = next(line for line in result.stdout.splitlines() if "account" in line)
    assert [cell.strip() for cell in header.split("┃")[1:-1]] == [
        "account",
        "bot",
        "name",
        "entity",
        "strategy",
        "users",
        "active",
        "file",
    ]


@pytest.mark.parametrize(
    "shell, marker",
    [
        ("bash", "complete -o nosort -F"),
        ("zsh", "#compdef salesbot"),
        ("fish", "complete --no-files --command salesbot"),
    ],
)
def test_shell_completion_scripts_are_produced(shell: str, marker: str) -> None:
    result = invoke(env={"_SALESBOT_COMPLETE": f"{shell}_source"})
    assert result.exit_code == 0
    assert marker in result.stdout
    assert "_SALESBOT_COMPLETE" in result.stdout


def test_completion_offers_the_commands() -> None:
    result = invoke(
        env={"_SALESBOT_COMPLETE": "bash_complete", "COMP_WORDS": "salesbot si", "COMP_CWORD": "1"}
    )
    assert result.stdout.splitlines() == ["plain,signing", "plain,simulate"]
