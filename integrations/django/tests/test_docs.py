"""docs/django.md's ``manage.py`` block, run as written in a folder holding a plain
Django ``manage.py``, against this test's Django CRM database: each command exits 0 and
prints what the page quotes, and the bot's user exists afterwards."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

#: The manage.py ``django-admin startproject`` writes, reduced to what it does.
MANAGE_PY = """import sys

from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
"""


@pytest.mark.usefixtures("crm")
def test_the_manage_py_block_runs_and_prints_what_the_page_says(tmp_path: Path) -> None:
    from django.contrib.auth.models import User
    from django.db import connection

    page = (ROOT / "docs" / "django.md").read_text(encoding="utf-8")
    blocks = [block for block in re.findall(r"```sh\n(.*?)```", page, re.DOTALL) if "manage.py" in block]
    assert len(blocks) == 1
    (tmp_path / "manage.py").write_text(MANAGE_PY, encoding="utf-8")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        # crm_settings is beside this file.
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])
        ),
        "SALESBOT_DJANGO_DB": connection.settings_dict["NAME"],
        "SALESBOT_STORE": "salesbot.db",
        "SALESBOT_RULES_DIR": "salesbot-rules",
    }
    done = subprocess.run(
        ["bash", "-e", "-c", blocks[0]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    quoted = re.findall(r"^# prints: (.+)$", blocks[0], re.MULTILINE)
    assert quoted == ["ruleset files in salesbot-rules: updated"]
    assert done.stdout.splitlines()[-1] == quoted[0]
    assert sorted(path.name for path in (tmp_path / "salesbot-rules").iterdir()) == [
        "bookkeeping.yaml",
        "global-sales.yaml",
        "local-sales.yaml",
    ]
    assert User.objects.get(username="Sales Bot: Inbound leads").salesbot_bot.bot == "inbound"
