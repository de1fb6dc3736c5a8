"""Third-party plugins as users install them: real distributions, found by their entry points.

Each distribution is built by pip from a temporary copy of its source and installed with
``--target`` into a temporary folder; putting that folder on ``sys.path`` is what makes
``importlib.metadata`` see its dist-info, exactly as after ``pip install`` in a venv.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from factories import TEAM, deal_event
from salesbot_core import Engine, PluginError, RulesetError, hookimpl

ROOT = Path(__file__).parent.parent
HASH_ROUTER = ROOT / "examples" / "salesbot-hash-router"
USERS = ["anna", "bartek", "celina"]

TERRITORY = """
    bots:
      - id: territory
        name: Territories
        entity: deal
        users: [anna, bartek, celina]
        strategy: hash_by_record
    """
INBOUND = """
    bots:
      - id: inbound
        name: Inbound leads
        entity: deal
        users: [anna, bartek, celina]
        strategy: round_robin
    """


def install_distribution(files: Mapping[str, str], workdir: Path) -> Path:
    """Write ``files`` as a source tree under ``workdir``, pip install it, return the target.

    The build runs in ``workdir/src`` so pip's ``build/`` and ``*.egg-info`` never land in
    the repository.
    """
    source, target = workdir / "src", workdir / "site"
    source.mkdir(parents=True)
    for name, text in files.items():
        (source / name).write_text(textwrap.dedent(text), encoding="utf-8")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--target",
            str(target),
            str(source),
        ],
        check=True,  # pip's own output is captured by pytest and shown if this fails
    )
    return target


def tiny_distribution(name: str, module: str, entry: str, body: str) -> dict[str, str]:
    """The files of a one-module distribution ``name`` with the ``salesbot`` entry point ``entry``."""
    return {
        "setup.cfg": f"""
            [metadata]
            name = {name}
            version = 0.1.0

            [options]
            py_modules = {module}

            [options.entry_points]
            salesbot =
                {entry} = {module}
            """,
        "pyproject.toml": (HASH_ROUTER / "pyproject.toml").read_text(encoding="utf-8"),
        f"{module}.py": body,
    }


def use_site(monkeypatch: pytest.MonkeyPatch, target: Path, module: str) -> Iterator[Path]:
    """Put an installed ``target`` on ``sys.path`` for one test; forget ``module`` after it."""
    monkeypatch.syspath_prepend(str(target))
    importlib.invalidate_caches()
    yield target
    sys.modules.pop(module, None)


def salesbot(*args: str, cwd: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """Run the ``salesbot`` command with ``site`` on its PYTHONPATH."""
    pythonpath = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "salesbot_core", *args], cwd=cwd, capture_output=True, text=True, env=env
    )


def write_rules(folder: Path, **files: str) -> Path:
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


def territory_event(n: int, record_id: str, kind: str = "created") -> dict[str, object]:
    return {
        "id": f"e{n}",
        "kind": kind,
        "record": {"entity": "deal", "id": record_id, "owners": ["bot:territory"]},
    }


def hashed_user(record_id: str) -> str:
    return USERS[zlib.crc32(record_id.encode()) % len(USERS)]


@pytest.fixture(scope="session")
def hash_router_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin, installed from a copy of examples/salesbot-hash-router."""
    files = {p.name: p.read_text(encoding="utf-8") for p in HASH_ROUTER.iterdir() if p.is_file()}
    return install_distribution(files, tmp_path_factory.mktemp("hash-router"))


