"""The previous release of salesbot, built from this repository's history, to run beside
this one as during a rolling upgrade (docs/upgrading.md).

The release is a commit, not a tag: CI clones the branch, and tags need not come along.
``build`` exports that commit (``git archive``) and installs it without its dependencies
into a venv of its own, which sees the packages of the interpreter running the tests (a
``.pth`` file): the same libraries, and the old ``salesbot_core`` and
``salesbot_plugins`` ahead of the new ones. Its Python runs with ``-P`` and without
``PYTHONPATH``, so neither the working directory nor the path that puts this checkout
first reaches it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parent.parent

#: The last release before schema 10: main's last commit whose ``SCHEMA_VERSION`` was 9
#: (``git log --first-parent -S 'SCHEMA_VERSION = 10' -- plugins/migrations.py``).
PREVIOUS_RELEASE = "12c9fcb6f1fe2714e60257695027972591bfbec8"
#: The schema version that release writes.
PREVIOUS_SCHEMA = 9


class NotInHistory(Exception):
    """The release's commit is not in this checkout (a shallow clone, or no git)."""


@dataclass(frozen=True)
class Release:
    """An installed release: ``command`` starts its ``salesbot`` with ``env``."""

    commit: str
    python: Path

    @property
    def command(self) -> list[str]:
        return [str(self.python), "-P", "-m", "salesbot_core"]

    @property
    def env(self) -> dict[str, str]:
        return {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}

    def run(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        """``salesbot ARGS`` of this release, its output captured; fails on a non-zero status."""
        done = subprocess.run(
            [*self.command, *args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"salesbot {' '.join(args)} of {self.commit[:7]}: {done.stderr}"
        return done


def in_history(commit: str) -> bool:
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True
        )
    except FileNotFoundError:
        return False
    return done.returncode == 0


def build(commit: str, where: Path) -> Release:
    """Export ``commit`` into ``where`` and install it into a venv there."""
    if not in_history(commit):
        raise NotInHistory(
            f"commit {commit} (the previous release) is not in the history of this checkout: "
            "clone it with its full history (no --depth)"
        )
    source, venv = where / "source", where / "venv"
    source.mkdir(parents=True)
    archive = _run(["git", "-C", str(ROOT), "archive", commit], text=False).stdout
    _run(["tar", "-x", "-C", str(source)], input=archive, text=False)
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    release = Release(commit, venv / "bin" / "python")
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    own = _run([str(release.python), "-P", "-c", purelib], env=release.env).stdout.strip()
    # The libraries of the interpreter running the tests (pip and setuptools among them),
    # after the venv's own site-packages, where the release goes.
    Path(own, "test-interpreter.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [str(release.python), "-P", "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    _run([*pip, "--no-index", str(source)], cwd=where, env=release.env)
    return release


def _run(args: list[str], text: bool = True, **options: Any) -> subprocess.CompletedProcess[Any]:
    done = subprocess.run(args, capture_output=True, text=text, **options)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr!r}"
    return done
