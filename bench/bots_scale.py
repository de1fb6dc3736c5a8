"""``bots_scale``: how load time and the cost of one event grow with the number of bots.

1, 100, 1,000 and 10,000 active bots in ruleset files, 100 bots per account (one file per
account, 10 users each), spread over the four entities; every tenth bot has a
``trigger.where`` condition, so 10,000 bots compile 1,000 durable-rules conditions in
several chunks. Load time is the ``Engine`` construction (read, validate and compile the
folder; open the store). The per-event cost is the median time of ``Engine.handle`` over
events that each hit a random bot, its condition met (SQLite, ``synchronous=OFF``, so
the disk does not drown the CPU cost). The baseline is the 1-bot figure. Each
size runs in a fresh interpreter, since durable-rules keeps C state and timer threads
for the life of a process. Loading 10,000 bots takes a minute or more here, so each size
is loaded once (one load time) and ``--repeat`` multiplies its events instead: the
per-event figure is the median over ``events × repeat`` events.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from .common import Options, Report, Row, in_child, median, remove_db, sqlite_url

NAME = "bots_scale"
TITLE = "load time and per-event cost against the number of bots"
SIZES = (1, 100, 1_000, 10_000)
QUICK_SIZES = (1, 5, 50, 500)
BOTS_PER_ACCOUNT = 100
USERS_PER_ACCOUNT = 10
EVENTS = 2_000
GOAL = 2.0
ENTITIES = ("deal", "person", "company", "task")


def bot_spec(j: int) -> dict[str, Any]:
    """Bot number ``j`` (global): its entity rotates, every tenth has a condition."""
    entity = ENTITIES[j % len(ENTITIES)]
    users = [f"u{(j + k) % USERS_PER_ACCOUNT}" for k in range(3)]
    spec: dict[str, Any] = {
        "id": f"b{j}",
        "name": f"Bot {j}",
        "entity": entity,
        "users": users,
        "strategy": "round_robin",
        "actions": {"tag": f"bot-{j % 100}", "note": "Assigned by {bot.name} to {owner.name}"},
    }
    if j % 10 == 9:
        field = "value" if entity == "deal" else "score"
        spec["trigger"] = {"where": {"$gte": {field: 1000 if entity == "deal" else 10}}}
    return spec


def write_folder(folder: Path, bots: int) -> Path:
    """A ruleset folder of ``bots`` bots, ``BOTS_PER_ACCOUNT`` per account and file."""
    folder.mkdir(parents=True, exist_ok=True)
    for account_no, first in enumerate(range(0, bots, BOTS_PER_ACCOUNT)):
        content = {
            "account": f"acct{account_no:04d}",
            "users": [{"id": f"u{k}", "name": f"User {k}"} for k in range(USERS_PER_ACCOUNT)],
            "bots": [bot_spec(j) for j in range(first, min(bots, first + BOTS_PER_ACCOUNT))],
        }
        (folder / f"acct{account_no:04d}.yaml").write_text(
            yaml.safe_dump(content, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
    return folder


def event_for(n: int, account: str, bot: Any) -> dict[str, Any]:
    """A new record of the bot's entity with the bot as owner, meeting its condition."""
    record: dict[str, Any] = {
        "entity": bot.entity,
        "id": f"r{n}",
        "owners": [f"bot:{bot.id}"],
        "fields": {"score": 50},
    }
    if bot.entity == "deal":
        record.update(title=f"Deal {n}", value=5000)
    elif bot.entity in ("person", "company"):
        record["name"] = f"Name {n}"
    else:
        record["title"] = f"Task {n}"
    return {"id": f"e{n}", "kind": "created", "account": account, "record": record}


def measure(folder: str, db: str, events: int, seed: int) -> dict[str, float]:
    """In a fresh interpreter: time the Engine construction, then ``events`` handles."""
    from salesbot_core import Engine

    remove_db(Path(db))
    Engine(Path(folder).parent / "empty", ":memory:", autoload=False).close()  # imports, plugins
    start = time.perf_counter()
    engine = Engine(folder, sqlite_url(Path(db), "OFF"), autoload=False)
    load = time.perf_counter() - start
    bots = list(engine.rules.bots.items())
    rng = random.Random(seed)
    batch = [event_for(n, account, bot) for n, ((account, _), bot) in enumerate(rng.choices(bots, k=events))]
    clock = time.perf_counter
    latencies = []
    try:
        for event in batch:
            t0 = clock()
            outcome = engine.handle(event)
            latencies.append(clock() - t0)
            if outcome.decisions[0].status != "assigned":
                raise AssertionError(f"bot did not assign: {outcome.decisions[0]}")
    finally:
        engine.close()
        remove_db(Path(db))
    return {"load_s": load, "per_event_us": median(latencies) * 1e6, "mean_us": sum(latencies) / events * 1e6}


def run(options: Options, workdir: Path, console: Console, results: Path) -> Report:
    sizes = options.bots or (QUICK_SIZES if options.quick else SIZES)
    events = options.size(EVENTS)
    (workdir / "empty").mkdir(exist_ok=True)
    report = Report(NAME, details={"sizes": list(sizes), "events": events, "repeat": options.repeat})
    figures: dict[int, dict[str, float]] = {}
    for size in sizes:
        folder = write_folder(workdir / f"bots-{size}", size)
        console.log(f"bots_scale: {size:,} bot(s), {events * options.repeat:,} events")
        db = str(workdir / f"bots-{size}.db")
        figures[size] = in_child(measure, str(folder), db, events * options.repeat, 0)
        report.details[f"runs_{size}"] = [figures[size]]
    base = figures[sizes[0]]
    label = f"{sizes[0]:,} bot" + ("s" if sizes[0] != 1 else "")
    for size in sizes:
        case = f"{size:,} bots" if size != 1 else "1 bot"
        report.rows.append(Row(case, "load time", "s", figures[size]["load_s"], base["load_s"], label))
    for size in sizes:
        case = f"{size:,} bots" if size != 1 else "1 bot"
        last = size == sizes[-1] and size != sizes[0]
        report.rows.append(
            Row(
                case,
                "per-event (median)",
                "µs",
                figures[size]["per_event_us"],
                base["per_event_us"],
                label,
                goal=GOAL if last else None,
                goal_text=f"ratio ≤ {GOAL:g}" if last else "",
            )
        )
    return report
