"""The examples in the README and the docs pages run and say what they claim."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import pytest
from cli_runner import salesbot

ROOT = Path(__file__).parent.parent
#: The README and every docs page, by path relative to the repository.
PAGES = {
    str(path.relative_to(ROOT)): path.read_text(encoding="utf-8")
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
}


def python_block_after(marker: str) -> tuple[str, str]:
    """The first Python block after ``marker`` in the one page holding it, and that page."""
    pages = [name for name, text in PAGES.items() if marker in text]
    assert len(pages) == 1, f"{marker!r} should be in exactly one page, not {pages}"
    text = PAGES[pages[0]]
    block = re.search(r"```python\n(.*?)```", text[text.index(marker) :], re.DOTALL)
    assert block is not None, f"no Python block after {marker!r} in {pages[0]}"
    return block.group(1), pages[0]


@pytest.mark.parametrize(
    ("marker", "db", "prints"),
    [
        ("## A short example", "short-example.db", 3),  # README.md
        ("# Embedding the engine", "embedded-example.db", 4),  # docs/embedding.md
    ],
)
def test_examples_print_what_their_comments_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marker: str, db: str, prints: int
) -> None:
    code, page = python_block_after(marker)
    expected = re.findall(r"# (.+)$", code, re.MULTILINE)
    assert len(expected) == prints
    shutil.copytree(ROOT / "rulesets", tmp_path / "rulesets")
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, page, "exec"), {})
    assert printed.getvalue().splitlines() == expected
    assert (tmp_path / db).exists()


def test_plugin_example_matches_the_shipped_plugin() -> None:
    shipped = (ROOT / "examples/salesbot-hash-router/salesbot_hash_router.py").read_text()
    code, page = python_block_after("Its module registers a strategy")
    lines = [line.strip() for line in code.splitlines() if line.strip()]
    assert len(lines) > 10
    for line in lines:
        assert line in shipped, f"{page} plugin example line not in the plugin: {line!r}"


def test_quickstart_quotes_the_summary_lines_the_cli_prints(tmp_path: Path) -> None:
    db = str(tmp_path / "salesbot.db")
    first = salesbot("run", "--db", db)
    again = salesbot("run", "--db", db)
    assert (first.exit_code, again.exit_code) == (0, 0), first.stderr + again.stderr
    summary = first.stdout.splitlines()[-1]
    for name in ("README.md", "docs/quickstart.md"):
        quoted = re.findall(r"^\d+ events: .*$", PAGES[name], re.MULTILINE)
        assert quoted == [summary], f"{name} quotes {quoted}, the CLI prints {summary!r}"
    assert again.stdout.splitlines()[-1].startswith("271 events: 271 duplicate")
    assert "`271 duplicate`" in PAGES["docs/quickstart.md"]


def test_the_readme_test_command_is_what_ci_runs_and_needs_one_python() -> None:
    """On a fresh machine with any one supported Python the README's test command passes:
    tox skips the Pythons it does not find, and the slow tests run on tox's own."""
    import configparser

    command = re.search(r"```sh\n(.*tox.*)\n```", PAGES["README.md"])
    assert command is not None
    steps = command[1].split(" && ")
    assert steps == [".venv/bin/pip install tox", ".venv/bin/tox p", ".venv/bin/tox -e slow"]
    assert not re.search(r"py3\d+", command[1])
    ci = (ROOT / ".ci/run").read_text(encoding="utf-8").splitlines()
    # CI runs the README's steps, then the Django integration, which needs Debian
    # packages (so it is not in tox's env_list) and which the README names.
    run = [line for line in ci if line.startswith(".venv/bin/tox")]
    assert run == [*steps[1:], ".venv/bin/tox -e django,django-py313"]
    assert "CI also runs `tox -e django`" in PAGES["README.md"]
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini", encoding="utf-8")
    assert tox["tox"]["skip_missing_interpreters"] == "true"
    assert "basepython" not in tox["testenv:slow"] and tox["testenv:slow"]["commands"].split() == [
        "pytest",
        "-m",
        "slow",
        "{posargs}",
    ]
    assert PAGES["docs/quickstart.md"].count(command[1]) == 1


