"""Start-up: ``salesbot --help`` and each command's ``--help`` import click and salesbot's
light modules only (the write-path issue: help within 80 ms). The time itself is measured
by the bench (``python -m bench startup``); here, what is imported, in a fresh interpreter,
and that the help pages are still the ones click writes from the commands themselves."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest

from salesbot_core.cli import COMMANDS, main

#: Packages that cost tens of milliseconds each to import, and that help never needs.
HEAVY = ("pydantic", "rich", "yaml", "pluggy", "durable", "psycopg", "fastapi", "importlib.metadata")

#: Standard modules ``salesbot --help`` has no use for (imported by a command module's top,
#: or by click's help width lookup); a few milliseconds each.
NEEDLESS = ("shutil", "secrets", "tempfile", "json", "dataclasses")

ROOT = Path(__file__).parent.parent

PROBE = """
import sys
from salesbot_core.cli import main
try:
    main(sys.argv[1:], prog_name="salesbot")
except SystemExit:
    pass
modules = sorted(sys.modules)  # before the probe's own json
import json
print(json.dumps(modules))
"""


def _imported(*args: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY or m == "salesbot_core.engine")


def test_help_imports_no_heavy_package() -> None:
    modules = _imported("--help")
    assert "click" in modules
    assert _heavy(modules) == []


def test_help_imports_no_command_module() -> None:
    # The command list comes from COMMANDS' summaries: not one command module is imported.
    modules = _imported("--help")
    assert sorted(m for m in modules if m.startswith("salesbot")) == [
        "salesbot_core",
        "salesbot_core.cli",
        "salesbot_core.vocabulary",
    ]
    assert sorted(m for m in modules if m.split(".")[0] in NEEDLESS) == []


def test_each_summary_is_the_commands_own_short_help() -> None:
    # A summary that drifted from its command's docstring fails here, at every width the
    # command list can be shortened to (click gives it 36 to 64 columns; more to be sure).
    ctx = click.Context(main)
    for name, (_, _, summary) in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name and not command.hidden
        stand_in = click.Command(name, help=summary)
        for limit in range(0, 200):
            assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit), (name, limit)


@pytest.mark.parametrize("width", [50, 60, 64, 72, 78, 120])
def test_command_list_is_the_one_click_writes(width: int) -> None:
    # The same lines as click's own Group.format_commands, which imports every command.
    ctx = click.Context(main)
    ours, clicks = click.HelpFormatter(width=width), click.HelpFormatter(width=width)
    main.format_commands(ctx, ours)
    click.Group.format_commands(main, ctx, clicks)
    assert ours.getvalue() == clicks.getvalue()
    assert ours.getvalue().count("\n") >= len(COMMANDS) + 1


#: ``salesbot`` as plain click would run it: a plain context (its help width found by
#: ``shutil.get_terminal_size``) and click's own command list.
CLICKS_OWN = """
import sys
import click
from salesbot_core import cli
cli.LazyGroup.context_class = click.Context
cli.LazyGroup.format_commands = click.Group.format_commands
cli.main(sys.argv[1:], prog_name="salesbot")
"""


@pytest.mark.parametrize("columns", ["40", "66", "79", "200", "", "wide"])
@pytest.mark.parametrize("args", [("--help",), ("run", "--help"), ("token", "create", "--help")])
def test_help_pages_are_clicks_own_at_every_width(columns: str, args: tuple[str, ...]) -> None:
    # The help width is found without shutil; the pages are byte for byte click's, in a
    # fresh process whose stdout is not a terminal (COLUMNS, else 80 columns).
    env = {**os.environ, "COLUMNS": columns}
    ours, clicks = (
        subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, cwd=ROOT, env=env
        ).stdout
        for code in ("from salesbot_core.cli import main; main(prog_name='salesbot')", CLICKS_OWN)
    )
    assert ours == clicks
    assert ours.startswith("Usage: salesbot ")


@pytest.mark.parametrize("command", ["run", "serve", "token", "webhook"])
def test_a_command_help_imports_no_heavy_package(command: str) -> None:
    assert command in COMMANDS
    assert _heavy(_imported(command, "--help")) == []


def test_running_a_command_imports_the_engine(tmp_path: Path) -> None:
    # The probe itself: the same process, a command that needs the engine, does import it.
    modules = _imported("bots", "-r", "rulesets", "--db", str(tmp_path / "s.db"))
    assert {"salesbot_core.engine", "pydantic"} <= modules


def _one_event(tmp_path: Path) -> Path:
    events = tmp_path / "one.jsonl"
    with (ROOT / "examples" / "events.jsonl").open(encoding="utf-8") as f:
        events.write_text(f.readline(), encoding="utf-8")
    return events


def test_a_quiet_run_imports_no_rich(tmp_path: Path) -> None:
    # rich is for terminals and tables: `run -q` (the bench's first event) goes without it,
    # and the event is processed all the same.
    db = tmp_path / "s.db"
    modules = _imported("run", "-q", "--db", str(db), str(_one_event(tmp_path)))
    assert {"salesbot_core.engine", "pydantic"} <= modules
    assert sorted(m for m in modules if m.split(".")[0] == "rich") == []
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM outcomes").fetchone() == (1,)


def test_a_rejected_line_is_still_printed_by_rich(tmp_path: Path) -> None:
    # rich comes in when there is something to print: the rejected line, as before.
    events = tmp_path / "bad.jsonl"
    events.write_text('{"id": "e1"\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "salesbot_core", "run", "-q", "--db", str(tmp_path / "s.db"), str(events)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    reason = "not valid JSON: Expecting ',' delimiter: line 2 column 1 (char 12)"
    assert result.stderr == f"{events}:1: {reason}\n"
