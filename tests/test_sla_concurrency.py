"""``salesbot tick`` from many processes at once, and killed midway: each due item is
handled exactly once, on SQLite (the write lock) and PostgreSQL (``SKIP LOCKED``)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from store_queries import rows
from test_reliability import kill_after
from test_sla import DEFAULT_SLA, T0, TEAM, created, sla_bot

from salesbot_core import Engine

ITEMS = 1_000
#: Three hours after the assignments: every 2 h deadline has passed, no new one has.
NOW = "2026-03-02T12:00:00Z"
#: The event ids of hand-ons (a LIKE pattern, passed as a parameter: psycopg reads % itself).
HANDED = "list/due/%"


def tick(rules: Path, db: str, batch: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "salesbot_core",
            "tick",
            "-r",
            str(rules),
            "--db",
            db,
            "--now",
            NOW,
            "--batch",
            str(batch),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def due_everywhere(write_rules: Callable[..., Path], db: str) -> Path:
    """1,000 deals assigned at T0 with a 2 h SLA: 1,000 due items."""
    rules = write_rules(**{"team.yaml": TEAM, "inbound.yaml": sla_bot(DEFAULT_SLA)})
    with Engine(rules, db) as engine:
        engine.handle_many([created(n, at=T0) for n in range(ITEMS)], batch_size=500)
        assert len(engine.store.due_items("default")) == ITEMS
    return rules


def check_each_handled_once(db: str) -> None:
    """One reassignment per record, to someone other than its first owner, with one wall
    note; every record has a new due item (its second clock) and none is left due."""
    assert rows(
        db, "SELECT COUNT(*), COUNT(DISTINCT record_id) FROM outcomes WHERE event_id LIKE ?", (HANDED,)
    ) == [(ITEMS, ITEMS)]
    assert rows(db, "SELECT COUNT(*), COUNT(DISTINCT record_id) FROM notes") == [(ITEMS, ITEMS)]
    assert rows(db, "SELECT reassignments, COUNT(*) FROM due_items GROUP BY reassignments") == [(1, ITEMS)]
    assert rows(db, "SELECT COUNT(*) FROM due_items WHERE due_at <= ?", ("2026-03-02T12:00:00.000000Z",)) == [
        (0,)
    ]
    # Nobody got back the record taken from them: the first owner is never the second.
    firsts = dict(
        rows(
            db,
            'SELECT record_id, "user" FROM assignments a JOIN outcomes o ON o.seq = a.seq '
            "WHERE o.event_id NOT LIKE ?",
            (HANDED,),
        )
    )
    seconds = dict(
        rows(
            db,
            'SELECT record_id, "user" FROM assignments a JOIN outcomes o ON o.seq = a.seq '
            "WHERE o.event_id LIKE ?",
            (HANDED,),
        )
    )
    assert len(firsts) == len(seconds) == ITEMS
    assert all(firsts[r] != seconds[r] for r in firsts)


@pytest.mark.slow
def test_four_processes_ticking_at_once_handle_each_item_once(
    write_rules: Callable[..., Path], store_url: str
) -> None:
    rules = due_everywhere(write_rules, store_url)
    workers = [tick(rules, store_url, batch=25) for _ in range(4)]
    for worker in workers:
        assert worker.wait(timeout=300) == 0, worker.stderr.read().decode() if worker.stderr else ""
    check_each_handled_once(store_url)


@pytest.mark.slow
def test_a_tick_killed_midway_then_run_again_handles_each_item_once(
    write_rules: Callable[..., Path], store_url: str
) -> None:
    rules = due_everywhere(write_rules, store_url)
    worker = tick(rules, store_url, batch=10)
    kill_after(worker, store_url, ITEMS + 300)  # 1,000 first assignments, then 300 hand-ons
    done = rows(store_url, "SELECT COUNT(*) FROM outcomes WHERE event_id LIKE ?", (HANDED,))[0][0]
    assert 300 <= done < ITEMS
    again = tick(rules, store_url, batch=10)
    assert again.wait(timeout=300) == 0
    check_each_handled_once(store_url)
