"""``list_operation``: a bulk "set owner" from a list view over 100,000 stored deals.

The deals (each linked to one of 2,000 companies) are stored first, untimed: through the
SQLite store's own ``put_record`` for salesbot and the same-statements baseline, in its
own tables for the result-defined baseline. Then ``Engine.assign_list(...,
batch_size=1000)`` sets a 5-user round-robin bot as their owner: each deal gets its own
pick, its company follows, both are tagged and get a wall note, and the new owner a
notification. The baselines do the same with raw sqlite3 (``bench.raw_result``, the
goal's baseline, and ``bench.raw_sqlite``): each checks every id exists, then handles
1,000 deals per transaction. The observable results of the three sides are compared
afterwards (a sample of the records, the whole outbox, the rotation, a repeated
operation's answer).

The 100,000 deals are assigned once per side, not ``--repeat`` times (one pass of the
three sides takes minutes): the operation runs in ``SLICES`` slices of the list, each side
in turn on each slice (the first side changing from slice to slice), so a slow spell of the
shared machine falls on every side alike. The figure is the median slice's time, times the
number of slices: what the whole list costs, robust to one slice caught by a burst of load.
Each slice is a list operation of its own over its part of the ids, under the same
operation id, so the deals' event ids, rotation and audit are the ones of a single pass.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

from rich.console import Console

from salesbot_core import Engine
from salesbot_core.models import Company, Deal, list_event_id, stored_json
from salesbot_plugins.sqlite_store import SQLiteStore

from . import raw_result, raw_sqlite
from .common import (
    BenchmarkFailed,
    Options,
    Report,
    Row,
    median,
    profiled,
    remove_db,
    split_text,
    sqlite_url,
    write_rules,
)
from .observe import differences, observe_engine, observe_result, sample
from .raw_sqlite import RawBot, RawRouter

NAME = "list_operation"
TITLE = "a list operation over stored deals (Engine.assign_list)"
DEALS = 100_000
#: A smoke run's list: 10 slices of 200.
QUICK_DEALS = 2_000
COMPANIES = 2_000
BATCH = 1_000
GOAL = 3.0
#: Deals the always-on profile of the salesbot side assigns (on a copy of the seeded store).
PROFILED = 2_000
#: The next step where the goal is missed (the profile printed in the same run says where).
NEXT_STEP = (
    "Next: decide a batch's records with one plan of the bot and one reading of its users' "
    "load, and write the batch's rows with one `executemany` per table in place of one "
    "statement per row"
)
#: The list is assigned in this many slices, the sides taking turns on each.
SLICES = 10
#: Records compared after the run: a sample of the deals and of the companies (each company
#: has 50 deals, so 50 decisions to explain in words).
SAMPLE_DEALS = 500
SAMPLE_COMPANIES = 20
SIDES = ("salesbot", "result", "same")
LABELS = {"result": "raw sqlite3, by result", "same": "raw sqlite3, same statements"}
#: The store's default: batches of 1,000 make the fsync per commit matter little.
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


def seed_result(path: Path, deals: int) -> None:
    """The same deals and companies in the result-defined baseline's own tables."""
    remove_db(path)
    conn = raw_result.connect(path, "OFF")
    try:
        raw_result.seed(
            conn,
            (
                {"id": f"d{n}", "title": f"Deal {n}", "process": "Sales", "value": 1000.0 + n,
                 "company": f"c{n % COMPANIES}", "owners": ["jan"]}
                for n in range(deals)
            ),
            ({"id": f"c{n}", "name": f"Company {n}", "owners": ["jan"]} for n in range(COMPANIES)),
        )  # fmt: skip
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def seed(path: Path, deals: int) -> list[str]:
    """Store ``deals`` deals owned by jan and their companies; return the deal ids."""
    remove_db(path)
    store = SQLiteStore(path, synchronous="OFF")
    ids = [f"d{n}" for n in range(deals)]
    try:
        with store.transaction() as tx:
            for n in range(COMPANIES):
                company = Company(id=f"c{n}", name=f"Company {n}", owners=["jan"])
                tx.put_record("default", company, stored_json(company))
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
                    tx.put_record("default", deal, stored_json(deal))
    finally:
        store.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return ids


def cpu_split(rules: Path, seeded: Path, db: Path, ids: list[str]) -> dict[str, float]:
    """Where the salesbot side's CPU goes, by area (``common.profiled``), on a copy of the
    seeded store (the timed store's deals are already assigned)."""
    remove_db(db)
    shutil.copyfile(seeded, db)
    try:
        with Engine(rules, sqlite_url(db, SYNCHRONOUS), autoload=False) as engine:
            _, split = profiled(lambda: run_salesbot(engine, ids))
    finally:
        remove_db(db)
    return split


def run_salesbot(engine: Engine, ids: list[str]) -> float:
    start = time.perf_counter()
    engine.assign_list("default", "deal", ids, "team", "op-1", batch_size=BATCH)
    return time.perf_counter() - start


def _list_event(record_id: str) -> dict[str, object]:
    return {
        "id": list_event_id("op-1", "deal", record_id),
        "kind": "list",
        "record": {"id": record_id, "owners": ["bot:team"]},
    }


