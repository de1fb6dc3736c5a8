"""Start-up: ``salesbot --help`` and each command's ``--help`` import click and salesbot's
light modules only (the write-path issue: help within 80 ms). The time itself is measured
by the bench (``python -m bench startup``); here, what is imported, in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from salesbot_core.cli import COMMANDS

#: Packages that cost tens of milliseconds each to import, and that help never needs.
HEAVY = ("pydantic", "rich", "yaml", "pluggy", "durable", "psycopg", "fastapi", "importlib.metadata")

ROOT = Path(__file__).parent.parent

PROBE = """
import json, sys
from salesbot_core.cli import main
try:
    main(sys.argv[1:], prog_name="salesbot")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
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


@pytest.mark.parametrize("command", ["run", "serve", "token", "webhook"])
def test_a_command_help_imports_no_heavy_package(command: str) -> None:
    assert command in COMMANDS
    assert _heavy(_imported(command, "--help")) == []


def test_running_a_command_imports_the_engine(tmp_path: Path) -> None:
    # The probe itself: the same process, a command that needs the engine, does import it.
    modules = _imported("bots", "-r", "rulesets", "--db", str(tmp_path / "s.db"))
    assert {"salesbot_core.engine", "pydantic"} <= modules