def test_connect_md_curl_walkthrough_runs_against_a_real_serve_and_assigns(tmp_path: Path) -> None:
    """docs/connect.md's shell block, run as written with bash and curl against `salesbot
    serve` on the shipped rules: every call answers 2xx, and the deals end with users of the
    bot's pool, the bot switched on again."""
    import os
    import subprocess

    from test_service import serve, tokens

    from salesbot_core import Engine

    block = re.search(r"## Every endpoint with curl\n\n```sh\n(.*?)```", PAGES["docs/connect.md"], re.DOTALL)
    assert block is not None
    script = block[1].replace("curl -s ", "curl -sf ")  # -f: a 4xx or 5xx fails the script
    folder = shutil.copytree(ROOT / "rulesets", tmp_path / "rulesets")
    db = str(tmp_path / "salesbot.db")
    with Engine(folder, db):
        pass
    token = tokens(db)["all"]
    for client in serve(folder, db, tmp_path):
        base = str(client.base_url).rstrip("/")
        env = {"PATH": os.environ["PATH"], "SALESBOT_TOKEN": token, "SB": f"{base}/v1/accounts/default"}
        done = subprocess.run(
            ["bash", "-e", "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        headers = {"Authorization": f"Bearer {token}"}
        for n in (1, 2, 3):
            record = client.get(f"/v1/accounts/default/records/deal/d{n}", headers=headers).json()["record"]
            assert record["owners"] and set(record["owners"]) <= {"anna", "bartek", "celina"}, record
        bots = client.get("/v1/accounts/default/bots", headers=headers).json()["bots"]
        assert {bot["id"]: bot["active"] for bot in bots}["inbound"] is True


def test_managing_md_shell_blocks_run_as_written_and_print_what_they_say(tmp_path: Path) -> None:
    """docs/managing.md's shell blocks, run in order with bash and the installed
    ``salesbot`` in a folder holding the shipped rulesets and events: each exits 0 and
    prints every line its ``# prints:`` comments quote."""
    import os
    import subprocess
    import sys

    from salesbot_core import Engine

    blocks = re.findall(r"```sh\n(.*?)```", PAGES["docs/managing.md"], re.DOTALL)
    assert len(blocks) == 2
    shutil.copytree(ROOT / "rulesets", tmp_path / "rulesets")
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "events.jsonl", tmp_path / "examples")
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "COLUMNS": "200", "SALESBOT_RULES_FROM": "folder"}
    for block in blocks:
        done = subprocess.run(
            ["bash", "-e", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        quoted = re.findall(r"^# prints: (.+)$", block, re.MULTILINE)
        assert quoted and [line for line in quoted if line not in done.stdout.splitlines()] == []
    with Engine(None, tmp_path / "salesbot.db") as engine:
        assert [(v.version, v.restored_from) for v in engine.versions("default")] == [(2, 1), (1, None)]


def test_django_md_quotes_the_settings_the_django_tests_run_with_and_installs_what_tox_does() -> None:
    """docs/django.md's settings block is the one the Django CRM tests use, word for word
    (their shell block of ``manage.py`` commands runs in ``tox -e django``); its install
    block names the packages ``tox -e django`` installs and the Debian packages ``.ci/run``
    installs."""
    import configparser

    page = PAGES["docs/django.md"]
    settings = (ROOT / "integrations/django/tests/crm_settings.py").read_text(encoding="utf-8")
    quoted = re.search(r"# --8<-- \[start:salesbot\]\n(.*?)# --8<-- \[end:salesbot\]", settings, re.DOTALL)
    assert quoted is not None
    assert re.findall(r"```python\n(.*?)```", page, re.DOTALL) == [quoted[1]]
    install = re.search(r"## Install\n.*?```sh\n(.*?)```", page, re.DOTALL)
    assert install is not None
    apt, pip = install[1].splitlines()
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini", encoding="utf-8")
    deps = [dep.removeprefix("-e ") for dep in tox["testenv:django{,-py313}"]["deps"].strip().splitlines()]
    local = {".[server]": "{toxinidir}[server]", "./integrations/django": "{toxinidir}/integrations/django"}
    installed = [local.get(name.strip('"'), name) for name in pip.split()[2:]]
    assert installed == [dep for dep in deps if not dep.startswith(("pytest", "selenium"))]
    ci = (ROOT / ".ci/run").read_text(encoding="utf-8")
    assert apt.split()[:2] == ["apt-get", "install"]
    assert all(f"need+=({package})" in ci for package in apt.split()[2:])