class RawSide:
    """A baseline's list operation on its own store file."""

    def __init__(self, side: str, db: Path):
        self.table = "deals" if side == "result" else "records"
        self.entity = "" if side == "result" else "AND entity = 'deal' "
        self.conn = (raw_result if side == "result" else raw_sqlite).connect(db, SYNCHRONOUS)
        self.router = (
            raw_result.ResultRouter(self.conn, RAW_BOT) if side == "result" else RawRouter(self.conn, RAW_BOT)
        )

    def run(self, ids: list[str]) -> float:
        """Every id must exist before anything changes, then ``BATCH`` deals per transaction."""
        conn = self.conn
        start = time.perf_counter()
        for at in range(0, len(ids), BATCH):
            chunk = ids[at : at + BATCH]
            marks = ", ".join("?" * len(chunk))
            (found,) = conn.execute(
                f"SELECT COUNT(*) FROM {self.table} WHERE account = 'default' "
                f"{self.entity}AND id IN ({marks})",
                chunk,
            ).fetchone()
            if found != len(chunk):
                raise ValueError("unknown deal ids")
        for at in range(0, len(ids), BATCH):
            self.router.handle_batch(_list_event(record_id) for record_id in ids[at : at + BATCH])
        return time.perf_counter() - start


def check(rules: Path, dbs: dict[str, Path], ids: list[str]) -> list[str]:
    """What the baselines show otherwise than salesbot (empty: the same)."""
    deals = sample(ids, SAMPLE_DEALS)
    companies = sample([f"c{n}" for n in range(min(COMPANIES, len(ids)))], SAMPLE_COMPANIES)
    again = (
        list_event_id("op-1", "deal", ids[0]),
        lambda engine: engine.assign_list("default", "deal", ids[:1], "team", "op-1")[0],
    )
    seen = {}
    for side in ("salesbot", "same"):  # both in salesbot's tables: its store reads them
        with Engine(rules, sqlite_url(dbs[side], SYNCHRONOUS), autoload=False) as engine:
            seen[side] = observe_engine(engine, RAW_BOT.id, deals, companies, again)
    conn = raw_result.connect(dbs["result"], SYNCHRONOUS)
    try:
        result = observe_result(raw_result.ResultRouter(conn, RAW_BOT), deals, companies, _list_event(ids[0]))
    finally:
        conn.close()
    return differences(seen["salesbot"], result, LABELS["result"]) + differences(
        seen["salesbot"], seen["same"], LABELS["same"]
    )


def run(options: Options, workdir: Path, console: Console, results: Path) -> Report:
    count = options.size(DEALS, QUICK_DEALS)
    rules = write_rules(workdir / "list_operation-rules", {"bots.yaml": RULES})
    templates = {side: workdir / f"list_operation-seed-{side}.db" for side in ("salesbot", "result")}
    console.log(f"list_operation: storing {count:,} deals and {COMPANIES:,} companies (not timed)")
    ids = seed(templates["salesbot"], count)
    seed_result(templates["result"], count)
    report = Report(
        NAME,
        details={"deals": count, "companies": COMPANIES, "batch_size": BATCH, "synchronous": SYNCHRONOUS},
    )
    dbs = {side: workdir / f"list_operation-{side}.db" for side in SIDES}
    for side in SIDES:
        remove_db(dbs[side])
        shutil.copyfile(templates["result" if side == "result" else "salesbot"], dbs[side])
    size = -(-count // SLICES)
    slices = [ids[at : at + size] for at in range(0, count, size)]
    seconds: dict[str, list[float]] = {side: [] for side in SIDES}
    engine = Engine(rules, sqlite_url(dbs["salesbot"], SYNCHRONOUS), autoload=False)
    raws = {side: RawSide(side, dbs[side]) for side in SIDES[1:]}
    try:
        for i, part in enumerate(slices):
            console.log(f"list_operation: slice {i + 1}/{len(slices)} ({len(part):,} deals), each side")
            first = i % len(SIDES)
            for side in SIDES[first:] + SIDES[:first]:
                run = run_salesbot(engine, part) if side == "salesbot" else raws[side].run(part)
                seconds[side].append(run)
    finally:
        engine.close()
        for raw in raws.values():
            raw.conn.close()
    problems = check(rules, dbs, ids)
    if problems:
        for problem in problems:
            console.print(f"[bold red]warning:[/] list_operation: {problem}", markup=False)
        raise BenchmarkFailed("a baseline's observable results differ: " + "; ".join(problems))
    report.details["seconds"] = seconds
    report.details["slices"] = len(slices)
    # The median slice, scaled to the whole list (the last slice may be shorter: per deal).
    sb, result, same = (
        median([t / len(part) for t, part in zip(seconds[side], slices, strict=True)]) * count
        for side in SIDES
    )
    case = f"{count:,} deals, batches of {BATCH:,}"
    split = cpu_split(rules, templates["salesbot"], workdir / "list_operation-split.db", ids[:PROFILED])
    report.details["cpu_split"] = split
    report.rows += [
        Row(
            case,
            "time",
            "s",
            sb,
            result,
            LABELS["result"],
            goal=GOAL,
            goal_text=f"ratio ≤ {GOAL:g}",
            gap=f"{split_text(split)}. {NEXT_STEP}.",
        ),
        Row(case, "throughput", "assignments/s", count / sb, count / result, LABELS["result"], kind="rate"),
        Row(case, "time", "s", sb, same, LABELS["same"]),
    ]
    for db in (*dbs.values(), *templates.values()):
        remove_db(db)
    return report
