"""``per_event``: the full path of one event on SQLite, against hand-written raw sqlite3.

A deal is created with the bot as owner; the bot round-robins over 3 users, passes the
owner on to the deal's company, tags both, writes a wall note on both and notifies the new
owner. Each event is one ``Engine.handle`` (one ``BEGIN IMMEDIATE ... COMMIT``). The
baseline (``bench.raw_sqlite``) does the same reads and writes with the same schema and
pragmas; after each pair of runs both stores are compared table by table, and the
benchmark fails if they differ. Run for ``synchronous=FULL`` (the default) and ``NORMAL``.

The two sides run on two store files side by side, taking turns every 250 events, so a
slow spell of a shared machine or disk does not land on one side only.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from salesbot_core import Engine

from .common import (
    BenchmarkFailed,
    Options,
    Report,
    Row,
    median,
    percentile,
    remove_db,
    sqlite_url,
    write_rules,
)
from .raw_sqlite import RawBot, RawRouter, compare, connect, snapshot

NAME = "per_event"
TITLE = "one event, full path (Engine.handle)"
EVENTS = 5_000
#: Deals link to this many companies, so most events update a company stored before.
COMPANIES = 500
#: The two sides take turns, this many events at a time.
BLOCK = 250
#: The goal: salesbot's time per event over the baseline's, per ``synchronous`` mode.
GOALS = {"FULL": 1.5, "NORMAL": 2.5}

USERS = [("anna", "Anna Nowak"), ("bartek", "Bartek Wiśniewski"), ("celina", "Celina Zając")]
RULES = """\
account: default
users:
  - {id: anna, name: Anna Nowak}
  - {id: bartek, name: Bartek Wiśniewski}
  - {id: celina, name: Celina Zając}
bots:
  - id: inbound
    name: Inbound leads
    entity: deal
    users: [anna, bartek, celina]
    strategy: round_robin
    trigger: {events: [created, updated, list], processes: [Sales]}
    actions:
      related: {company: true}
      tag: inbound-bot
      note: "Assigned by {bot.name} to {owner.name}"
      notify: "New deal {record.title}"
"""
RAW_BOT = RawBot(id="inbound", name="Inbound leads", users=USERS, tag="inbound-bot")


def events(count: int) -> list[dict[str, Any]]:
    """``count`` created deals with the bot as owner, each linked to a company."""
    return [
        {
            "id": f"e{n}",
            "kind": "created",
            "record": {
                "entity": "deal",
                "id": f"d{n}",
                "title": f"Deal {n}",
                "process": "Sales",
                "value": 1000 + n,
                "company": f"c{n % COMPANIES}",
                "owners": ["bot:inbound"],
            },
        }
        for n in range(count)
    ]


def _timed(handle: Callable[[dict[str, Any]], Any], batch: list[dict[str, Any]]) -> tuple[float, list[float]]:
    """Total seconds and per-call seconds of ``handle`` over ``batch``."""
    clock = time.perf_counter
    latencies = []
    start = clock()
    for event in batch:
        t0 = clock()
        handle(event)
        latencies.append(clock() - t0)
    return clock() - start, latencies


def run_pair(
    rules: Path, sb_db: Path, raw_db: Path, synchronous: str, batch: list[dict[str, Any]], flip: bool
) -> dict[str, tuple[float, list[float]]]:
    """Both sides on fresh stores, interleaved in blocks of ``BLOCK`` events (taking turns
    at going first), so a slower spell of the machine (other processes, the disk's own
    cache flushes) falls on both sides alike. Returns each side's seconds and latencies."""
    for db in (sb_db, raw_db):
        remove_db(db)
    engine = Engine(rules, sqlite_url(sb_db, synchronous), autoload=False)
    conn = connect(raw_db, synchronous)
    handles = {"salesbot": engine.handle, "raw": RawRouter(conn, RAW_BOT).handle}
    seconds = dict.fromkeys(handles, 0.0)
    latencies: dict[str, list[float]] = {side: [] for side in handles}
    try:
        for i, start in enumerate(range(0, len(batch), BLOCK)):
            sides = ["salesbot", "raw"] if (i % 2 == 0) != flip else ["raw", "salesbot"]
            for side in sides:
                total, each = _timed(handles[side], batch[start : start + BLOCK])
                seconds[side] += total
                latencies[side] += each
    finally:
        engine.close()
        conn.close()
    return {side: (seconds[side], latencies[side]) for side in handles}


