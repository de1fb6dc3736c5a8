"""The salesbot command, run as a user runs it: in this process through click's runner,
and once as the installed console script."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import click
from cli_runner import ROOT, salesbot

from factories import TEAM, deal_event
from salesbot_core.conditions import durable_available


def test_the_installed_console_script_runs() -> None:
    script = Path(sys.executable).parent / "salesbot"
    done = subprocess.run(
        [str(script), "validate"], cwd=ROOT, capture_output=True, text=True, env={"COLUMNS": "200"}
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert "3 bots in rulesets" in done.stdout


def test_run_on_the_shipped_example_prints_a_summary(tmp_path: Path) -> None:
    result = salesbot("run", "--db", str(tmp_path / "s.db"))
    assert result.exit_code == 0, result.stderr
    rows = [line.split("│")[1:-1] for line in result.stdout.splitlines() if "│ default" in line]
    table = {(r[1].strip(), r[2].strip()): (int(r[3]), int(r[4])) for r in rows}
    assert table == {
        ("enterprise", "anna"): (20, 20),
        ("enterprise", "jan"): (21, 21),
        ("inbound", "anna"): (65, 65),
        ("inbound", "bartek"): (64, 64),
        ("inbound", "celina"): (64, 64),
        ("partners", "celina"): (15, 15),
        ("partners", "jan"): (15, 15),
    }
    assert (
        result.stdout.splitlines()[-1] == "271 events: 264 assigned, 1 duplicate, 6 not applied, 0 rejected"
    )
    again = salesbot("run", "--db", str(tmp_path / "s.db"))
    assert again.stdout.splitlines()[-1] == "271 events: 271 duplicate, 0 rejected"


def test_run_reports_bad_lines_and_goes_on(deal_bot_rules: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(
            [
                json.dumps(deal_event(1)),
                "{not json",
                json.dumps(deal_event(2, ["zofia"])),
                json.dumps(deal_event(3)),
            ]
        )
        + "\n"
    )
    result = salesbot("run", str(events), "-r", str(deal_bot_rules), "--db", str(tmp_path / "s.db"))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{events}:2: not valid JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)",
        f"{events}:3: event 'e2': field 'record.owners.0': 'zofia' is not a user of account 'default'",
    ]
    assert result.stdout.splitlines()[-1] == "4 events: 2 assigned, 2 rejected"


def test_run_with_a_broken_ruleset_prints_the_problem_not_a_traceback(write_rules, tmp_path: Path) -> None:
    bad_bot = "bots:\n  - {id: x, users: [anna], strategy: nope}\n"
    folder = write_rules(**{"team.yaml": TEAM, "b.yaml": bad_bot})
    events = tmp_path / "e.jsonl"
    events.write_text("")
    result = salesbot("run", str(events), "-r", str(folder), "--db", str(tmp_path / "s.db"))
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {folder / 'b.yaml'}: bot 'x': field 'strategy': "
        "unknown strategy 'nope'; available: based_on_field, least_loaded, "
        "round_robin, weighted_round_robin\n"
    )


def test_validate_lists_bots_or_problems(write_rules) -> None:
    ok = salesbot("validate")
    assert ok.exit_code == 0, ok.stderr
    assert "3 bots in rulesets" in ok.stdout
    default = "durable-rules 2.0.28" if durable_available() else "python"
    assert ok.stdout.splitlines()[-1] == f"conditions: {default}"
    chosen = salesbot("--conditions", "python", "validate")
    assert chosen.exit_code == 0 and chosen.stdout.splitlines()[-1] == "conditions: python"
    assert [line.split("│")[2].strip() for line in ok.stdout.splitlines() if "│ default" in line] == [
        "inbound",
        "enterprise",
        "partners",
    ]
    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "a.yaml": "bots:\n  - {id: x, users: [anna, ghost]}\n",
            "b.yaml": "bots:\n  - {id: y, users: [anna], colour: red}\n",
        }
    )
    bad = salesbot("validate", "--rulesets", str(folder))
    assert bad.exit_code == 1 and bad.stdout == ""
    assert bad.stderr.splitlines() == [
        f"error: {folder / 'a.yaml'}: bot 'x': field 'users.1': unknown user 'ghost': declare it "
        "under 'users' in a ruleset file of account 'default'",
        f"error: {folder / 'b.yaml'}: bot 'y': field 'colour': unknown field",
    ]


def test_explain_says_why_a_record_got_its_owner(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    assert salesbot("run", "--db", db, "--quiet").exit_code == 0
    result = salesbot("explain", "deal", "deal-0007", "--db", db)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "event 'evt-0007' (created) on deal deal-0007: owners ['bot:enterprise'] -> ['jan']",
        "  bot 'enterprise': assigned -> jan: first in rotation",
        "    condition met: event 'created' is one of ['created', 'list']",
        '    condition met: trigger.where {"$gte": {"value": 50000}} matched',
        "    candidates: jan, anna",
        "    skipped olga: user is deactivated",
        '    strategy round_robin: state {} -> {"last": "jan", "pool": ["jan", "olga", "anna"]}',
    ]
    first = salesbot("explain", "deal", "deal-0001", "--db", db).stdout.splitlines()
    assert first[0] == "event 'evt-0001' (created) on deal deal-0001: owners ['bot:inbound'] -> ['anna']"
    assert first[-4:] == [
        "    company company-01: owners [] -> ['anna']",
        "    tag: inbound-bot",
        "    wall note: Assigned by Inbound leads to Anna Nowak",
        "    notification: New deal for you: Deal #1 (12,000 PLN)",
    ]
    not_applied = salesbot("explain", "deal", "deal-0040", "--db", db).stdout.splitlines()
    assert not_applied == [
        "event 'evt-0040' (created) on deal deal-0040: owners ['bot:inbound'] -> []",
        "  bot 'inbound': not applied: process 'Partners' is not one of ['Sales']",
    ]
    unknown = salesbot("explain", "deal", "nope", "--db", db)
    assert (unknown.exit_code, unknown.stderr) == (
        1,
        "error: salesbot has processed no event for deal 'nope' in account 'default'\n",
    )


def test_explain_from_the_engine_includes_redeliveries(engine) -> None:
    engine.handle(deal_event(1))
    redelivered = engine.handle(deal_event(1))
    assert redelivered.explain()[0] == (
        "event 'e1' (created) on deal d1: owners ['bot:inbound'] -> ['anna'] [redelivered, nothing done]"
    )
    assert [o.event_id for o in engine.explain("default", "deal", "d1")] == ["e1"]


def _commands(group: click.Group, ctx: click.Context, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            found |= _commands(command, ctx, f"{prefix}{name} ")
        else:
            found[f"{prefix}{name}"] = command
    return found


def test_every_command_has_a_row_in_docs_cli_and_its_help_points_at_pages_that_exist() -> None:
    from salesbot_core.cli import main

    ctx = click.Context(main)
    commands = _commands(main, ctx)
    assert {"schema", "init", "webhook list", "user offboard", "tick"} <= set(commands)
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    # The first cell of each row of the table: `salesbot ...` (or <code>), one or more.
    cells = [line.split(" | ")[0] for line in page.splitlines() if line.startswith("| ")]
    rows = {
        "".join(found)
        for cell in cells
        for found in re.findall(r"`(salesbot [^`]+)`|<code>(salesbot [^<]+)", cell)
    }
    missing = [name for name in commands if not any(row.startswith(f"salesbot {name}") for row in rows)]
    assert missing == []
    for name, command in commands.items():
        texts = [command.help or "", *(getattr(param, "help", None) or "" for param in command.params)]
        for text in texts:
            assert "README" not in text, name  # the README has no reference sections
            for path, heading in re.findall(r"see (docs/[a-z-]+\.md)(?:, '([^']+)')?", text):
                target = (ROOT / path).read_text(encoding="utf-8")
                assert not heading or f"# {heading}\n" in target, (name, path, heading)
