"""Shared fixtures: ruleset folders written to a temporary directory, and engines on them."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from factories import TEAM
from salesbot_core import Engine


@pytest.fixture(autouse=True)
def _clean_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests see only the plugins they install or pass themselves, never whatever
    # salesbot plugins happen to be installed in the environment running them.
    monkeypatch.delenv("SALESBOT_BLOCK_PLUGINS", raising=False)
    monkeypatch.delenv("SALESBOT_DISABLE_PLUGIN_AUTOLOAD", raising=False)


@pytest.fixture
def write_rules(tmp_path: Path) -> Callable[..., Path]:
    """Write ruleset files into a fresh folder: ``write_rules(**{"a.yaml": text})``."""
    folder = tmp_path / "rulesets"
    folder.mkdir()

    def write(**files: str) -> Path:
        for name, text in files.items():
            (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
        return folder

    return write


@pytest.fixture
def deal_bot_rules(write_rules: Callable[..., Path]) -> Path:
    """The team plus one round-robin deal bot, ``inbound``, over anna, bartek and celina."""
    return write_rules(
        **{
            "team.yaml": TEAM,
            "inbound.yaml": """
        bots:
          - id: inbound
            name: Inbound leads
            entity: deal
            users: [anna, bartek, celina]
            strategy: round_robin
        """,
        }
    )


@pytest.fixture
def engine(deal_bot_rules: Path, tmp_path: Path) -> Iterator[Engine]:
    with Engine(deal_bot_rules, tmp_path / "salesbot.db") as engine:
        yield engine
