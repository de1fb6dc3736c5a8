"""The throwaway PostgreSQL clusters of the tests end with the test process, even one
killed with SIGKILL: no server is left running for every run someone interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pg_server
import pytest
from pg_server import running

HOLDS_A_CLUSTER = """
import time

import pg_server


def test_holds_a_cluster():
    with pg_server.private_cluster() as cluster:
        print("data:", cluster.data, flush=True)
        time.sleep(600)
"""


@pytest.mark.slow
def test_a_cluster_is_stopped_and_removed_when_its_test_run_is_killed(tmp_path: Path) -> None:
    try:
        pg_server._bindir()
    except pg_server.NoServer as exc:
        pytest.skip(f"needs PostgreSQL server binaries: {exc}")
    (tmp_path / "test_holds.py").write_text(textwrap.dedent(HOLDS_A_CLUSTER))
    here = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))}
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-s", "test_holds.py"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert run.stdout is not None
    lines = []
    for line in run.stdout:
        lines.append(line)
        if line.startswith("data: "):
            break
    else:
        pytest.fail("the test run started no cluster:\n" + "".join(lines))
    data = Path(line.removeprefix("data: ").strip())
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    assert running(postmaster)
    run.send_signal(signal.SIGKILL)
    run.wait()
    try:
        deadline = time.monotonic() + 10
        while (running(postmaster) or data.exists()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (running(postmaster), data.parent.exists()) == (False, False)
    finally:
        if running(postmaster):  # left behind: stop it here, as the watchdog should have
            os.kill(postmaster, signal.SIGQUIT)
