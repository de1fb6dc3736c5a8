"""Every command and code block of the README and the docs pages is run by a test, or is
listed here with why it cannot run on a test machine: a new block that is neither fails.

Blocks are named by their page and their first line (its first ``NAME_LENGTH``
characters), so that an edit elsewhere on the page keeps their entry; a block indented in
a list item is read without its indent. The tables:

- ``RUN_ELSEWHERE``: the test that runs (or checks) a block;
- ``SKIPPED``: why a block does not run;
- ``RUN_HERE``: run by this module as written, in a folder holding the shipped rulesets and
  events (``bash`` for shell blocks, each ``$`` command of a console block; Python blocks
  executed), with the installed ``salesbot`` on the PATH;
- ``SERVED``: run so against a real ``salesbot serve`` on a free loopback port (for the
  page's 8000) that a setup starts in the state the page describes, real tokens and
  secrets in the variables the block reads; what each command prints is what the page shows;
- ``INSTALLED``: the blocks that install salesbot, then run it: the checkout is
  pip-installed once into a fresh venv, and the rest runs as written;
- ``ON_POSTGRESQL``: the blocks naming the reader's PostgreSQL hosts, run on databases of
  the test server;
- ``WITH_THE_READERS_VALUES``: blocks with other values of the reader's (secrets, a role's
  password), each run by the test named with real ones in their place.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pg_server
import pytest
import test_offboard as offboard
import test_rules_api as rules_api
from test_service import bearer, free_port, serve, tokens

from factories import TEAM
from salesbot_core import Engine
from salesbot_core.engine import open_store
from salesbot_core.registry import make_plugin_manager
from salesbot_core.tokens import create_token

T = TypeVar("T")

ROOT = Path(__file__).parent.parent
#: The languages of the blocks that are commands or code.
LANGUAGES = ("sh", "shell", "bash", "console", "python")
NAME_LENGTH = 72
# A fence may be indented (a block inside a list item): its closing fence has the same
# indent, and the block's text is read without it.
_BLOCK = re.compile(r"^( *)```(" + "|".join(LANGUAGES) + r")\n(.*?)^\1```", re.MULTILINE | re.DOTALL)


def blocks() -> dict[tuple[str, str], tuple[str, str]]:
    """Every command or code block: ``(page, first line)`` -> ``(language, text)``."""
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        page = str(path.relative_to(ROOT))
        for indent, language, indented in _BLOCK.findall(path.read_text(encoding="utf-8")):
            text = re.sub(f"^{indent}", "", indented, flags=re.MULTILINE)
            key = (page, text.splitlines()[0][:NAME_LENGTH])
            assert key not in found, f"two blocks of {page} begin with {key[1]!r}: name them apart"
            found[key] = (language, text)
    return found


def page_blocks(page: str, language: str) -> list[str]:
    """The text of each block of ``page`` in ``language``, in the page's order."""
    return [text for (on, _), (lang, text) in blocks().items() if on == page and lang == language]


