"""The README's examples run and say what they claim."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def python_block_after(heading: str) -> str:
    section = README[README.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_embedding_example_prints_what_its_comments_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = python_block_after("## Embedding the engine")
    expected = re.findall(r"# (.+)$", code, re.MULTILINE)
    shutil.copytree(ROOT / "rulesets", tmp_path / "rulesets")
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    assert printed.getvalue().splitlines() == expected
    assert (tmp_path / "embedded-example.db").exists()


def test_plugin_example_matches_the_shipped_plugin() -> None:
    shipped = (ROOT / "examples/salesbot-hash-router/salesbot_hash_router.py").read_text()
    for line in python_block_after("Its module registers a strategy").splitlines():
        if line.strip():
            assert line.strip() in shipped, f"README plugin example line not in the plugin: {line!r}"


def test_quickstart_summary_line_is_the_one_the_cli_prints() -> None:
    assert "271 events: 264 assigned, 1 duplicate, 6 not applied, 0 rejected" in README
    assert sum(1 for line in (ROOT / "examples/events.jsonl").open() if line.strip()) == 271
