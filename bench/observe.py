"""What the benchmarks compare and count: the observable results of each side, and the
statements and WAL pages it spends per event.

The equality check compares what a user of salesbot can observe, not tables: each
record's owners, tags and link (``Engine.record``), its wall, the outbox, the rotation
(the last user picked: what the next pick needs), ``explain`` in words for every record,
and the answer to a redelivered event. The baselines store these their own way.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from salesbot_core import Engine, Outcome

from .raw_result import ResultRouter

#: A side's observable results: ``(what, key) -> value``.
Observed = dict[tuple[str, str], Any]


def observe_engine(
    engine: Engine,
    bot: str,
    deals: Iterable[str],
    companies: Iterable[str],
    redeliver: tuple[str, Callable[[Engine], Outcome]],
) -> Observed:
    """What salesbot (or a baseline writing salesbot's own tables) lets a user see;
    ``redeliver`` is an event id and how to deliver that event again."""
    seen: Observed = {}
    account = "default"
    for entity, ids in (("deal", deals), ("company", companies)):
        for record_id in ids:
            record = engine.record(account, entity, record_id)  # type: ignore[arg-type]
            assert record is not None, f"{entity} {record_id} is missing"
            link = {"company": record.company} if entity == "deal" else {}  # type: ignore[union-attr]
            seen["record", f"{entity}/{record_id}"] = {
                "owners": record.owners,
                "tags": sorted(record.tags),
                **link,
            }
            seen["wall", f"{entity}/{record_id}"] = [n.text for n in engine.wall(account, entity, record_id)]  # type: ignore[arg-type]
            seen["explain", f"{entity}/{record_id}"] = [
                o.explain() for o in engine.explain(account, entity, record_id)
            ]
    outbox: list[tuple[str, str, str, str]] = []
    after = 0
    while page := engine.outbox(account, limit=10_000, after=after):
        outbox += [(n.user, n.text, n.entity, n.record_id) for n in page]
        after = page[-1].id
    seen["outbox", ""] = outbox
    with engine.store.dry_run() as tx:
        seen["rotation", bot] = tx.get_state(account, bot).get("last")
    event_id, again = redeliver
    seen["redelivery", event_id] = again(engine).explain()
    return seen


def observe_result(
    router: ResultRouter, deals: Iterable[str], companies: Iterable[str], redeliver: dict[str, Any]
) -> Observed:
    """What the result-defined baseline lets a user see, in the same shape."""
    seen: Observed = {}
    account = "default"
    for entity, ids in (("deal", deals), ("company", companies)):
        for record_id in ids:
            seen["record", f"{entity}/{record_id}"] = router.record(account, entity, record_id)
            seen["wall", f"{entity}/{record_id}"] = router.wall(account, entity, record_id)
            seen["explain", f"{entity}/{record_id}"] = router.explain(account, entity, record_id)
    seen["outbox", ""] = router.outbox()
    seen["rotation", router.bot.id] = router.rotation(account)
    answer = router.handle(redeliver)
    assert answer is not None, f"the baseline processed {redeliver['id']} again"
    seen["redelivery", redeliver["id"]] = router.words(answer, redelivered=True)
    return seen


def differences(salesbot: Observed, baseline: Observed, label: str, limit: int = 3) -> list[str]:
    """What the baseline shows otherwise than salesbot, a few lines (empty: the same)."""
    problems = []
    for key in sorted(salesbot.keys() | baseline.keys()):
        mine, theirs = salesbot.get(key), baseline.get(key)
        if mine != theirs:
            # Lists (of lines, of explain answers): the first item that differs, in full.
            while isinstance(mine, list) and isinstance(theirs, list) and len(mine) == len(theirs):
                mine, theirs = next((m, t) for m, t in zip(mine, theirs, strict=True) if m != t)
            problems.append(f"{label}: {key[0]} {key[1]}: salesbot {mine!r}, baseline {theirs!r}"[:600])
            if len(problems) >= limit:
                break
    return problems


def sample(ids: Sequence[str], at_most: int) -> list[str]:
    """Up to ``at_most`` of ``ids``, evenly spread (the whole list when it is short)."""
    step = max(1, -(-len(ids) // at_most))
    return list(ids[::step])


def sqlite_connection(obj: object) -> sqlite3.Connection:
    """The ``sqlite3`` connection a store object holds (the bench meters it)."""
    for value in vars(obj).values():
        if isinstance(value, sqlite3.Connection):
            return value
    raise TypeError(f"{type(obj).__name__} holds no sqlite3 connection")


@dataclass
class Cost:
    """Statements and WAL pages per event, measured on one side, in all and by table."""

    statements: float
    wal_pages: float
    #: Statements per event by the table each names first (``INSERT INTO x``, ``FROM x``).
    statements_by_table: dict[str, float] = field(default_factory=dict)
    #: WAL pages per event by the b-tree each page belongs to now (a table or an index,
    #: SQLite's ``dbstat``); ``(free)`` for pages on the free list or past the end.
    pages_by_tree: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "statements": self.statements,
            "wal_pages": self.wal_pages,
            "statements_by_table": self.statements_by_table,
            "pages_by_tree": self.pages_by_tree,
        }


#: The table a statement names first: what it writes, or what it reads from.
_TABLE = re.compile(r"\b(?:INTO|UPDATE|FROM)\s+\"?(\w+)", re.IGNORECASE)
#: A WAL file: a 32-byte header, then frames of a 24-byte header (the page number first,
#: 4 bytes big-endian) and one page.
WAL_HEADER, FRAME_HEADER = 32, 24


def statement_table(sql: str) -> str:
    """The table a statement is counted under: the first it names, else its first word
    (``BEGIN``, ``COMMIT``, ``SAVEPOINT``)."""
    found = _TABLE.search(sql)
    return found.group(1) if found else (sql.split() or ["(empty)"])[0].upper()


def _per_event(counts: Counter[str], events: int) -> dict[str, float]:
    return {name: n / events for name, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))}


def wal_pages_by_tree(conn: sqlite3.Connection, wal: str, start: int, page_size: int) -> Counter[str]:
    """The frames of the WAL file from byte ``start`` on, counted by the b-tree (table or
    index) their page belongs to as the database stands now."""
    if not os.path.exists(wal):
        return Counter()
    with open(wal, "rb") as file:
        file.seek(start)
        data = file.read()
    size = FRAME_HEADER + page_size
    pages = [int.from_bytes(data[at : at + 4], "big") for at in range(0, len(data) - size + 1, size)]
    owner = dict(conn.execute("SELECT pageno, name FROM dbstat").fetchall())
    return Counter(owner.get(page, "(free)") for page in pages)


def meter(conn: sqlite3.Connection, path: str, run: Callable[[], Any], events: int) -> Cost:
    """Run ``run`` (``events`` events) on ``conn`` and count the statements it executes
    (each row of an ``executemany`` is one) and the pages it appends to the WAL, in all
    and by table.

    Checkpoints are held off meanwhile, so the WAL only grows: each frame is one page
    written by a commit."""
    statements: Counter[str] = Counter()

    def count(sql: str) -> None:
        statements[statement_table(sql)] += 1

    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    wal = f"{path}-wal"
    before = os.path.getsize(wal) if os.path.exists(wal) else 0
    conn.set_trace_callback(count)
    try:
        run()
    finally:
        conn.set_trace_callback(None)
    start = max(before, WAL_HEADER)
    try:
        trees = wal_pages_by_tree(conn, wal, start, page_size)
    finally:
        conn.execute("PRAGMA wal_autocheckpoint = 1000")
    return Cost(
        sum(statements.values()) / events,
        sum(trees.values()) / events,
        _per_event(statements, events),
        _per_event(trees, events),
    )