RUN_ELSEWHERE = {
    (
        "README.md",
        "from salesbot_core import Engine",
    ): "test_readme.py::test_examples_print_what_their_comments_say",
    ("docs/embedding.md", "from salesbot_core import Engine, IdempotencyConflict"): (
        "test_readme.py::test_examples_print_what_their_comments_say"
    ),
    ("docs/plugins.md", "import zlib"): "test_readme.py::test_plugin_example_matches_the_shipped_plugin",
    ("README.md", ".venv/bin/pip install tox && .venv/bin/tox p && .venv/bin/tox -e slow"): (
        "test_readme.py::test_the_readme_test_command_is_what_ci_runs_and_needs_one_python (CI runs it)"
    ),
    ("docs/quickstart.md", ".venv/bin/pip install tox && .venv/bin/tox p && .venv/bin/tox -e slow"): (
        "test_readme.py::test_the_readme_test_command_is_what_ci_runs_and_needs_one_python (CI runs it)"
    ),
    (
        "docs/connect.md",
        'auth=(-H "Authorization: Bearer $SALESBOT_TOKEN" -H "Content-Type: application/json")',
    ): ("test_readme.py::test_connect_md_curl_walkthrough_runs_against_a_real_serve_and_assigns"),
    ("docs/managing.md", 'salesbot rules push --account default rulesets --message "from the repository"'): (
        "test_readme.py::test_managing_md_shell_blocks_run_as_written_and_print_what_they_say"
    ),
    ("docs/managing.md", "salesbot account set default --plan growth"): (
        "test_readme.py::test_managing_md_shell_blocks_run_as_written_and_print_what_they_say"
    ),
    ("docs/django.md", "apt-get install default-libmysqlclient-dev pkg-config"): (
        "test_readme.py::test_django_md_quotes_the_settings_the_django_tests_run_with_and_installs_what_tox_does"
    ),
    ("docs/django.md", "import os"): (
        "test_readme.py::test_django_md_quotes_the_settings_the_django_tests_run_with_and_installs_what_tox_does"
    ),
    ("docs/django.md", "python manage.py migrate"): "integrations/django's tests (tox -e django)",
    ("docs/operations.md", "salesbot account create acme"): (
        "test_rate_limits.py::test_the_rate_limit_docs_run_as_written_against_a_real_serve"
    ),
    ("docs/operations.md", "salesbot serve --rules-from store --workers 2 --rate-limit 20 --rate-bur"): (
        "test_rate_limits.py::test_the_rate_limit_docs_run_as_written_against_a_real_serve"
    ),
    ("docs/operations.md", 'salesbot serve --rulesets rulesets --db "$SALESBOT_DB" --host 127.0.0.1 '): (
        "test_rolling_restart.py::test_a_rolling_restart_behind_haproxy_fails_no_request_and_decides_each_event_once"
    ),
    ("docs/postgresql.md", 'pg_basebackup --pgdata="$STANDBY_DATA" --host="$PRIMARY_HOST" --port="$P'): (
        "test_failover.py::test_docs_set_replication_up_with_the_very_commands_and_settings_the_tests_run"
    ),
    ("docs/postgresql.md", 'pg_ctl promote --pgdata="$STANDBY_DATA" --wait'): (
        "test_failover.py::test_docs_set_replication_up_with_the_very_commands_and_settings_the_tests_run"
    ),
    ("docs/postgresql.md", 'pg_dump --format=custom --file=crm.dump "$SALESBOT_DB"'): (
        "test_pg_backup.py::test_a_dump_of_a_running_database_restored_into_a_new_server_continues_exactly"
    ),
    ("docs/postgresql.md", 'cp -a "$BASE" "$RESTORED"'): (
        "test_pg_backup.py::test_point_in_time_recovery_to_a_restore_point_holds_what_came_before_it_and_continues"
    ),
    **{
        ("docs/upgrading.md", first): (
            "test_upgrading_docs.py::test_upgrading_md_blocks_upgrade_a_store_the_previous_release_serves"
        )
        for first in (
            "# the database's version, as the running salesbot wrote it (SQLite's use",
            # the three below are in list items
            "salesbot run --quiet /dev/null -r rulesets --db salesbot.db",
            "salesbot serve -r rulesets --db salesbot.db --port 8001 >>new.log 2>&1 &",
            'kill -TERM "$(cat old.pid)"   # old.pid: the old serve\'s process id',
        )
    },
}

#: Why each of these blocks does not run on a test machine.
SKIPPED = {
    (
        "docs/benchmarks.md",
        "python -m bench --pg postgresql://user@host/db --markdown bench/results/tables.md   # everything",
    ): (
        "the full benchmark suite on the reader's PostgreSQL: hours, not a test (test_bench.py runs "
        "each benchmark --quick)"
    ),
    (
        "docs/benchmarks.md",
        "python -m bench --pg postgresql://postgres@127.0.0.1:55432/postgres --json bench/results/full.json",
    ): ("how the published figures were made: hours, not a test"),
}

#: Run here: a command block's text as bash runs it (a console block's ``$`` commands).
RUN_HERE = {
    ("docs/sla.md", "salesbot tick                                 # everything due now"): "shell",
    # A synopsis: run without its optional part, as the line after it runs it.
    (
        "docs/sla.md",
        "salesbot user offboard anna --account default --operation anna-leaves [--to-bot BOT]",
    ): "shell",
    (
        "docs/sla.md",
        "salesbot user list --account default   # anna: switched off (switched off by cli at",
    ): "shell",
    (
        "docs/service.md",
        "$ salesbot signing enable --account default     # prints a new secret, once",
    ): "console",
    ("docs/service.md", "import hashlib, hmac, time"): "verify",
    ("docs/plugins.md", "from salesbot_core import hookimpl"): "python",
}


