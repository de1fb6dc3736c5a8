"""Shared fixtures: ruleset folders written to a temporary directory, and engines on them."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pg_server
import previous_release
import pytest

from factories import NO_DURABLE, TEAM
from salesbot_core import Engine
from salesbot_core.conditions import durable_available


@pytest.fixture(autouse=True)
def _clean_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests see only the plugins they install or pass themselves, never whatever
    # salesbot plugins happen to be installed in the environment running them.
    monkeypatch.delenv("SALESBOT_BLOCK_PLUGINS", raising=False)
    monkeypatch.delenv("SALESBOT_DISABLE_PLUGIN_AUTOLOAD", raising=False)


_DURABLE = pytest.param("durable", marks=pytest.mark.skipif(not durable_available(), reason=NO_DURABLE))


@pytest.fixture(params=[_DURABLE, "python"])
def evaluator(request: pytest.FixtureRequest) -> str:
    """Each condition evaluator in turn: a test using it pins both to the same semantics."""
    return str(request.param)


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


@contextmanager
def _server_or_skip(under_ci: str, elsewhere: str) -> Iterator[None]:
    """No PostgreSQL to be had: a failure under CI, which must have one, else a skip."""
    try:
        yield
    except pg_server.NoServer as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{under_ci}: {exc}")
        pytest.skip(f"{elsewhere}: {exc}")


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A running PostgreSQL server (see tests/pg_server.py)."""
    with _server_or_skip("CI must provide PostgreSQL", "PostgreSQL tests need a server"):
        with pg_server.server() as url:
            yield url


@pytest.fixture
def own_cluster() -> Iterator[pg_server.Cluster]:
    """A PostgreSQL cluster of the test's own, which it may stop or restart."""
    with _server_or_skip("CI must be able to start PostgreSQL", "needs PostgreSQL server binaries"):
        with pg_server.private_cluster() as cluster:
            yield cluster


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """The URL of a fresh, empty database on the test server."""
    yield from pg_server.database_factory(postgres_admin_url)()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store in turn: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "salesbot.db")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def previous(tmp_path_factory: pytest.TempPathFactory) -> previous_release.Release:
    """The previous release (``previous_release.PREVIOUS_RELEASE``), installed once per
    session. Its commit must be in this checkout's history: under CI a missing one fails,
    elsewhere (a shallow clone, an unpacked sdist) it skips."""
    try:
        return previous_release.build(previous_release.PREVIOUS_RELEASE, tmp_path_factory.mktemp("previous"))
    except previous_release.NotInHistory as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
