"""Run the ``salesbot`` command in this process, through click's runner.

A subprocess costs about 0.4 s of interpreter start and imports; only tests where the
process itself matters (SIGKILL, concurrent workers, the installed console script) start
one.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from click.testing import CliRunner, Result

from salesbot_core.cli import main

ROOT = Path(__file__).parent.parent


def salesbot(*args: str, cwd: Path = ROOT) -> Result:
    """``salesbot ARGS`` run from ``cwd`` (default: the repository, with its ``rulesets``
    and ``examples``); ``exit_code``, ``stdout`` and ``stderr`` as a user would see them."""
    with contextlib.chdir(cwd):
        result = CliRunner(env={"COLUMNS": "200"}).invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result
