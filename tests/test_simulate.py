"""``salesbot simulate``: a dry run of one bot that never writes to the store."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cli_runner import salesbot

from factories import PYDANTIC, Message
from salesbot_core import Outcome, StoreError, hookimpl
from salesbot_core.errors import SalesbotError
from salesbot_core.simulate import simulate

ROOT = Path(__file__).parent.parent
RULESETS = ROOT / "rulesets"
TABLES = ("records", "strategy_state", "outcomes", "assignments", "record_owners", "notes", "notifications")


def counts_table(stdout: str) -> dict[str, int]:
    """The user -> records rows of the simulation table."""
    rows = [line.split("│") for line in stdout.splitlines()]
    return {cells[1].strip(): int(cells[2]) for cells in rows if len(cells) == 6}


def inbound_deal(n: int) -> dict[str, Any]:
    record = {"entity": "deal", "id": f"d{n}", "process": "Sales", "owners": ["bot:inbound"]}
    return {"id": f"e{n}", "kind": "created", "record": record}


@pytest.fixture
def used_db(tmp_path: Path) -> Path:
    """A store that processed 4 inbound deals: anna, bartek, celina, anna."""
    db = tmp_path / "s.db"
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(inbound_deal(n)) + "\n" for n in range(1, 5)))
    result = salesbot("run", str(events), "--db", str(db), "--quiet")
    assert result.exit_code == 0, result.stderr
    return db


def snapshot(db: Path) -> tuple[str, dict[str, int], int]:
    """The file's digest, the rows of each table (WAL included) and the WAL's size."""
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = {table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in TABLES}
    finally:
        conn.close()
    wal = db.with_name(db.name + "-wal")
    return digest, rows, wal.stat().st_size if wal.exists() else 0


def test_synthetic_records_on_a_new_store_take_turns_and_create_no_file(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    result = salesbot("simulate", "inbound", "--count", "30", "--db", str(db))
    assert result.exit_code == 0, result.stderr
    assert counts_table(result.stdout) == {"anna": 10, "bartek": 10, "celina": 10}
    assert "│ anna   │      10 │    33.3 │ " + "█" * 40 + " │" in result.stdout
    assert result.stdout.splitlines()[-1] == "30 records: 30 assigned"
    assert "sim-1 ->" not in result.stdout  # one line per record only with --verbose
    assert list(tmp_path.iterdir()) == []


def test_the_simulation_continues_the_real_rotation_and_writes_nothing(used_db: Path) -> None:
    before = snapshot(used_db)
    assert before[1]["outcomes"] == 4
    result = salesbot("simulate", "inbound", "-n", "5", "--verbose", "--db", str(used_db))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[:5] == [
        "sim-1 -> bartek (next in rotation after 'anna')",
        "sim-2 -> celina (next in rotation after 'bartek')",
        "sim-3 -> anna (next in rotation after 'celina')",
        "sim-4 -> bartek (next in rotation after 'anna')",
        "sim-5 -> celina (next in rotation after 'bartek')",
    ]
    assert counts_table(result.stdout) == {"anna": 1, "bartek": 2, "celina": 2}
    assert result.stdout.splitlines()[-1] == "5 records: 5 assigned"
    assert snapshot(used_db) == before
    # Twice the same: the first simulation left no state behind.
    again = salesbot("simulate", "inbound", "-n", "5", "--verbose", "--db", str(used_db))
    assert again.stdout == result.stdout
    assert snapshot(used_db) == before


def test_a_records_file_reports_rejected_lines_and_goes_on(used_db: Path, tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text(
        json.dumps({"id": "r1", "process": "Sales", "title": "One"})
        + "\n"
        + json.dumps({"id": "r2", "process": "Sales", "value": "lots"})
        + "\n\n"
        + json.dumps({"id": "r4", "process": "Sales", "owners": ["jan"]})
        + "\n"
    )
    before = snapshot(used_db)
    result = salesbot("simulate", "inbound", "--records", str(records), "-v", "--db", str(used_db))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        Message(f"{records}:2: event 'simulate-2': field 'record.deal.value': {PYDANTIC}")
    ]
    assert result.stdout.splitlines()[:2] == [
        "r1 -> bartek (next in rotation after 'anna')",
        "r4 -> celina (next in rotation after 'bartek')",
    ]
    assert counts_table(result.stdout) == {"anna": 0, "bartek": 1, "celina": 1}
    assert result.stdout.splitlines()[-1] == "3 records: 2 assigned, 1 rejected"
    assert snapshot(used_db) == before


def test_the_python_api_gives_the_same_counts_as_the_command(used_db: Path, tmp_path: Path) -> None:
    fresh = simulate(RULESETS, tmp_path / "none.db", "default", "inbound", 30, autoload=False)
    assert fresh.users == {"anna": 10, "bartek": 10, "celina": 10}
    assert (fresh.total, fresh.assigned, dict(fresh.statuses)) == (30, 30, {"assigned": 30})
    assert fresh.summary() == "30 records: 30 assigned"
    assert not (tmp_path / "none.db").exists()

    before = snapshot(used_db)
    used = simulate(RULESETS, used_db, "default", "inbound", 5, autoload=False)
    cli = salesbot("simulate", "inbound", "-n", "5", "--db", str(used_db))
    assert used.users == counts_table(cli.stdout) == {"anna": 1, "bartek": 2, "celina": 2}
    first = used.records[0]
    assert (first.record_id, first.owner, first.reason) == (
        "sim-1",
        "bartek",
        "next in rotation after 'anna'",
    )
    assert simulate(RULESETS, f"sqlite:///{used_db}", "default", "inbound", 5).users == used.users
    assert snapshot(used_db) == before


def test_records_as_dicts_count_every_pool_user_in_pool_order(tmp_path: Path) -> None:
    records = [
        {"id": "big", "value": 60000},
        {"id": "small", "value": 10},
        {"id": "bad", "value": "lots"},
        ["not", "a", "record"],
    ]
    result = simulate(RULESETS, tmp_path / "s.db", "default", "enterprise", records, autoload=False)
    assert list(result.users.items()) == [("jan", 1), ("olga", 0), ("anna", 0)]
    assert [(r.record_id, r.owner, r.status) for r in result.records] == [
        ("big", "jan", "assigned"),
        ("small", None, "not_applied"),
    ]
    assert [(r.number, r.message.split(":")[0]) for r in result.rejected] == [
        (3, "event 'simulate-3'"),
        (4, "a record must be a JSON object"),
    ]
    assert result.summary() == "4 records: 1 assigned, 1 not applied, 2 rejected"


def test_observers_do_not_see_simulated_events(tmp_path: Path) -> None:
    seen: list[Outcome] = []

    class Observer:
        @hookimpl
        def salesbot_after_assign(self, outcome: Outcome) -> None:
            seen.append(outcome)

    result = simulate(
        RULESETS, tmp_path / "s.db", "default", "inbound", 3, plugins=[Observer()], autoload=False
    )
    assert result.assigned == 3 and seen == []


def test_an_unknown_bot_or_store_is_an_error(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    result = salesbot("simulate", "nope", "--db", str(db))
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "error: no bot 'nope' in account 'default'\n"
    other = salesbot("simulate", "inbound", "--account", "acme", "--db", str(db))
    assert other.stderr == "error: no bot 'inbound' in account 'acme'\n"
    assert not db.exists()
    with pytest.raises(SalesbotError, match="no bot 'nope' in account 'default'"):
        simulate(RULESETS, db, "default", "nope", autoload=False)
    with pytest.raises(StoreError, match="no store plugin handles 'mydb://host/db'"):
        simulate(RULESETS, "mydb://host/db", "default", "inbound", autoload=False)
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("hello, this is not a database, but long enough to look like one? " * 200)
    broken = salesbot("simulate", "inbound", "--db", str(not_sqlite))
    assert broken.exit_code == 1
    assert broken.stderr == (
        f"error: cannot open SQLite store '{not_sqlite}' for a dry run: file is not a database\n"
    )


def test_count_and_records_together_are_a_usage_error(tmp_path: Path) -> None:
    records = tmp_path / "r.jsonl"
    records.write_text("")
    result = salesbot(
        "simulate", "inbound", "-n", "3", "--records", str(records), "--db", str(tmp_path / "s")
    )
    assert result.exit_code == 2
    assert "--count and --records cannot be used together" in result.stderr