def profile(
    rules: Path, db: Path, synchronous: str, batch: list[dict[str, Any]], out: Path, top: int = 10
) -> str:
    """cProfile of the salesbot side: the ``top`` functions by cumulative time, as text."""
    remove_db(db)
    with Engine(rules, sqlite_url(db, synchronous), autoload=False) as engine:
        profiler = cProfile.Profile()
        profiler.enable()
        for event in batch:
            engine.handle(event)
        profiler.disable()
    profiler.dump_stats(str(out))
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(top)
    return text.getvalue()


def run(options: Options, workdir: Path, console: Console, results: Path) -> Report:
    count = options.size(EVENTS)
    batch = events(count)
    rules = write_rules(workdir / "per_event-rules", {"bots.yaml": RULES})
    report = Report(NAME, details={"events": count, "repeat": options.repeat, "companies": COMPANIES})
    for synchronous, goal in GOALS.items():
        sb_db, raw_db = workdir / f"per_event-{synchronous}.db", workdir / f"per_event-{synchronous}-raw.db"
        runs: dict[str, list[dict[str, float]]] = {"salesbot": [], "raw": []}
        for rep in range(options.repeat):
            console.log(f"per_event {synchronous}: repetition {rep + 1}/{options.repeat}")
            for side, (total, latencies) in run_pair(
                rules, sb_db, raw_db, synchronous, batch, flip=rep % 2 == 1
            ).items():
                runs[side].append(
                    {
                        "seconds": total,
                        "events_per_s": count / total,
                        "p50_us": percentile(latencies, 50) * 1e6,
                        "p99_us": percentile(latencies, 99) * 1e6,
                    }
                )
            mine, theirs = snapshot(sb_db), snapshot(raw_db)
            problems = compare(mine, theirs)
            if problems:
                for problem in problems:
                    console.print(f"[bold red]warning:[/] per_event {synchronous}: {problem}")
                raise BenchmarkFailed(
                    f"synchronous={synchronous}: the baseline did not write the same rows: "
                    + "; ".join(problems)
                )
            report.details[f"rows_{synchronous}"] = {table: n for table, (n, _) in mine.items()}
        report.details[f"runs_{synchronous}"] = runs
        mid = {side: {key: median([r[key] for r in rs]) for key in rs[0]} for side, rs in runs.items()}
        case = f"synchronous={synchronous}"
        report.rows += [
            Row(
                case,
                "throughput",
                "events/s",
                mid["salesbot"]["events_per_s"],
                mid["raw"]["events_per_s"],
                "raw sqlite3",
                kind="rate",
                goal=goal,
                goal_text=f"ratio ≤ {goal}",
            ),
            Row(case, "p50 latency", "µs", mid["salesbot"]["p50_us"], mid["raw"]["p50_us"], "raw sqlite3"),
            Row(case, "p99 latency", "µs", mid["salesbot"]["p99_us"], mid["raw"]["p99_us"], "raw sqlite3"),
        ]
        for db in (sb_db, raw_db):
            remove_db(db)
    if options.profile:
        for synchronous in GOALS:
            out = results / f"per_event-{synchronous}.prof"
            console.log(f"per_event {synchronous}: profiling the salesbot side (cProfile)")
            text = profile(rules, workdir / "per_event-profile.db", synchronous, batch, out)
            report.details[f"profile_{synchronous}"] = text
            console.print(f"[bold]cProfile, synchronous={synchronous}, top 10 by cumulative time[/] ({out})")
            console.print(text, markup=False, highlight=False)
        remove_db(workdir / "per_event-profile.db")
    return report
