"""``list_operation``: a bulk "set owner" from a list view over 100,000 stored deals.

The deals (each linked to one of 2,000 companies) are stored first, untimed, through the
SQLite store's own ``put_record`` (the statements the engine writes a record with), so
the stored state is the engine's. Then ``Engine.assign_list(..., batch_size=500)`` sets a
5-user round-robin bot as their owner: each deal gets its own pick, its company follows,
both are tagged and get a wall note, and the new owner a notification. The baseline does
the same with raw sqlite3: it checks every id exists, then handles 500 deals per
transaction. Both stores are compared table by table afterwards.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

from rich.console import Console

from salesbot_core import Engine
from salesbot_core.models import Company, Deal, list_event_id
from salesbot_plugins.sqlite_store import SQLiteStore

from .common import BenchmarkFailed, Options, Report, Row, median, remove_db, sqlite_url, write_rules
from .raw_sqlite import RawBot, RawRouter, compare, connect, snapshot

NAME = "list_operation"
TITLE = "a list operation over stored deals (Engine.assign_list)"
DEALS = 100_000
COMPANIES = 2_000
BATCH = 500
GOAL = 3.0
#: The store's default: batches of 500 make the fsync per commit matter little.
SYNCHRONOUS = "FULL"

USERS = [
    ("anna", "Anna Nowak"),
    ("bartek", "Bartek Wiśniewski"),
    ("celina", "Celina Zając"),
    ("dorota", "Dorota Wójcik"),
    ("emil", "Emil Kaczmarek"),
]
RULES = """\
account: default
users:
  - {id: anna, name: Anna Nowak}
  - {id: bartek, name: Bartek Wiśniewski}
  - {id: celina, name: Celina Zając}
  - {id: dorota, name: Dorota Wójcik}
  - {id: emil, name: Emil Kaczmarek}
  - {id: jan, name: Jan Kowalski}
bots:
  - id: team
    name: Team rotation
    entity: deal
    users: [anna, bartek, celina, dorota, emil]
    strategy: round_robin
    trigger: {events: [list], processes: [Sales]}
    actions:
      related: {company: true}
      tag: team-bot
      note: "Assigned by {bot.name} to {owner.name}"
      notify: "New deal {record.title}"
"""
RAW_BOT = RawBot(id="team", name="Team rotation", users=USERS, tag="team-bot", events=("list",))


def seed(path: Path, deals: int) -> list[str]:
    """Store ``deals`` deals owned by jan and their companies; return the deal ids."""
    remove_db(path)
    store = SQLiteStore(path, synchronous="OFF")
    ids = [f"d{n}" for n in range(deals)]
    try:
        with store.transaction() as tx:
            for n in range(COMPANIES):
                tx.put_record(
                    "default",
                    Company(id=f"c{n}", name=f"Company {n}", owners=["jan"]).model_dump(mode="json"),
                )
        for start in range(0, deals, 5_000):
            with store.transaction() as tx:
                for n in range(start, min(deals, start + 5_000)):
                    deal = Deal(
                        id=ids[n],
                        title=f"Deal {n}",
                        process="Sales",
                        value=1000 + n,
                        company=f"c{n % COMPANIES}",
                        owners=["jan"],
                    )
                    tx.put_record("default", deal.model_dump(mode="json"))
    finally:
        store.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return ids


def run_salesbot(rules: Path, db: Path, ids: list[str]) -> float:
    with Engine(rules, sqlite_url(db, SYNCHRONOUS), autoload=False) as engine:
        start = time.perf_counter()
        engine.assign_list("default", "deal", ids, "team", "op-1", batch_size=BATCH)
        return time.perf_counter() - start


def run_raw(db: Path, ids: list[str]) -> float:
    conn = connect(db, SYNCHRONOUS)
    router = RawRouter(conn, RAW_BOT)
    try:
        start = time.perf_counter()
        # Like assign_list: every id must exist before anything changes.
        for at in range(0, len(ids), BATCH):
            chunk = ids[at : at + BATCH]
            marks = ", ".join("?" * len(chunk))
            (found,) = conn.execute(
                "SELECT COUNT(*) FROM records WHERE account = 'default' AND entity = 'deal' "
                f"AND id IN ({marks})",
                chunk,
            ).fetchone()
            if found != len(chunk):
                raise ValueError("unknown deal ids")
        for at in range(0, len(ids), BATCH):
            router.handle_batch(
                {
                    "id": list_event_id("op-1", "deal", record_id),
                    "kind": "list",
                    "record": {"id": record_id, "owners": ["bot:team"]},
                }
                for record_id in ids[at : at + BATCH]
            )
        return time.perf_counter() - start
    finally:
        conn.close()


def run(options: Options, workdir: Path, console: Console, results: Path) -> Report:
    count = options.size(DEALS)
    rules = write_rules(workdir / "list_operation-rules", {"bots.yaml": RULES})
    template = workdir / "list_operation-seed.db"
    console.log(f"list_operation: storing {count:,} deals and {COMPANIES:,} companies (not timed)")
    ids = seed(template, count)
    report = Report(
        NAME,
        details={"deals": count, "companies": COMPANIES, "batch_size": BATCH, "synchronous": SYNCHRONOUS},
    )
    sb_db, raw_db = workdir / "list_operation.db", workdir / "list_operation-raw.db"
    seconds: dict[str, list[float]] = {"salesbot": [], "raw": []}
    for rep in range(options.repeat):
        order = ["salesbot", "raw"] if rep % 2 == 0 else ["raw", "salesbot"]
        for side in order:
            console.log(f"list_operation: repetition {rep + 1}/{options.repeat}, {side}")
            db = sb_db if side == "salesbot" else raw_db
            remove_db(db)
            shutil.copyfile(template, db)
            seconds[side].append(run_salesbot(rules, db, ids) if side == "salesbot" else run_raw(db, ids))
        mine, theirs = snapshot(sb_db), snapshot(raw_db)
        problems = compare(mine, theirs)
        if problems:
            for problem in problems:
                console.print(f"[bold red]warning:[/] list_operation: {problem}")
            raise BenchmarkFailed("the baseline did not write the same rows: " + "; ".join(problems))
        report.details["rows"] = {table: n for table, (n, _) in mine.items()}
    report.details["seconds"] = seconds
    sb, raw = median(seconds["salesbot"]), median(seconds["raw"])
    case = f"{count:,} deals, batches of {BATCH}"
    report.rows += [
        Row(case, "time", "s", sb, raw, "raw sqlite3", goal=GOAL, goal_text=f"ratio ≤ {GOAL:g}"),
        Row(case, "throughput", "assignments/s", count / sb, count / raw, "raw sqlite3", kind="rate"),
    ]
    for db in (sb_db, raw_db, template):
        remove_db(db)
    return report
