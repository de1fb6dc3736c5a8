"""What every benchmark shares: options, rows of the result table, timing and memory helpers.

A benchmark module exposes ``NAME``, ``TITLE`` and ``run(options, workdir, console) -> Report``.
Each figure is a ``Row`` holding salesbot's value and a baseline measured in the same run;
``Row.ratio`` is salesbot's cost over the baseline's (time or memory: higher is worse).
"""

from __future__ import annotations

import cProfile
import multiprocessing
import os
import pstats
import resource
import statistics
import textwrap
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    """The command-line options every benchmark sees."""

    #: Each measurement is the median of this many repetitions.
    repeat: int = 3
    #: Smaller sizes (about 1/20) for a smoke run.
    quick: bool = False
    #: Overrides the event (or record) count of every benchmark.
    events: int | None = None
    #: Overrides the bot counts of ``bots_scale``.
    bots: tuple[int, ...] | None = None
    #: A ``postgresql://`` URL for ``postgres_workers``; without it that benchmark is skipped.
    pg: str | None = None
    #: Profile the salesbot side of ``per_event`` with cProfile.
    profile: bool = False

    def size(self, full: int, quick: int | None = None) -> int:
        """The count to use: ``--events`` if given, else the full or quick size."""
        if self.events is not None:
            return self.events
        return (quick if quick is not None else max(1, full // 20)) if self.quick else full


@dataclass
class Row:
    """One line of the result table: a salesbot figure beside its baseline."""

    case: str
    metric: str
    unit: str
    value: float
    baseline: float | None = None
    baseline_label: str = ""
    #: ``cost``: the figure is a time or a size (ratio = value / baseline); ``rate``: a
    #: throughput (ratio = baseline / value). Either way a ratio above 1 means salesbot costs more.
    kind: str = "cost"
    goal: float | None = None
    #: What the goal is checked against: ``ratio``, ``value`` or ``growth`` (value - baseline).
    goal_on: str = "ratio"
    goal_text: str = ""
    #: Where the gap is (a profile) and the next step: shown when the goal is missed.
    gap: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0 or self.value == 0:
            return None
        return self.baseline / self.value if self.kind == "rate" else self.value / self.baseline

    @property
    def status(self) -> str | None:
        if self.goal is None:
            return None
        checked = {
            "ratio": self.ratio,
            "value": self.value,
            "growth": None if self.baseline is None else self.value - self.baseline,
        }[self.goal_on]
        if checked is None:
            return None
        return "met" if checked <= self.goal else "missed"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "status": self.status}


@dataclass
class Report:
    """What one benchmark returns: its rows, or why it was skipped or failed."""

    name: str
    status: str = "ok"  # ok | failed | skipped
    reason: str = ""
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "seconds": self.seconds,
            "rows": [row.to_json() for row in self.rows],
            "details": self.details,
        }


class BenchmarkFailed(Exception):
    """A benchmark could not give a trustworthy figure (e.g. the baseline wrote other rows)."""


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return float(ordered[rank])


def _status_mb(key: str) -> float | None:
    """A ``kB`` line of ``/proc/self/status`` in MB, or None where there is no procfs."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """The current resident set size (``VmRSS``) in MB."""
    return _status_mb("VmRSS") or peak_rss_mb()


def peak_rss_mb() -> float:
    """The peak resident set size of this process in MB.

    ``VmHWM`` first: ``getrusage``'s ``ru_maxrss`` survives ``execve``, so in a spawned
    child it still holds the parent's peak at the time of the fork.
    """
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_rules(folder: Path, files: dict[str, str]) -> Path:
    """Write ruleset files (name -> YAML text) into a new ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


def sqlite_url(path: Path, synchronous: str) -> str:
    return f"sqlite:///{path}?synchronous={synchronous}"


def remove_db(path: Path) -> None:
    """Delete a SQLite file and its WAL companions."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def in_child(function: Callable[..., T], *args: Any) -> T:
    """Run ``function(*args)`` in a fresh interpreter (spawned), for a clean heap and no
    state left by earlier benchmarks (durable-rules keeps C state and timer threads)."""
    # An executor, not a Pool: a child that dies is an error here, not a silent respawn.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def console_for_child() -> Console:
    """A console for a spawned child: it writes to the inherited stdout."""
    return Console(force_terminal=None if os.isatty(1) else False, highlight=False)


#: Where a profiled function's own time is counted: the first area one of whose words is in
#: its file name or its name (C functions have no file: ``<method 'execute' of
#: 'sqlite3.Cursor' objects>``).
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SQL (the driver and the database)", ("sqlite3", "psycopg")),
    ("pydantic", ("pydantic",)),
    ("JSON", ("json",)),
    ("pluggy", ("pluggy",)),
    # "plugins/sql" also names plugins/sqlite_store.py, and salesbot_plugins/ when installed.
    ("the store", ("plugins/sql", "plugins/postgres", "salesbot_core/store")),
    ("deciding", ("salesbot_core/decision", "salesbot_core/strategy", "salesbot_core/conditions",
                  "salesbot_core/templates", "salesbot_core/propagation", "salesbot_core/limits",
                  "plugins/")),
    ("the engine's other Python", ("salesbot_core",)),
)  # fmt: skip


def profiled(call: Callable[[], T]) -> tuple[T, dict[str, float]]:
    """``call()`` under cProfile, and the share of its time spent in each of ``AREAS`` (own
    time, the rest under "other": the standard library, datetime, bench code)."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        result = call()
    finally:
        profiler.disable()
    spent: dict[str, float] = {}
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, _, name), (_, _, own, _, _) in stats.items():
        where = f"{filename}:{name}".replace("\\", "/")
        area = next((area for area, words in AREAS if any(word in where for word in words)), "other")
        spent[area] = spent.get(area, 0.0) + own
    total = sum(spent.values()) or 1.0
    return result, {area: share / total for area, share in sorted(spent.items(), key=lambda kv: -kv[1])}


def split_text(split: dict[str, float]) -> str:
    """``cProfile ...: deciding 31%, SQL (the driver and the database) 22%, ...`` (areas of 2% or more)."""
    shown = [f"{area} {share:.0%}" for area, share in split.items() if share >= 0.02]
    return "cProfile of salesbot's side, own time: " + ", ".join(shown)
