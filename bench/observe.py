"""What the benchmarks compare and count: the observable results of each side, and the
statements and WAL pages it spends per event.

The equality check compares what a user of salesbot can observe, not tables: each
record's owners, tags and link (``Engine.record``), its wall, the outbox, the rotation
(the last user picked: what the next pick needs), ``explain`` in words for every record,
and the answer to a redelivered event. The baselines store these their own way.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
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
    """Statements and WAL pages per event, measured on one side."""

    statements: float
    wal_pages: float

    def to_json(self) -> dict[str, float]:
        return {"statements": self.statements, "wal_pages": self.wal_pages}


def meter(conn: sqlite3.Connection, path: str, run: Callable[[], Any], events: int) -> Cost:
    """Run ``run`` (``events`` events) on ``conn`` and count the statements it executes
    (each row of an ``executemany`` is one) and the pages it appends to the WAL.

    Checkpoints are held off meanwhile, so the WAL only grows: each frame is one page
    written by a commit."""
    statements = 0

    def count(_sql: str) -> None:
        nonlocal statements
        statements += 1

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
        conn.execute("PRAGMA wal_autocheckpoint = 1000")
    after = os.path.getsize(wal)
    # A WAL file: a 32-byte header, then frames of a 24-byte header and one page.
    frames = (after - max(before, 32 if after else 0)) / (24 + page_size)
    return Cost(statements / events, frames / events)