def named(table: dict[tuple[str, str], T]) -> dict[tuple[str, str], T]:
    """A table's entries by the name ``blocks`` gives a block."""
    return {(page, first[:NAME_LENGTH]): value for (page, first), value in table.items()}


def test_every_block_is_run_or_listed_with_why_not() -> None:
    found = set(blocks())
    listed = [
        *named(RUN_ELSEWHERE),
        *named(SKIPPED),
        *named(RUN_HERE),
        *named(SERVED),
        *named(INSTALLED),
        *named(ON_POSTGRESQL),
        *named(WITH_THE_READERS_VALUES),
    ]
    assert len(listed) == len(set(listed)), "a block is listed twice"
    assert sorted(found - set(listed)) == [], (
        "blocks no test runs: run them, or list them in SKIPPED with why"
    )
    assert sorted(set(listed) - found) == [], "listed blocks no page has any more"


def commands(language: str, text: str) -> str:
    """What bash runs of a block: a shell block as it is; of a console block, each ``$``
    line and its continuation lines (the rest is output)."""
    if language != "console":
        return text
    lines, going_on = [], False
    for line in text.splitlines():
        if line.startswith("$ ") or going_on:
            lines.append(line.removeprefix("$ "))
            going_on = line.endswith("\\")
    return "\n".join(lines) + "\n"


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder with the shipped rulesets and events and the store they make, and the
    environment the blocks run in."""
    shutil.copytree(ROOT / "rulesets", tmp_path / "rulesets")
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "events.jsonl", tmp_path / "examples")
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "COLUMNS": "200", "SALESBOT_RULES_FROM": "folder"}
    done = subprocess.run(
        ["salesbot", "run", "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return tmp_path, env


def block_id(key: tuple[str, str]) -> str:
    return f"{key[0]}:{key[1][:40]}"


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(named(RUN_HERE)), ids=block_id)
def test_the_block_runs_as_written(key: tuple[str, str], folder: tuple[Path, dict[str, str]]) -> None:
    cwd, env = folder
    language, text = blocks()[key]
    how = named(RUN_HERE)[key]
    if how in ("shell", "console"):
        script = commands(language, text).replace(" [--to-bot BOT]", "")
        done = subprocess.run(
            ["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return
    scope: dict[str, object] = {}
    exec(compile(text, f"{key[0]} block", "exec"), scope)
    if how == "verify":
        # The receiver's check accepts what salesbot signs, and nothing else.
        from salesbot_core.http.signing import signature_header

        verify = scope["verify"]
        body = b'{"id": "dlv_1"}'
        header = signature_header(["whsec_a"], body, int(time.time()))
        assert callable(verify)
        assert verify("whsec_a", header, body) is True
        assert verify("whsec_b", header, body) is False
        assert verify("whsec_a", header, body + b" ") is False
        stale = signature_header(["whsec_a"], body, int(time.time()) - 301)
        assert verify("whsec_a", stale, body) is False
        expected = hmac.new(b"whsec_a", f"{header.split(',')[0][2:]}.".encode() + body, hashlib.sha256)
        assert f"v1={expected.hexdigest()}" in header


# Blocks run against a real ``salesbot serve`` on a free loopback port. Each setup starts
# the server in the state the block's page describes and yields it with the environment
# variables the block uses; it is then sent what each command printed, and checks the
# block's effect where its page shows no output.


@dataclass
class Server:
    client: httpx.Client
    #: The variables the block reads (``$TOKEN``, or names a Python block uses).
    env: dict[str, str]


Setup = Generator[Server, list[str], None]


def acme_at_version_4(tmp_path: Path) -> Setup:
    """docs/service.md's ETag excerpt: account acme's rules, served from the store, at
    version 4 with a bot ``inbound``."""
    for api in rules_api.served(str(tmp_path / "salesbot.db"), tmp_path):
        rules_api.publish_team(api)
        base = str(api.client.base_url).rstrip("/")
        yield Server(api.client, {"BASE": base, "TOKEN": api.tokens["acme"]})
        bot = api("read", "GET", "/v1/accounts/acme/bots/inbound")
        assert (bot.json(), bot.headers["etag"]) == (
            {"id": "inbound", "entity": "deal", "users": ["anna"]},
            '"v5"',
        )


def signing_on(tmp_path: Path) -> Setup:
    """docs/service.md's signed post: account default needs a signature."""
    folder = tmp_path / "rulesets"
    folder.mkdir()
    (folder / "team.yaml").write_text(TEAM, encoding="utf-8")
    (folder / "bots.yaml").write_text("bots:\n  - {id: inbound, users: [anna, bartek]}\n", encoding="utf-8")
    db = str(tmp_path / "salesbot.db")
    secret = subprocess.run(
        [sys.executable, "-m", "salesbot_core", "signing", "enable", "--account", "default", "--db", db],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.strip()
    made = tokens(db)
    for client in serve(folder, db, tmp_path):
        base = str(client.base_url).rstrip("/")
        yield Server(client, {"SECRET": secret, "BASE": base, "TOKEN": made["events"]})
        # The block's event was decided, which it would not have been unsigned.
        record = client.get("/v1/accounts/default/records/deal/d1", headers=bearer(made["read"]))
        assert record.json()["record"]["owners"] == ["anna"], record.text
        unsigned = client.post("/v1/accounts/default/events", json={}, headers=bearer(made["events"]))
        assert unsigned.status_code == 401


def invalid_rules_in_the_folder(tmp_path: Path) -> Setup:
    """docs/service.md's ``/v1/rulesets``: a serve whose folder became invalid, its bot given
    an unknown strategy; the block prints the JSON block after it."""
    folder = tmp_path / "rulesets"
    folder.mkdir()
    (folder / "team.yaml").write_text(TEAM, encoding="utf-8")
    (folder / "bots.yaml").write_text("bots:\n  - {id: inbound, users: [anna]}\n", encoding="utf-8")
    db = str(tmp_path / "salesbot.db")
    made = tokens(db)
    for client in serve(Path("rulesets"), db, tmp_path, "--reload-interval", "0.1"):
        (folder / "bots.yaml").write_text("bots:\n  - {id: inbound, users: [anna], strategy: nope}\n")
        admin = bearer(made["admin"])
        deadline = time.monotonic() + 30
        while client.get("/v1/rulesets", headers=admin).json()["ok"]:
            assert time.monotonic() < deadline, "the serve did not check its folder again"
            time.sleep(0.05)
        printed = yield Server(client, {"SALESBOT_ADMIN_TOKEN": made["admin"]})
        shown = json.loads(json_block_after("docs/service.md", "/v1/rulesets -H"))
        answer = json.loads(printed[0])
        stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
        assert re.fullmatch(stamp, answer.pop("loaded_at")) and re.fullmatch(stamp, answer.pop("checked_at"))
        del shown["loaded_at"], shown["checked_at"]
        # The page cuts the error's text short with "...".
        cut = shown["errors"][0].pop("text").removesuffix("...")
        assert answer["errors"][0].pop("text").startswith(cut)
        assert answer == shown


def anna_owns_two_deals_and_two_people(tmp_path: Path) -> Setup:
    """docs/sla.md's offboarding over HTTP: test_offboard.py's team and bots, six deals and
    six people made through them."""
    folder = tmp_path / "rulesets"
    folder.mkdir()
    (folder / "team.yaml").write_text(offboard.TEAM, encoding="utf-8")
    (folder / "bots.yaml").write_text(offboard.BOTS, encoding="utf-8")
    db = str(tmp_path / "salesbot.db")
    with Engine(folder, db) as engine:
        engine.handle_many(
            [
                offboard.event(n, entity, bot)
                for entity, bot in (("deal", "deals"), ("person", "people"))
                for n in range(6)
            ]
        )
    made = tokens(db)
    for client in serve(folder, db, tmp_path):
        yield Server(client, {"SALESBOT_TOKEN": made["manage"]})


#: Run here against a real serve, which the setup starts for the block.
SERVED: dict[tuple[str, str], Callable[[Path], Setup]] = {
    (
        "docs/service.md",
        '$ curl -si $BASE/v1/accounts/acme/bots/inbound -H "Authorization: Bearer $TOKEN" | grep -i etag',
    ): acme_at_version_4,
    ("docs/service.md", "import hashlib, hmac, time, httpx"): signing_on,
    (
        "docs/service.md",
        '$ curl -s http://127.0.0.1:8000/v1/rulesets -H "Authorization: Bearer $SALESBOT_ADMIN_TOKEN"',
    ): invalid_rules_in_the_folder,
    (
        "docs/sla.md",
        "$ curl -s -X POST http://127.0.0.1:8000/v1/accounts/default/users/anna/offboard \\",
    ): anna_owns_two_deals_and_two_people,
}


def json_block_after(page: str, marker: str) -> str:
    """The ``json`` block after the first ``marker`` of ``page``: the output a block shows."""
    text = (ROOT / page).read_text(encoding="utf-8")
    shown = re.search(r"```json\n(.*?)```", text[text.index(marker) :], re.DOTALL)
    assert shown is not None
    return shown[1]


def same_output(printed: str, shown: list[str]) -> None:
    """What a command printed is what its block shows after it: the same JSON, or the
    same lines. A comment (`` # ...``) in the shown output is the page's, not printed."""
    lines = [re.sub(r"\s+# .*$", "", line) for line in shown]
    try:
        expected = json.loads("\n".join(lines))
    except ValueError:
        assert [line.rstrip() for line in printed.splitlines()] == lines
    else:
        assert json.loads(printed) == expected


def session(text: str) -> list[tuple[str, list[str]]]:
    """A console block's commands (each ``$`` line and its continuation lines), each with
    the output lines shown after it."""
    steps: list[tuple[str, list[str]]] = []
    going_on = False
    for line in text.splitlines():
        if going_on:
            steps[-1] = (f"{steps[-1][0]}\n{line}", [])
        elif line.startswith("$ "):
            steps.append((line.removeprefix("$ "), []))
        else:
            steps[-1][1].append(line)
        going_on = line.endswith("\\")
    return steps


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(named(SERVED)), ids=block_id)
def test_the_block_runs_as_written_against_a_real_serve(key: tuple[str, str], tmp_path: Path) -> None:
    language, text = blocks()[key]
    steps = named(SERVED)[key](tmp_path)
    server = next(steps)
    try:
        base = str(server.client.base_url).rstrip("/")
        printed = []
        if language == "python":
            exec(compile(text, f"{key[0]} block", "exec"), dict(server.env))
        else:
            for command, shown in session(text):
                done = subprocess.run(
                    ["bash", "-e", "-o", "pipefail", "-c", command.replace("http://127.0.0.1:8000", base)],
                    env={"PATH": os.environ["PATH"], **server.env},
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert done.returncode == 0, done.stderr
                if shown:
                    same_output(done.stdout, shown)
                printed.append(done.stdout)
        with pytest.raises(StopIteration):
            steps.send(printed)
    finally:
        steps.close()


# The blocks that install salesbot, then run it. The install is made once, by the
# ``installed`` fixture, and each block's install command is taken out of it: pip would
# fetch the package and its requirements from PyPI. The rest runs as written, with the
# installed ``salesbot`` on the PATH, in a fresh folder holding the shipped rulesets and
# events; a ``salesbot serve`` runs in the background on a free port (its documented
# 8000 replaced), and is stopped with SIGTERM after the page's URL answered.
INSTALL_COMMANDS = (
    "python3 -m venv .venv && .venv/bin/pip install -e . && ",
    "pip install 'salesbot[server]'",
)

#: Each block, and the URL its page then opens, on the serve it starts (None: it starts none).
INSTALLED: dict[tuple[str, str], str | None] = {
    ("README.md", "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/salesbot run"): None,
    (
        "docs/quickstart.md",
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/salesbot run",
    ): None,
    ("docs/admin.md", "$ pip install 'salesbot[server]'"): "/",  # "Then open http://127.0.0.1:8000/"
    ("docs/connect.md", "$ pip install 'salesbot[server]'"): "$SB/bots",
    ("docs/service.md", "$ pip install 'salesbot[server]'"): "/v1/accounts/default/records/deal/d1",
}


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with this checkout installed by pip (editable, as the README installs
    it); its requirements are the test interpreter's, seen through a ``.pth`` file."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    ours = subprocess.run([python, "-c", where], capture_output=True, text=True, check=True).stdout.strip()
    theirs = sysconfig.get_paths()["purelib"]
    (Path(ours) / "test-interpreter.pth").write_text(f"import site; site.addsitedir({theirs!r})\n")
    install = ["install", "--quiet", "--no-deps", "--no-build-isolation", "-e", str(ROOT)]
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), *install], check=True)
    return venv


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(named(INSTALLED)), ids=block_id)
def test_the_install_block_runs_with_the_checkout_installed(
    key: tuple[str, str], installed: Path, tmp_path: Path
) -> None:
    language, text = blocks()[key]
    shutil.copytree(ROOT / "rulesets", tmp_path / "rulesets")
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "events.jsonl", tmp_path / "examples")
    (tmp_path / ".venv").symlink_to(installed)
    env = {**os.environ, "PATH": f"{installed / 'bin'}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "200"}
    env["SALESBOT_RULES_FROM"] = "folder"

    def run(command: str) -> str:
        done = subprocess.run(
            ["bash", "-e", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    if language == "sh":
        assert text.startswith(INSTALL_COMMANDS[0])
        printed = run(text.removeprefix(INSTALL_COMMANDS[0]))
        # It decides the shipped events, and prints the summary its page quotes.
        assert re.findall(r"^\d+ events: .*$", (ROOT / key[0]).read_text(), re.MULTILINE) == [
            printed.splitlines()[-1]
        ]
        return
    with console_with_serve(text, tmp_path, env, {}) as (base, env):
        url = INSTALLED[key]
        assert url is not None
        url = url.replace("$SB", env["SB"]) if url.startswith("$SB") else f"{base}{url}"
        answer = httpx.get(url, headers=bearer(env["SALESBOT_TOKEN"]), timeout=30, follow_redirects=True)
        assert answer.status_code == 200, answer.text


@contextlib.contextmanager
def console_with_serve(
    text: str, cwd: Path, env: dict[str, str], placeholders: dict[str, str]
) -> Iterator[tuple[str, dict[str, str]]]:
    """A console block's commands run with bash in ``cwd``, each of ``placeholders`` replaced
    by its value, and the ``salesbot serve`` among them in the background on a free port.
    Yields its URL and the block's environment (with the token the block made, as
    ``$SALESBOT_TOKEN``) while it serves; then stops it with SIGTERM: it exits 0."""
    env = dict(env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server: subprocess.Popen[bytes] | None = None

    def run(command: str) -> str:
        done = subprocess.run(
            ["bash", "-e", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    try:
        for command, shown in session(text):
            command = command.replace("http://127.0.0.1:8000", base)
            for placeholder, value in placeholders.items():
                command = command.replace(placeholder, value)
            if command == INSTALL_COMMANDS[1]:
                continue  # the ``installed`` fixture installed it
            if command.startswith("salesbot serve "):
                command = command.replace("--port 8000", f"--port {port}")
                if f"--port {port}" not in command:
                    command += f" --port {port}"  # the default port, 8000, replaced
                with (cwd / "serve.log").open("wb") as log:
                    server = subprocess.Popen(
                        ["bash", "-c", f"exec {command}"], cwd=cwd, env=env, stdout=log, stderr=log
                    )
                wait_healthy(base, server, cwd / "serve.log")
            elif command.startswith("export "):
                command = command.replace("sb_3kX...", env.get("SALESBOT_TOKEN", ""))
                exported = run(f"{command}\nenv -0").split("\0")
                env.update(line.partition("=")[::2] for line in exported if "=" in line)
            else:
                printed = run(command)
                if command.startswith("salesbot token create"):
                    # Shown once: the reader keeps it (connect.md exports it; the
                    # others send it as $SALESBOT_TOKEN).
                    assert [re.sub(r"\s+# .*$", "", line) for line in shown] == ["sb_3kX..."]
                    assert re.fullmatch(r"sb_\S+\n", printed), printed
                    env["SALESBOT_TOKEN"] = printed.strip()
                elif shown:
                    same_output(printed, shown)
                else:
                    assert json.loads(printed)["duplicate"] is False, printed
        assert server is not None, "the block starts no serve"
        yield base, env
        server.terminate()
        assert server.wait(30) == 0, (cwd / "serve.log").read_text()
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.wait()


def wait_healthy(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


# The blocks that name the reader's PostgreSQL hosts, run on databases of the test server,
# their URLs in place of the page's, in a folder holding the shipped rulesets and events.
#: Each block, and the page's URLs in it.
ON_POSTGRESQL: dict[tuple[str, str], tuple[str, ...]] = {
    ("docs/postgresql.md", "pip install -e '.[postgresql]'        # psycopg 3 and its connection pool"): (
        "postgresql://salesbot:secret@db.internal/crm",
    ),
    ("docs/postgresql.md", 'engine = Engine("rulesets", "postgresql://salesbot:secret@db.internal/crm")'): (
        "postgresql://salesbot:secret@db.internal/crm",
    ),
    ("docs/operations.md", "engines = {"): (
        "postgresql://salesbot@db-eu.internal/crm",
        "postgresql://salesbot@db-us.internal/crm",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(named(ON_POSTGRESQL)), ids=block_id)
def test_the_block_runs_on_the_test_postgresql(
    key: tuple[str, str],
    folder: tuple[Path, dict[str, str]],
    installed: Path,
    postgres_admin_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cwd, env = folder
    language, text = blocks()[key]
    fresh = pg_server.database_factory(postgres_admin_url)
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(contextlib.contextmanager(fresh)()) for _ in named(ON_POSTGRESQL)[key]]
        for theirs, ours in zip(named(ON_POSTGRESQL)[key], urls, strict=True):
            text = text.replace(theirs, ours)
        events = (cwd / "examples" / "events.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        if language == "sh":
            # The install is the ``installed`` fixture's; the reader's two files of events
            # are the shipped events' halves. The runs go on in the background: wait for
            # each, and fail if one failed.
            install, runs = text.split("\n", 1)
            assert install.startswith("pip install -e '.[postgresql]'")
            (cwd / "events-part-1.jsonl").write_text("".join(events[:136]), encoding="utf-8")
            (cwd / "events-part-2.jsonl").write_text("".join(events[136:]), encoding="utf-8")
            env = {**env, "PATH": f"{installed / 'bin'}{os.pathsep}{env['PATH']}"}
            script = runs + 'for job in $(jobs -p); do wait "$job"; done\n'
            done = subprocess.run(
                ["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
            )
            assert done.returncode == 0, done.stdout + done.stderr
            # Between them the two workers decided every event once.
            again = subprocess.run(
                ["salesbot", "run", "--db", urls[0]], cwd=cwd, env=env, capture_output=True, text=True
            )
            assert again.stdout.splitlines()[-1].startswith("271 events: 271 duplicate"), again.stdout
            return
        monkeypatch.chdir(cwd)
        # A Sales deal for the inbound bot, naming its account as a multi-account CRM does.
        event = {**json.loads(events[0]), "account": "default"}
        scope: dict[str, object] = {"Engine": Engine, "event": event, "group_of": lambda account: "eu"}
        exec(compile(text, f"{key[0]} block", "exec"), scope)
        made = scope["engines"] if "engines" in scope else {"": scope["engine"]}
        assert isinstance(made, dict)
        for engine in made.values():
            engine.close()
        # Each URL is a working store: the event is decided on it, on the group's alone.
        for url in urls:
            with Engine("rulesets", url) as engine:
                outcome = engine.handle(event)
                assert outcome.owners_after == ["anna"]
                assert outcome.duplicate is (url == urls[0] and "engines" in scope)


# Serves started with the reader's values: what stands in for them here.
SIGNING_SECRETS = {"whsec_Qm9v...": "whsec_default", "whsec_new...": "whsec_new", "whsec_old...": "whsec_old"}
#: Run by the test named.
WITH_THE_READERS_VALUES = {
    (
        "docs/connect.md",
        "$ export SALESBOT_SIGNING_SECRET_DEFAULT=whsec_Qm9v...           # account default",
    ): ("test_connect_md_signing_secrets_are_read_from_the_environment"),
    ("docs/connect.md", "$ salesbot serve -r rulesets --db postgresql://salesbot@db.internal/salesbot \\"): (
        "test_connect_md_serve_on_postgresql_runs_on_the_test_server"
    ),
    ("docs/postgresql.md", "sudo -u postgres createuser --pwprompt salesbot"): (
        "test_postgresql_md_makes_a_role_and_database_salesbot_creates_its_tables_in"
    ),
}


def block_run_by(test: str) -> str:
    """The text of the one block of ``WITH_THE_READERS_VALUES`` that ``test`` runs."""
    [key] = [key for key, name in named(WITH_THE_READERS_VALUES).items() if name == test]
    return blocks()[key][1]


def post_signed(base: str, account: str, token: str, secrets: list[str]) -> httpx.Response:
    """The first shipped event, to ``account``, signed with ``secrets`` (none: unsigned)."""
    from salesbot_core.http.signing import signature_header

    body = (ROOT / "examples" / "events.jsonl").read_bytes().splitlines()[0]
    headers = {**bearer(token), "Content-Type": "application/json"}
    if secrets:
        headers["Salesbot-Signature"] = signature_header(secrets, body, int(time.time()))
    return httpx.post(f"{base}/v1/accounts/{account}/events", content=body, headers=headers, timeout=30)


@pytest.mark.slow
def test_connect_md_signing_secrets_are_read_from_the_environment(
    folder: tuple[Path, dict[str, str]],
) -> None:
    """The block run with real secrets in place of its placeholders: each account needs
    a signature by its own secret, and acme-eu, mid-rotation, takes either of its two."""
    cwd, env = folder
    made = tokens(str(cwd / "salesbot.db"))
    store = open_store(make_plugin_manager(), str(cwd / "salesbot.db"))
    try:
        acme = create_token(store, "acme-eu", "crm")
    finally:
        store.close()
    text = block_run_by("test_connect_md_signing_secrets_are_read_from_the_environment")
    with console_with_serve(text, cwd, env, SIGNING_SECRETS) as (base, _):
        assert post_signed(base, "default", made["events"], []).status_code == 401
        assert post_signed(base, "default", made["events"], ["whsec_new"]).status_code == 401
        done = post_signed(base, "default", made["events"], ["whsec_default"])
        assert (done.status_code, done.json()["duplicate"]) == (200, True), done.text  # run by ``folder``
        assert post_signed(base, "acme-eu", acme, []).status_code == 401
        for secret in ("whsec_new", "whsec_old"):
            # Signed right: the body is looked at, and acme-eu has no bot "inbound".
            answer = post_signed(base, "acme-eu", acme, [secret])
            assert (answer.status_code, answer.json()["errors"]) == (
                422,
                [{"field": "record.owners.0", "message": "'bot:inbound' is not a bot of account 'acme-eu'"}],
            )


@pytest.mark.slow
def test_connect_md_serve_on_postgresql_runs_on_the_test_server(
    folder: tuple[Path, dict[str, str]], postgres_url: str
) -> None:
    """The block with the test server's database in place of the reader's, and loopback in
    place of every interface: its four workers decide events on PostgreSQL."""
    cwd, env = folder
    text = block_run_by("test_connect_md_serve_on_postgresql_runs_on_the_test_server")
    assert "--host 0.0.0.0" in text and "--workers 4" in text
    placeholders = {"postgresql://salesbot@db.internal/salesbot": postgres_url, "0.0.0.0": "127.0.0.1"}
    made = tokens(postgres_url)
    with console_with_serve(text, cwd, env, placeholders) as (base, _):
        done = post_signed(base, "default", made["events"], [])
        assert (done.status_code, done.json()["owners_after"]) == (200, ["anna"]), done.text


@pytest.mark.slow
def test_postgresql_md_makes_a_role_and_database_salesbot_creates_its_tables_in(
    postgres_admin_url: str, tmp_path: Path
) -> None:
    """The block on the test server, as its superuser ``postgres`` (what ``sudo -u
    postgres`` is for on a system's own server), the password typed at the prompt, the role
    and database named apart from any other run's: salesbot then makes its store in it as
    the new role."""
    import psycopg

    text = block_run_by("test_postgresql_md_makes_a_role_and_database_salesbot_creates_its_tables_in")
    apart = uuid.uuid4().hex[:8]
    name, database = f"salesbot_{apart}", f"crm_{apart}"
    script = text.replace("sudo -u postgres ", "").replace(" crm\n", f" {database}\n")
    script = script.replace(" salesbot", f" {name}")
    server = psycopg.conninfo.conninfo_to_dict(postgres_admin_url)
    env = {**os.environ, "PGHOST": str(server["host"]), "PGPORT": str(server["port"]), "PGUSER": "postgres"}
    try:
        # With no terminal the password prompt reads stdin.
        done = subprocess.run(
            ["bash", "-e", "-c", script],
            input="secret\nsecret\n",
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            start_new_session=True,
        )
        assert done.returncode == 0, done.stderr
        with psycopg.connect(postgres_admin_url) as conn:
            role = conn.execute(
                "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %s", (name,)
            ).fetchall()
            owner = conn.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (database,)
            ).fetchall()
        assert (role, owner) == ([(True,)], [(name,)])
        url = f"postgresql://{name}:secret@{server['host']}:{server['port']}/{database}"
        with Engine(ROOT / "rulesets", url) as engine:
            assert engine.handle(
                json.loads((ROOT / "examples/events.jsonl").read_text().splitlines()[0])
            ).owners_after == ["anna"]
    finally:
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{name}"')
