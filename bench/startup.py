"""``startup``: how soon the command answers, in a fresh process each time.

- ``salesbot --help``: what a user waits for first (goal ≤ 80 ms);
- ``salesbot run`` of one event, from start to exit, into a new SQLite file with the shipped
  rulesets: an upper bound on when the first event is committed (goal ≤ 150 ms).

The baseline is the interpreter alone (``python -c pass``): what no Python command can
go below. Each figure is the median of ``repeat × 5`` runs, the sides interleaved, as wall
time and as CPU time (user + system of the child: what the process itself costs, and what
wall time comes to on an idle machine; wall time grows with whatever else runs).

The children may write bytecode (``PYTHONDONTWRITEBYTECODE`` is dropped from their
environment) and each case runs once before the timed runs: an installed salesbot has its
modules compiled, and compiling them on every start would add tens of milliseconds that
no user pays.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from .common import Options, Report, Row, median

NAME = "startup"
TITLE = "ms from start to exit of a fresh salesbot process"
ROOT = Path(__file__).resolve().parent.parent
SALESBOT = Path(sys.executable).parent / "salesbot"


def _cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _ms(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU milliseconds of one run of ``argv`` (children run one at a time)."""
    cpu, t0 = _cpu_s(), time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    return (time.perf_counter() - t0) * 1000, (_cpu_s() - cpu) * 1000


def run(options: Options, workdir: Path, console: Console, results: Path) -> Report:
    events = workdir / "one-event.jsonl"
    with (ROOT / "examples" / "events.jsonl").open(encoding="utf-8") as f:
        events.write_text(f.readline(), encoding="utf-8")
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "salesbot --help": [str(SALESBOT), "--help"],
        "salesbot run, 1 event": [str(SALESBOT), "run", "-q", "--db", "", str(events)],
    }
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    timings: dict[str, list[tuple[float, float]]] = {case: [] for case in cases}
    for i in range(options.repeat * 5 + 1):  # run 0 writes the bytecode, and is not counted
        cases["salesbot run, 1 event"][4] = str(workdir / f"startup-{i}.db")  # a new store each time
        for case, argv in cases.items():
            took = _ms(argv, env)
            if i > 0:
                timings[case].append(took)
    floor = {
        kind: median([t[k] for t in timings["python -c pass"]]) for k, kind in enumerate(("wall", "CPU"))
    }
    goals = {"salesbot --help": 80, "salesbot run, 1 event": 150}
    gaps = {
        "salesbot --help": "The interpreter with the editable install's import finder (about 42 ms, "
        "18 without it) and click's own imports (about 28 ms) are most of it. Next: measure a "
        "regular install, whose start has no import finder",
        "salesbot run, 1 event": "Importing pydantic and building its first model are about 40% of "
        "the run's instructions (docs/benchmarks.md, where the first event's time goes). Next: for "
        "callers that wait on one event, a running `salesbot serve` (its event path is the "
        "per-request row of `service`); the command line needs the rules' and the event's models",
    }
    rows = [
        Row(
            case,
            kind,
            "ms",
            median([t[k] for t in timings[case]]),
            floor[kind],
            "python -c pass",
            goal=goals[case],
            goal_on="value",
            goal_text=f"≤ {goals[case]} ms",
            gap=gaps[case] + ".",
        )
        for case in goals
        for k, kind in enumerate(("wall", "CPU"))
    ]
    return Report(NAME, rows=rows)
