"""``memory``: does one long-lived engine hold on to memory? 1,000,000 events through it.

The events are varied: two accounts, five bots (deals, persons, tasks; round robin and
weighted round robin; one with a ``trigger.where`` condition, so durable-rules sees every
tenth event), created and updated records among 500,000 ids, some events that no bot
fires on. No event id repeats. The store is a SQLite file with ``synchronous=OFF`` to keep
the run fast. RSS (``VmRSS``) is read after the first tenth of the run (the baseline: by
then every code path and cache is warm) and at the end, so the growth is measured over
nine tenths of the run at any size; the goal is a growth of at most 20 MB over 1,000,000
events. The run happens in a fresh interpreter, so nothing earlier benchmarks allocated is
counted or reused.

The suite's run handles 50,000 events (a minute or two): a leak of 400 bytes an event
shows there as 18 MB. The goal's own figure is ``--only memory --events 1000000`` (about
25 minutes on 2 shared cores); progress is printed as it goes.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .common import (
    Options,
    Report,
    Row,
    console_for_child,
    in_child,
    peak_rss_mb,
    remove_db,
    rss_mb,
    sqlite_url,
    write_rules,
)

NAME = "memory"
TITLE = "RSS of one engine over a long run"
EVENTS = 50_000
QUICK_EVENTS = 5_000
#: RSS after this fraction of the run is the baseline.
WARM_FRACTION = 0.1
GOAL_MB = 20.0
#: The run the goal is set for.
GOAL_EVENTS = 1_000_000

RULES = {
    "default.yaml": """\
        account: default
        users:
          - {id: anna, name: Anna Nowak, email: anna@example.com}
          - {id: bartek, name: Bartek Wiśniewski}
          - {id: celina, name: Celina Zając}
          - {id: dorota, name: Dorota Wójcik}
          - {id: emil, name: Emil Kaczmarek}
          - {id: jan, name: Jan Kowalski}
        bots:
          - id: inbound
            name: Inbound leads
            entity: deal
            users: [anna, bartek, celina]
            trigger: {processes: [Sales]}
            actions:
              related: {company: true}
              tag: inbound-bot
              note: "Assigned by {bot.name} to {owner.name}"
              notify: "New deal {record.title} ({record.value:,.0f} PLN)"
          - id: enterprise
            name: Enterprise deals
            entity: deal
            users: [jan, anna, dorota]
            strategy: weighted_round_robin
            options: {weights: {jan: 3, anna: 2}}
            trigger: {where: {$gte: {value: 50000}}}
            actions: {tag: enterprise, note: "Big one for {owner.name}"}
          - id: people
            name: People
            entity: person
            users: [dorota, emil]
            actions: {related: {company: true}, note: "Contact assigned to {owner.name}"}
          - id: tasks
            name: Tasks
            entity: task
            users: [anna, bartek, celina, dorota, emil]
            actions: {notify: "Task {record.title} is yours"}
        """,
    "acme.yaml": """\
        account: acme
        users:
          - {id: ola, name: Ola}
          - {id: piotr, name: Piotr}
          - {id: rafal, name: Rafał}
        bots:
          - id: acme-deals
            name: Acme deals
            entity: deal
            users: [ola, piotr, rafal]
            actions: {related: {persons: true, company: true}, tag: acme, note: "To {owner.name}"}
        """,
}


def events(count: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """``count`` distinct, varied events, generated as they are consumed."""
    rng = random.Random(seed)
    for n in range(count):
        roll = rng.random()
        kind = "created" if rng.random() < 0.6 else "updated"
        account = "default"
        if roll < 0.45:
            value = rng.randrange(100, 40_000)
            record: dict[str, Any] = {
                "entity": "deal",
                "id": f"d{rng.randrange(200_000)}",
                "title": f"Deal {n}",
                "process": "Sales" if rng.random() < 0.95 else "Partners",
                "value": value,
                "company": f"c{rng.randrange(20_000)}",
                "owners": ["bot:inbound"],
            }
        elif roll < 0.55:
            record = {
                "entity": "deal",
                "id": f"d{rng.randrange(200_000)}",
                "title": f"Deal {n}",
                "value": rng.randrange(10_000, 100_000),
                "owners": ["bot:enterprise"],
                "fields": {"source": rng.choice(["web", "phone", "partner"])},
            }
        elif roll < 0.75:
            record = {
                "entity": "person",
                "id": f"p{rng.randrange(150_000)}",
                "name": f"Person {n}",
                "company": f"c{rng.randrange(20_000)}",
                "owners": ["bot:people"],
            }
        elif roll < 0.85:
            record = {
                "entity": "task",
                "id": f"t{rng.randrange(100_000)}",
                "title": f"Call {n}",
                "owners": ["bot:tasks"],
            }
        elif roll < 0.95:
            account = "acme"
            record = {
                "entity": "deal",
                "id": f"a{rng.randrange(50_000)}",
                "title": f"Acme {n}",
                "persons": [f"ap{rng.randrange(30_000)}"],
                "company": f"ac{rng.randrange(5_000)}",
                "owners": ["bot:acme-deals"],
            }
        else:  # a user set as owner by hand: no bot fires
            record = {
                "entity": "deal",
                "id": f"d{rng.randrange(200_000)}",
                "title": f"Deal {n}",
                "owners": [rng.choice(["anna", "jan"])],
            }
        yield {"id": f"m{n}", "kind": kind, "account": account, "record": record}


def measure(folder: str, db: str, count: int, warm: int) -> dict[str, Any]:
    """In a fresh interpreter: handle ``count`` events on one engine, sampling RSS."""
    from salesbot_core import Engine

    console = console_for_child()
    remove_db(Path(db))
    every = max(1, count // 20)
    samples: list[tuple[int, float]] = []
    statuses: dict[str, int] = {}
    engine = Engine(folder, sqlite_url(Path(db), "OFF"), autoload=False)
    start = time.perf_counter()
    progress = Progress(
        TextColumn("memory"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    try:
        with progress:
            task = progress.add_task("events", total=count, rss="")
            for n, event in enumerate(events(count), start=1):
                outcome = engine.handle(event)
                for decision in outcome.decisions:
                    statuses[decision.status] = statuses.get(decision.status, 0) + 1
                if n == warm or n % every == 0 or n == count:
                    gc.collect()
                    samples.append((n, rss_mb()))
                    progress.update(task, completed=n, rss=f"RSS {samples[-1][1]:.1f} MB")
                    if not console.is_terminal:
                        elapsed = time.perf_counter() - start
                        console.print(
                            f"memory: {n:,}/{count:,} events, RSS {samples[-1][1]:.1f} MB, "
                            f"{elapsed:,.0f} s, {n / elapsed:,.0f} events/s"
                        )
                elif n % 1_000 == 0:
                    progress.update(task, completed=n)
    finally:
        engine.close()
        size = sum(
            Path(f"{db}{suffix}").stat().st_size for suffix in ("", "-wal") if Path(f"{db}{suffix}").exists()
        )
        remove_db(Path(db))
    seconds = time.perf_counter() - start
    at_warm = next(mb for n, mb in samples if n >= warm)
    return {
        "events": count,
        "warm": warm,
        "rss_warm_mb": at_warm,
        "rss_end_mb": samples[-1][1],
        "peak_rss_mb": peak_rss_mb(),
        "samples": samples,
        "seconds": seconds,
        "events_per_s": count / seconds,
        "decisions": statuses,
        "db_mb": size / 2**20,
    }


def run(options: Options, workdir: Path, console: Console, results: Path) -> Report:
    count = options.size(EVENTS, QUICK_EVENTS)
    warm = max(1, round(count * WARM_FRACTION))
    folder = write_rules(workdir / "memory-rules", RULES)
    console.log(
        f"memory: {count:,} events through one engine (RSS baseline after {warm:,}); this takes a while"
    )
    # One run: a long run's RSS is not the noisy figure timings are, and it takes long.
    figures = in_child(measure, str(folder), str(workdir / "memory.db"), count, warm)
    growth = figures["rss_end_mb"] - figures["rss_warm_mb"]
    per_event = growth * 2**20 / max(1, count - warm)
    report = Report(
        NAME, details={**figures, "growth_mb": growth, "growth_bytes_per_event": per_event, "repeat": 1}
    )
    report.rows += [
        Row(
            f"{count:,} events",
            "RSS at the end",
            "MB",
            figures["rss_end_mb"],
            figures["rss_warm_mb"],
            f"after {warm:,} events",
            goal=GOAL_MB,
            goal_on="growth",
            goal_text=f"growth ≤ {GOAL_MB:g} MB at {GOAL_EVENTS:,} (was {growth:+.1f})",
        ),
        Row(f"{count:,} events", "throughput (synchronous=OFF)", "events/s", figures["events_per_s"]),
    ]
    return report
