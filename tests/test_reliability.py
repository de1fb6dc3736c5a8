"""Exactly once, crash-safe, concurrent: proved with real processes on a real SQLite file."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from store_queries import check_exactly_once, rows

from factories import TEAM
from salesbot_core import Engine, RulesetError, hookimpl

TWO_BOTS = (
    TEAM
    + """
bots:
  - id: trio
    users: [anna, bartek, celina]
    actions: {notify: "{record.id} is yours"}
  - id: quartet
    users: [jan, celina, bartek, anna]
    actions: {notify: "{record.id} is yours", note: "picked by {bot.id}"}
"""
)


def events(count: int, prefix: str = "") -> list[dict]:
    """``count`` deal-created events, alternating between the two bots."""
    return [
        {
            "id": f"{prefix}e{n}",
            "kind": "created",
            "record": {
                "entity": "deal",
                "id": f"{prefix}d{n}",
                "owners": ["bot:trio" if n % 2 else "bot:quartet"],
            },
        }
        for n in range(count)
    ]


def write_jsonl(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


POOLS = {"trio": 3, "quartet": 4}


@pytest.fixture
def two_bots(write_rules) -> Path:
    return write_rules(**{"bots.yaml": TWO_BOTS})


@pytest.mark.slow
def test_every_event_delivered_twice_in_shuffled_order_assigns_once(two_bots: Path, tmp_path: Path) -> None:
    deliveries = events(10_000) * 2
    random.Random(4).shuffle(deliveries)
    db = tmp_path / "s.db"
    with Engine(two_bots, f"sqlite:///{db}?synchronous=NORMAL") as engine:
        outcomes = [engine.handle(event) for event in deliveries]
    firsts = {}
    for outcome in outcomes:
        if not outcome.duplicate:
            assert outcome.event_id not in firsts
            firsts[outcome.event_id] = outcome
    assert len(firsts) == 10_000 and sum(o.duplicate for o in outcomes) == 10_000
    # a redelivery answers exactly what the first delivery decided
    for outcome in outcomes:
        if outcome.duplicate:
            assert outcome.owners_after == firsts[outcome.event_id].owners_after
    check_exactly_once(str(db), 10_000, POOLS)


def salesbot_run(events_file: Path, rules: Path, db: Path | str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "salesbot_core",
            "run",
            str(events_file),
            "-r",
            str(rules),
            "--db",
            str(db),
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def committed(db: str) -> int:
    """How many outcomes the store holds (0 before its schema exists)."""
    try:
        return int(rows(db, "SELECT COUNT(*) FROM outcomes")[0][0])
    except Exception as exc:  # sqlite3 or psycopg: before the first run created the schema
        if "outcomes" not in str(exc):
            raise
        return 0


def kill_after(process: subprocess.Popen[bytes], db: str, target: int, timeout: float = 120) -> None:
    """SIGKILL ``process`` as soon as the store holds ``target`` outcomes; it must still run."""
    deadline = time.monotonic() + timeout
    while committed(db) < target:
        if process.poll() is not None:
            pytest.fail(f"salesbot run ended before it was killed: {process.stderr.read().decode()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"fewer than {target} outcomes after {timeout} s")
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL


SIGKILL_EVENTS = 3_000


@pytest.mark.slow
def test_sigkill_after_commits_then_rerun_assigns_each_record_once(
    two_bots: Path, tmp_path: Path, store_url: str
) -> None:
    events_file = write_jsonl(tmp_path / "events.jsonl", events(SIGKILL_EVENTS))
    db = store_url  # a SQLite file, then a PostgreSQL database
    # Each run is killed once this many more outcomes are committed: at a different point
    # of its progress each time, never by the clock.
    for more in (40, 250, 1, 400, 90, 300):
        target = committed(db) + more
        kill_after(salesbot_run(events_file, two_bots, db), db, target)
        assert committed(db) < SIGKILL_EVENTS  # interrupted for real
    final = salesbot_run(events_file, two_bots, db)
    _, stderr = final.communicate(timeout=600)
    assert final.returncode == 0, stderr.decode()
    check_exactly_once(db, SIGKILL_EVENTS, POOLS)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("store", "per_worker"), [("sqlite", 1_000), ("postgresql", 5_000)], ids=["sqlite", "postgresql"]
)
def test_four_processes_share_one_database_without_lost_updates(
    two_bots: Path, tmp_path: Path, request: pytest.FixtureRequest, store: str, per_worker: int
) -> None:
    db = str(tmp_path / "s.db") if store == "sqlite" else request.getfixturevalue("postgres_url")
    workers = [
        salesbot_run(write_jsonl(tmp_path / f"w{w}.jsonl", events(per_worker, prefix=f"w{w}-")), two_bots, db)
        for w in range(4)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=900)
        assert worker.returncode == 0, stderr.decode()
    check_exactly_once(db, 4 * per_worker, POOLS)
    states = dict(rows(db, "SELECT bot, state FROM strategy_state"))
    # the stored rotation position is the owner of the last assignment of each bot
    for bot in ("trio", "quartet"):
        ((last,),) = rows(
            db, 'SELECT "user" FROM assignments WHERE bot = ? ORDER BY seq DESC LIMIT 1', (bot,)
        )
        assert json.loads(states[bot])["last"] == last


def test_reload_picks_up_changes_and_keeps_the_last_good_rules(two_bots: Path, tmp_path: Path) -> None:
    with Engine(two_bots, tmp_path / "s.db") as engine:
        assert engine.handle(events(2)[1]).owners_after == ["anna"]  # trio
        assert engine.reload() is False  # nothing changed
        (two_bots / "more.yaml").write_text("bots:\n  - {id: solo, users: [jan]}\n")
        assert engine.reload() is True
        solo = {
            "id": "s1",
            "kind": "created",
            "record": {"entity": "deal", "id": "s1", "owners": ["bot:solo"]},
        }
        assert engine.handle(solo).owners_after == ["jan"]
        (two_bots / "more.yaml").write_text("bots:\n  - {id: solo, users: [jan], strategy: nope}\n")
        with pytest.raises(RulesetError) as info:
            engine.reload()
        assert str(info.value) == (
            f"{two_bots / 'more.yaml'}: bot 'solo': field 'strategy': "
            "unknown strategy 'nope'; available: based_on_field, least_loaded, "
            "round_robin, weighted_round_robin"
        )
        # still on the last good rules, rotation state intact
        assert engine.handle(
            {**solo, "id": "s2"} | {"record": {**solo["record"], "id": "s2"}}
        ).owners_after == ["jan"]
        assert engine.handle(events(4)[3]).owners_after == ["bartek"]  # trio continues
        os.remove(two_bots / "more.yaml")
        assert engine.reload() is True
        assert engine.rules.bot("default", "solo") is None


class FailsOnD7:
    """A host plugin whose candidate filter breaks on one record."""

    @hookimpl
    def salesbot_skip_candidate(self, bot, record, user):
        if record.id == "d7":
            raise RuntimeError("calendar service down")
        return None


def test_batched_events_are_exact_and_a_failing_batch_rolls_back_whole(
    two_bots: Path, tmp_path: Path
) -> None:
    batch = events(10) + events(3)  # the last three are redeliveries inside the same call
    with Engine(two_bots, tmp_path / "a.db") as engine:
        outcomes = engine.handle_many(batch, batch_size=4)
    assert [o.duplicate for o in outcomes] == [False] * 10 + [True] * 3
    assert [o.owners_after[0] for o in outcomes[:6]] == [
        "jan",
        "anna",
        "celina",
        "bartek",
        "bartek",
        "celina",
    ]
    check_exactly_once(str(tmp_path / "a.db"), 10, POOLS)

    db = tmp_path / "b.db"
    with Engine(two_bots, db, plugins=[FailsOnD7()]) as engine:
        with pytest.raises(RuntimeError, match="calendar service down"):
            engine.handle_many(events(10), batch_size=4)
        done = sqlite3.connect(db).execute("SELECT event_id FROM outcomes ORDER BY seq").fetchall()
    assert done == [("e0",), ("e1",), ("e2",), ("e3",)]  # the batch e4..e7 left nothing behind
