"""docs/upgrading.md's command blocks, run in order with bash as written (but for the two
ports, free ones here), against the previous release serving a store it made: each exits
0 and prints what its ``# prints:`` comments quote, the old serve exits on SIGTERM, and the
new one decides the next event on the migrated store."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from previous_release import PREVIOUS_SCHEMA, Release
from test_docs_blocks import page_blocks
from test_newer_schema import versions
from test_observability import Served
from test_readme import PAGES, ROOT
from test_service import bearer, free_port

from salesbot_plugins.migrations import SCHEMA_VERSION, STEPS, compatible_from


@pytest.mark.slow
def test_upgrading_md_blocks_upgrade_a_store_the_previous_release_serves(
    previous: Release, tmp_path: Path
) -> None:
    blocks = page_blocks("docs/upgrading.md", "sh")  # three of them in list items, indented
    assert len(blocks) == 4
    folder = shutil.copytree(ROOT / "rulesets", tmp_path / "rulesets")
    secret = previous.run(
        "token", "create", "--account", "default", "--name", "crm", cwd=tmp_path
    ).stdout.strip()
    old = Served(folder, "salesbot.db", tmp_path, "--no-deliver", salesbot=previous.command, env=previous.env)
    new_port = free_port()
    (tmp_path / "old.pid").write_text(str(old.process.pid))
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "SALESBOT_RULES_FROM": "folder"}
    try:
        old.wait_ready()
        for block in blocks:
            script = block.replace("8001", str(new_port)).replace("8000", str(old.port))
            done = subprocess.run(
                ["bash", "-e", "-c", script],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
            quoted = re.findall(r"^# prints: (.+)$", block, re.MULTILINE)
            assert done.stdout.splitlines() == quoted
        assert old.process.wait(30) == 0, old.output()
        assert versions(str(tmp_path / "salesbot.db")) == (SCHEMA_VERSION, PREVIOUS_SCHEMA)
        first = (ROOT / "examples" / "events.jsonl").read_text(encoding="utf-8").splitlines()[0]
        event = json.loads(first)  # a Sales deal, for the shipped inbound bot
        answer = httpx.post(
            f"http://127.0.0.1:{new_port}/v1/accounts/default/events",
            json=event,
            headers=bearer(secret),
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["duplicate"] is False and answer.json()["owners_after"] == ["anna"]
    finally:
        old.stop()
        pid = tmp_path / "new.pid"
        if pid.exists():
            os.kill(int(pid.read_text()), signal.SIGTERM)


def test_upgrading_md_says_which_steps_only_expand_as_the_history_declares() -> None:
    table = re.findall(
        r"^\| (\d+) \| [^|]+ \| ([^|]+) \| (\d+) \|$", PAGES["docs/upgrading.md"], re.MULTILINE
    )
    assert [int(version) for version, _, _ in table] == list(range(1, SCHEMA_VERSION + 1))
    for version, expands, oldest in table:
        step = STEPS[int(version) - 1]
        assert expands.strip() == "—" if version == "1" else expands.startswith("yes") == step.expand_only
        assert int(oldest) == compatible_from(int(version)), version