@pytest.fixture
def hash_router(hash_router_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from use_site(monkeypatch, hash_router_site, "salesbot_hash_router")


@pytest.fixture
def territory_rules(tmp_path: Path) -> Path:
    return write_rules(tmp_path / "rulesets", **{"team.yaml": TEAM, "territory.yaml": TERRITORY})


def unknown_strategy(rules: Path) -> str:
    return (
        f"{rules / 'territory.yaml'}: bot 'territory': field 'strategy': unknown strategy "
        f"'hash_by_record'; available: based_on_field, least_loaded, round_robin, weighted_round_robin"
    )


def test_example_distribution_builds_outside_the_repository(hash_router_site: Path) -> None:
    build_output = [
        p.name for p in HASH_ROUTER.iterdir() if p.name == "build" or p.name.endswith(".egg-info")
    ]
    assert build_output == []
    assert sorted(p.name for p in hash_router_site.iterdir()) == [
        "__pycache__",
        "salesbot_hash_router-0.1.0.dist-info",
        "salesbot_hash_router.py",
    ]


def test_installed_strategy_routes_each_record_id_to_the_same_user(
    hash_router: Path, territory_rules: Path, tmp_path: Path
) -> None:
    record_ids = [f"d{n}" for n in range(1, 13)]
    expected = [hashed_user(record_id) for record_id in record_ids]
    assert set(expected) == set(USERS)  # the ids exercise every territory
    with Engine(territory_rules, tmp_path / "s.db") as engine:
        assert engine.plugin_failures == []
        for n, (record_id, user) in enumerate(zip(record_ids, expected, strict=True), 1):
            outcome = engine.handle(territory_event(n, record_id))
            assert outcome.owners_after == [user]
            assert outcome.assigned[0].reason == f"record id {record_id!r} hashes to {user!r}"
        for n, (record_id, user) in enumerate(zip(record_ids, expected, strict=True), 101):
            again = engine.handle(territory_event(n, record_id, kind="updated"))
            assert (again.duplicate, again.owners_after) == (False, [user])


def test_installed_strategy_rejects_options(hash_router: Path, tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path / "rulesets",
        **{"team.yaml": TEAM, "territory.yaml": TERRITORY + "    options: {salt: x, seed: 1}\n"},
    )
    with pytest.raises(RulesetError) as info:
        Engine(rules, tmp_path / "s.db")
    file = rules / "territory.yaml"
    assert str(info.value) == (
        f"{file}: bot 'territory': field 'options': unknown option 'salt': "
        f"hash_by_record takes no options\n"
        f"{file}: bot 'territory': field 'options': unknown option 'seed': "
        f"hash_by_record takes no options"
    )


def test_without_the_plugin_the_strategy_is_unknown(territory_rules: Path, tmp_path: Path) -> None:
    with pytest.raises(RulesetError) as info:
        Engine(territory_rules, tmp_path / "s.db", autoload=True)
    assert str(info.value) == unknown_strategy(territory_rules)


def test_block_argument_keeps_an_installed_plugin_out(
    hash_router: Path, territory_rules: Path, tmp_path: Path
) -> None:
    with pytest.raises(RulesetError) as info:
        Engine(territory_rules, tmp_path / "s.db", block=["hash_router"])
    assert str(info.value) == unknown_strategy(territory_rules)


def test_block_env_var_keeps_an_installed_plugin_out(
    hash_router: Path, territory_rules: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALESBOT_BLOCK_PLUGINS", "hash_router")
    with pytest.raises(RulesetError) as info:
        Engine(territory_rules, tmp_path / "s.db")
    assert str(info.value) == unknown_strategy(territory_rules)


@pytest.fixture
def broken_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    files = tiny_distribution(
        "salesbot-broken", "salesbot_broken", "broken", 'raise RuntimeError("database credentials missing")\n'
    )
    target = install_distribution(files, tmp_path / "broken")
    yield from use_site(monkeypatch, target, "salesbot_broken")


BROKEN_LINE = (
    "plugin 'broken' (from salesbot-broken) failed to load: RuntimeError: database credentials missing"
)


def test_a_plugin_that_fails_to_import_is_reported_and_skipped(broken_plugin: Path, tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rulesets", **{"team.yaml": TEAM, "inbound.yaml": INBOUND})
    with Engine(rules, tmp_path / "s.db") as engine:
        assert engine.plugin_failures == [BROKEN_LINE]
        assert engine.handle(deal_event(1)).owners_after == ["anna"]
        assert engine.handle(deal_event(2)).owners_after == ["bartek"]

    result = run_one_event(rules, tmp_path, broken_plugin)
    assert (result.returncode, result.stderr) == (0, f"warning: {BROKEN_LINE}\n")
    assert "Traceback" not in result.stderr


def run_one_event(rules: Path, tmp_path: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``salesbot run --quiet`` on one deal event, with ``site`` (an installed plugin) on the path."""
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(deal_event(1)) + "\n", encoding="utf-8")
    return salesbot(
        "run",
        str(events),
        "--rulesets",
        str(rules),
        "--db",
        str(tmp_path / "cli.db"),
        "--quiet",
        cwd=tmp_path,
        site=site,
    )


@pytest.fixture
def typo_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    files = tiny_distribution(
        "salesbot-typo",
        "salesbot_typo",
        "typo",
        """
        from salesbot_core import hookimpl


        @hookimpl
        def salesbot_register_strategys():
            return []
        """,
    )
    target = install_distribution(files, tmp_path / "typo")
    yield from use_site(monkeypatch, target, "salesbot_typo")


def test_a_misspelled_hook_in_an_installed_plugin_is_an_error(typo_plugin: Path, tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rulesets", **{"team.yaml": TEAM, "inbound.yaml": INBOUND})
    with pytest.raises(PluginError) as info:
        Engine(rules, tmp_path / "s.db")
    message = (
        "plugin 'typo' implements 'salesbot_register_strategys', which is not a "
        "salesbot hook (did you mean 'salesbot_register_strategies'?)"
    )
    assert str(info.value) == message

    result = run_one_event(rules, tmp_path, typo_plugin)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"error: {message}\n"
    assert "Traceback" not in result.stderr


class MisspelledObserver:
    """A host plugin whose hook name has a typo (``assing`` for ``assign``)."""

    @hookimpl
    def salesbot_after_assing(self, outcome: object) -> None:
        raise AssertionError("never called")


def test_a_misspelled_hook_in_a_host_plugin_is_an_error(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rulesets", **{"team.yaml": TEAM, "inbound.yaml": INBOUND})
    observer = MisspelledObserver()
    with pytest.raises(PluginError) as info:
        Engine(rules, tmp_path / "s.db", plugins=[observer])
    assert str(info.value) == (
        "plugin 'MisspelledObserver' implements 'salesbot_after_assing', "
        "which is not a salesbot hook (did you mean 'salesbot_after_assign'?)"
    )
