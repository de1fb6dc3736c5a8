"""``postgres_workers``: throughput of 1 and 4 worker processes sharing one PostgreSQL.

HOOK FOR THE POSTGRESQL STORE. This benchmark runs only with ``--pg postgresql://...``;
without it, it is skipped with the reason printed. It uses nothing but the public
interface: the store is chosen by passing the URL as ``Engine``'s store argument, and if
no store plugin handles ``postgresql://`` URLs the benchmark is skipped with that reason.

Each worker is a ``multiprocessing`` process (spawned) building its own
``Engine(rulesets, url)``; after a warm-up of a few events of its own, all workers start
together (a barrier) and each handles its share of distinct events: deals created with
one of eight round-robin bots (four accounts, two bots each) as owner, so workers contend
on the rotation state as real ones do. The figure is events/s over the whole run, from the
first worker's start to the last worker's end; the baseline is the 1-worker figure.
Every run uses fresh account names (a random token), so the database given need not be
empty and runs never see each other's rows; use a scratch database all the same.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console

from .common import Options, Report, Row, median, write_rules

NAME = "postgres_workers"
TITLE = "worker processes against one PostgreSQL"
EVENTS = 2_000
WORKERS = (1, 4)
ACCOUNTS = 4
WARM_UP = 5


def rules(token: str) -> dict[str, str]:
    files = {}
    for k in range(ACCOUNTS):
        files[f"a{k}.yaml"] = f"""\
            account: pb{token}a{k}
            users:
              - {{id: anna, name: Anna Nowak}}
              - {{id: bartek, name: Bartek Wiśniewski}}
              - {{id: celina, name: Celina Zając}}
            bots:
              - id: inbound
                name: Inbound leads
                users: [anna, bartek, celina]
                actions:
                  related: {{company: true}}
                  tag: inbound-bot
                  note: "Assigned by {{bot.name}} to {{owner.name}}"
                  notify: "New deal {{record.title}}"
              - id: partners
                name: Partners
                users: [celina, anna]
                actions: {{tag: partner-bot, note: "Assigned to {{owner.name}}"}}
            """
    return files


def event(token: str, label: str, n: int) -> dict[str, Any]:
    bot = "inbound" if n % 2 == 0 else "partners"
    return {
        "id": f"{token}-{label}-{n}",
        "kind": "created",
        "account": f"pb{token}a{n % (2 * ACCOUNTS) // 2}",
        "record": {
            "entity": "deal",
            "id": f"{label}-{n}",
            "title": f"Deal {n}",
            "value": 1000 + n,
            "company": f"c{n % 100}",
            "owners": [f"bot:{bot}"],
        },
    }


def worker(
    folder: str, url: str, token: str, index: int, numbers: list[int], barrier: Any, results: Any
) -> None:
    """One worker process: its own engine, a warm-up, then its share of the events."""
    from salesbot_core import Engine

    try:
        with Engine(folder, url, autoload=False) as engine:
            for n in range(WARM_UP):
                engine.handle(event(token, f"warm{index}", n))
            batch = [event(token, "e", n) for n in numbers]
            barrier.wait()
            start = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
            for item in batch:
                engine.handle(item)
            results.put((index, start, time.perf_counter(), len(batch), None))
    except Exception as exc:
        barrier.abort()
        results.put((index, 0.0, 0.0, 0, f"{type(exc).__name__}: {exc}"))


def throughput(folder: Path, url: str, token: str, workers: int, count: int) -> float:
    """Events/s of ``workers`` processes handling ``count`` distinct events together."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [
        ctx.Process(
            target=worker,
            args=(str(folder), url, token, i, list(range(i, count, workers)), barrier, results),
        )
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    reports = [results.get(timeout=3_600) for _ in procs]
    for proc in procs:
        proc.join()
    errors = [error for *_, error in reports if error]
    if errors:
        raise RuntimeError("; ".join(errors))
    start = min(r[1] for r in reports)
    end = max(r[2] for r in reports)
    return sum(r[3] for r in reports) / (end - start)


def run(options: Options, workdir: Path, console: Console, results: Path) -> Report:
    if not options.pg or not options.pg.startswith(("postgresql://", "postgres://")):
        return Report(NAME, status="skipped", reason="no PostgreSQL URL: pass --pg postgresql://user@host/db")
    from salesbot_core import Engine, StoreError

    (workdir / "empty-pg").mkdir(exist_ok=True)
    try:  # the store plugin may not exist yet: skip with its message, not a traceback
        Engine(workdir / "empty-pg", options.pg, autoload=False).close()
    except StoreError as exc:
        return Report(NAME, status="skipped", reason=f"the PostgreSQL store is not usable: {exc}")
    count = options.size(EVENTS)
    report = Report(NAME, details={"events": count, "repeat": options.repeat, "url": _safe(options.pg)})
    figures: dict[int, float] = {}
    for workers in WORKERS:
        runs = []
        for rep in range(options.repeat):
            token = uuid.uuid4().hex[:10]
            folder = write_rules(workdir / f"pg-{token}", rules(token))
            console.log(f"postgres_workers: {workers} worker(s), repetition {rep + 1}/{options.repeat}")
            runs.append(throughput(folder, options.pg, token, workers, count))
        figures[workers] = median(runs)
        report.details[f"runs_{workers}"] = runs
    base = figures[WORKERS[0]]
    for workers in WORKERS:
        report.rows.append(
            Row(
                f"{workers} worker" + ("s" if workers > 1 else ""),
                "throughput",
                "events/s",
                figures[workers],
                base if workers != WORKERS[0] else None,
                f"{WORKERS[0]} worker",
                kind="rate",
            )
        )
    report.details["speedup"] = figures[WORKERS[-1]] / base
    return report


def _safe(url: str) -> str:
    """The URL without its password."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if at and ":" in credentials:
        return f"{scheme}{sep}{credentials.split(':')[0]}:***@{host}"
    return url
