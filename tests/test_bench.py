"""Smoke test of the benchmark suite (``python -m bench``): it runs and writes its JSON.

No speed is asserted: machines differ and are noisy. Only that the command exits 0 and
that the JSON holds positive figures beside positive baselines.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--json", str(out), "--workdir", str(tmp_path / "work")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done, json.loads(out.read_text(encoding="utf-8"))


def test_per_event_smoke(tmp_path: Path) -> None:
    done, results = bench(tmp_path, "--quick", "--only", "per_event", "--repeat", "1", "--events", "30")
    assert "per_event" in done.stdout
    assert {"command", "started", "wall_seconds", "python", "sqlite", "git_commit"} <= results["meta"].keys()
    assert results["meta"]["wall_seconds"] > 0
    assert list(results["benchmarks"]) == ["per_event"]
    report = results["benchmarks"]["per_event"]
    assert report["status"] == "ok", report["reason"]
    rows = report["rows"]
    result, same = "raw sqlite3, by result", "raw sqlite3, same statements"
    assert [(r["case"], r["metric"], r["baseline_label"]) for r in rows] == [
        *(
            (f"synchronous={mode}", metric, label)
            for mode in ("FULL", "NORMAL")
            for metric, label in (
                ("throughput", result),
                ("p50 latency", result),
                ("p99 latency", result),
                ("throughput", same),
                ("throughput, rules in the store", "salesbot, rules from files"),
            )
        ),
        ("per event", "statements", result),
        ("per event", "WAL pages", result),
        ("per event", "statements", same),
        ("per event", "WAL pages", same),
    ]
    for row in rows:
        assert {"value", "baseline", "ratio", "unit", "goal", "status"} <= row.keys()
        assert row["value"] > 0 and row["baseline"] > 0 and row["ratio"] > 0
    throughput = [r for r in rows if r["metric"] == "throughput" and r["goal"] is not None]
    assert [r["goal"] for r in throughput] == [1.5, 2.5]
    assert all(r["status"] in ("met", "missed") for r in throughput)
    # Each goal says where its gap is, from a profile of this run, and the next step.
    split = report["details"]["cpu_split"]
    assert sum(split.values()) == pytest.approx(1.0)
    assert "SQL (the driver and the database)" in split and "deciding" in split
    for row in throughput:
        assert row["gap"].startswith("cProfile of salesbot's side, own time: ")
        assert "Next: one owners table keyed by user" in row["gap"]
    # Over events 15-29, each with a new company: BEGIN, the audit row looked up, the
    # rotation read, the deal and its tag written, the company read, written and tagged,
    # 2 notes, 1 outbox row, the rotation and the audit row written, COMMIT.
    costs = report["details"]["per_event_costs"]
    assert costs["result"]["statements"] == 14
    assert costs["salesbot"]["statements"] > costs["result"]["statements"]
    assert all(cost["wal_pages"] > 0 for cost in costs.values())


def test_list_operation_smoke(tmp_path: Path) -> None:
    _, results = bench(tmp_path, "--quick", "--only", "list_operation", "--events", "300")
    report = results["benchmarks"]["list_operation"]
    assert report["status"] == "ok", report["reason"]
    assert [(row["case"], row["metric"], row["baseline_label"]) for row in report["rows"]] == [
        ("300 deals, batches of 1,000", "time", "raw sqlite3, by result"),
        ("300 deals, batches of 1,000", "throughput", "raw sqlite3, by result"),
        ("300 deals, batches of 1,000", "time", "raw sqlite3, same statements"),
    ]
    goal = report["rows"][0]
    assert goal["goal"] == 3 and goal["status"] in ("met", "missed")
    assert goal["gap"].startswith("cProfile of salesbot's side, own time: ")
    assert sum(report["details"]["cpu_split"].values()) == pytest.approx(1.0)


def test_equality_check_sees_what_a_baseline_got_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bench fails when a baseline's observable result differs: here one wall note,
    then one rotation state, changed behind the result-defined baseline's back."""
    monkeypatch.syspath_prepend(str(ROOT))  # the bench package is not installed
    from bench.common import write_rules
    from bench.per_event import RULES, SIDES, Sides, events

    rules = write_rules(tmp_path / "rules", {"bots.yaml": RULES})
    batch = events(12)
    sides = Sides(rules, tmp_path, "NORMAL")
    try:
        for side in SIDES:
            for event in batch:
                sides.handles[side](event)
        assert sides.check(batch) == []
        conn = sides.result.conn
        (note,) = conn.execute("SELECT text FROM notes WHERE seq = 3").fetchone()
        conn.execute("UPDATE notes SET text = 'Assigned by nobody' WHERE seq = 3")
        problems = sides.check(batch)
        # The note shows on the deal's wall and in explain of the deal and its company.
        assert [p.split(":")[1] for p in problems] == [
            " explain company/c1",
            " explain deal/d1",
            " wall deal/d1",
        ]
        assert problems[-1].endswith("baseline 'Assigned by nobody'")
        conn.execute("UPDATE notes SET text = ? WHERE seq = 3", (note,))
        conn.execute("UPDATE rotation SET last = 'anna'")
        assert [p.split(":")[:2] for p in sides.check(batch)] == [
            ["raw sqlite3, by result", " rotation inbound"]
        ]
    finally:
        sides.close()


def test_postgres_workers_skipped_without_url(tmp_path: Path) -> None:
    done, results = bench(tmp_path, "--quick", "--only", "postgres_workers", "--repeat", "1")
    report = results["benchmarks"]["postgres_workers"]
    assert report["status"] == "skipped"
    assert "--pg" in report["reason"] and "skipped" in done.stdout


def test_the_atomic_raw_router_writes_an_events_result_once_in_one_round_trip(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """postgres_workers' baseline: one statement an event, in autocommit, with the result
    salesbot gives (owner by rotation, records, tags, notes, notification, audit)."""
    monkeypatch.syspath_prepend(str(ROOT))
    import psycopg

    from bench.postgres_workers import RoundTrips, atomic_event, event, raw_setup

    with psycopg.connect(postgres_url) as conn:
        raw_setup(conn, "t")
    proxy = RoundTrips(postgres_url)
    owners, trips = [], []
    try:
        with psycopg.connect(proxy.url, autocommit=True) as conn:
            # inbound, partners, a redelivery of the first, inbound again (all account a0)
            for item in [event("t", "e", 0), event("t", "e", 1), event("t", "e", 0), event("t", "e", 8)]:
                proxy.reset()
                owners.append(atomic_event(conn, item))
                trips.append(proxy.count)
    finally:
        proxy.close()
    assert owners == ["anna", "celina", None, "bartek"]
    # The first event also prepares the statement (one trip more); then each is one trip.
    assert trips == [2, 1, 1, 1]
    with psycopg.connect(postgres_url) as conn:

        def rows(query: str) -> list[tuple]:
            return sorted(conn.execute(query).fetchall())

        assert rows("SELECT event_id FROM raw_events") == [("t-e-0",), ("t-e-1",), ("t-e-8",)]
        assert rows("SELECT bot, n FROM raw_rotation WHERE account = 'pbta0'") == [
            ("inbound", 2),
            ("partners", 1),
        ]
        assert rows("SELECT entity, id, owner FROM raw_records") == [
            ("company", "c0", "anna"),
            ("company", "c8", "bartek"),
            ("deal", "e-0", "anna"),
            ("deal", "e-1", "celina"),
            ("deal", "e-8", "bartek"),
        ]
        assert rows("SELECT entity, id, tag FROM raw_tags") == [
            ("company", "c0", "inbound-bot"),
            ("company", "c8", "inbound-bot"),
            ("deal", "e-0", "inbound-bot"),
            ("deal", "e-1", "partner-bot"),
            ("deal", "e-8", "inbound-bot"),
        ]
        assert rows("SELECT entity, record_id, text FROM raw_notes") == [
            ("company", "c0", "Assigned by Inbound leads to Anna Nowak"),
            ("company", "c8", "Assigned by Inbound leads to Bartek Wiśniewski"),
            ("deal", "e-0", "Assigned by Inbound leads to Anna Nowak"),
            ("deal", "e-1", "Assigned to Celina Zając"),
            ("deal", "e-8", "Assigned by Inbound leads to Bartek Wiśniewski"),
        ]
        assert rows('SELECT "user", text, delivered FROM raw_outbox') == [
            ("anna", "New deal Deal 0", False),
            ("bartek", "New deal Deal 8", False),
        ]
        assert rows("SELECT event_id, entity, record_id, bot, owner FROM raw_audit") == [
            ("t-e-0", "company", "c0", "inbound", "anna"),
            ("t-e-0", "deal", "e-0", "inbound", "anna"),
            ("t-e-1", "deal", "e-1", "partners", "celina"),
            ("t-e-8", "company", "c8", "inbound", "bartek"),
            ("t-e-8", "deal", "e-8", "inbound", "bartek"),
        ]


# Compiles 1,000 conditions on each evaluator: a few seconds.
@pytest.mark.slow
def test_conditions_smoke(tmp_path: Path) -> None:
    _, results = bench(tmp_path, "--quick", "--only", "conditions", "--repeat", "1", "--events", "50")
    report = results["benchmarks"]["conditions"]
    assert report["status"] == "ok", report["reason"]
    cases = [row["case"] for row in report["rows"]]
    assert cases[-3:] == ["python, 1 condition", "python, 100 conditions", "python, 1,000 conditions"]
    assert all(row["value"] > 0 for row in report["rows"])


# Starts a real salesbot serve: a few seconds.
@pytest.mark.slow
def test_service_smoke(tmp_path: Path) -> None:
    _, results = bench(tmp_path, "--only", "service", "--repeat", "1", "--events", "40")
    report = results["benchmarks"]["service"]
    assert report["status"] == "ok", report["reason"]
    assert [(row["case"], row["metric"]) for row in report["rows"]] == [
        ("HTTP, 1 event per request (keep-alive)", "throughput"),
        ("HTTP, 1 event per request (keep-alive)", "p50 latency"),
        ("HTTP, 1 event per request (keep-alive)", "p99 latency"),
        ("HTTP, 1 event per request (keep-alive)", "CPU per event (server)"),
        ("HTTP, events:batch of 100", "throughput"),
        ("HTTP, 8 clients at once, 1 event per request", "throughput"),
        ("HTTP, 8 clients at once, 1 event per request", "p50 latency"),
        ("HTTP, 8 clients at once, 1 event per request", "p99 latency"),
    ]
    assert all(row["value"] > 0 and row["baseline"] > 0 for row in report["rows"])
    assert [row["goal"] for row in report["rows"] if row["metric"] == "throughput"] == [2.0, 1.2, 1.0]
    assert report["details"]["rounds"] == 4 and len(report["details"]["runs"]) == 1


def test_markdown_tables_of_one_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's table keeps the rows with a goal, one benchmark's rows under the same
    goal shown by the worst; the docs' table has every row and what did not run."""
    monkeypatch.syspath_prepend(str(ROOT))
    from bench.common import Report, Row
    from bench.markdown import main

    fast = Row(
        "home", "server time", "ms", 10.0, 5.0, "empty", goal=250, goal_on="value", goal_text="≤ 250 ms"
    )
    slow = Row(
        "bot | page",
        "server time",
        "ms",
        60.4,
        20.0,
        "empty",
        goal=250,
        goal_on="value",
        goal_text="≤ 250 ms",
    )
    rate = Row(
        "1 worker",
        "throughput",
        "events/s",
        80.0,
        200.0,
        "raw",
        kind="rate",
        goal=2.0,
        goal_text="≥ 0.5× raw",
        gap="cProfile of salesbot's side, own time: the database driver 58%. Next: fewer statements.",
    )
    results = {
        "meta": {
            "command": "python -m bench --pg postgresql://u:***@db/x",
            "cpus": 2,
            "python": "3.11.7",
            "sqlite": "3.40.1",
            "postgresql": "15.18",
            "load_start": [4.0, 3.0, 2.0],
            "load_end": [2.5, 3.0, 2.0],
            "wall_seconds": 840.0,
            "git_commit": "0123456789abcdef",
            "git_dirty": False,
        },
        "benchmarks": {
            "page": Report("page", rows=[fast, slow, Row("home", "bytes", "kB", 3.0)], seconds=90).to_json(),
            "pg": Report("pg", rows=[rate], seconds=100).to_json(),
            "memory": Report("memory", status="skipped", reason="not asked").to_json(),
        },
    }
    source, out = tmp_path / "results.json", tmp_path / "tables.md"
    source.write_text(json.dumps(results), encoding="utf-8")
    assert main([str(source), str(out)]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[2] == "Command: `python -m bench --pg postgresql://u:***@db/x`"
    assert lines[4] == (
        "Machine: 2 cores, Python 3.11.7, SQLite 3.40.1, PostgreSQL 15.18, load average 4.0 at the start, "
        "2.5 at the end, 14.0 minutes, commit 0123456789."
    )
    missed = "### Missed goals: where the gap is, and the next step"
    readme = lines[lines.index("### Goals (README)") + 4 : lines.index(missed)]
    assert readme == [
        "| page | worst of 2, bot \\| page: server time (ms) | 60 | 20 (empty) | 3.02 | ≤ 250 ms met |",
        "| pg | 1 worker: throughput (events/s) | 80 | 200 (raw) | 2.50 | ≥ 0.5× raw missed |",
        "",
    ]
    # A met goal's gap is not shown; a missed one's is, as the run printed it.
    assert lines[lines.index(missed) + 1 : lines.index("### Every figure (docs/benchmarks.md)")] == [
        "",
        "- **pg, 1 worker** (≥ 0.5× raw, ratio 2.50): cProfile of salesbot's side, own time: the "
        "database driver 58%. Next: fewer statements.",
        "",
    ]
    docs = lines[lines.index("### Every figure (docs/benchmarks.md)") + 4 :]
    assert docs == [
        "| page | home | server time (ms) | 10 | 5 | empty | 2.00 | ≤ 250 ms met |",
        "|  | bot \\| page | server time (ms) | 60 | 20 | empty | 3.02 | ≤ 250 ms met |",
        "|  | home | bytes (kB) | 3.00 | — |  | — |  |",
        "| pg | 1 worker | throughput (events/s) | 80 | 200 | raw | 2.50 | ≥ 0.5× raw missed |",
        "| memory | skipped: not asked | | | | | | |",
    ]


@pytest.mark.slow
def test_no_password_in_the_results(tmp_path: Path) -> None:
    """A --pg URL's password is in neither the JSON nor the Markdown of a run."""
    url = "postgresql://bench:s3cret@127.0.0.1:1/nothing"
    markdown = tmp_path / "tables.md"
    _, results = bench(
        tmp_path, "--quick", "--only", "postgres_workers", "--pg", url, "--markdown", str(markdown)
    )
    assert results["benchmarks"]["postgres_workers"]["status"] == "skipped"
    assert results["meta"]["command"] == (
        "python -m bench --quick --only postgres_workers --pg 'postgresql://bench:***@127.0.0.1:1/nothing' "
        f"--markdown {markdown} --json {tmp_path / 'results.json'}"
    )
    text = (tmp_path / "results.json").read_text(encoding="utf-8") + markdown.read_text(encoding="utf-8")
    assert "s3cret" not in text and "bench:***@127.0.0.1:1" in text


def test_a_profile_counts_each_function_s_own_time_in_its_area(monkeypatch: pytest.MonkeyPatch) -> None:
    """``profiled`` returns the call's result and its own time by area, the shares adding
    up to 1; a loop of SQLite statements spends most of it in the driver."""
    monkeypatch.syspath_prepend(str(ROOT))
    from bench.common import profiled, split_text

    conn = sqlite3.connect(":memory:")
    result, split = profiled(lambda: [conn.execute("SELECT ?", (i,)).fetchone() for i in range(3_000)][-1])
    assert result == (2_999,)
    assert max(split, key=lambda area: split[area]) == "SQL (the driver and the database)"
    assert sum(split.values()) == pytest.approx(1.0)
    assert split_text({"deciding": 0.5, "JSON": 0.49, "pluggy": 0.01}) == (
        "cProfile of salesbot's side, own time: deciding 50%, JSON 49%"
    )


def test_a_missed_goal_of_two_rows_is_listed_once_by_its_worst(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wall and CPU time of one case under one goal: one line, the worse of the two."""
    monkeypatch.syspath_prepend(str(ROOT))
    from bench.common import Report, Row
    from bench.markdown import gaps

    rows = [
        Row("run", metric, "ms", value, 30.0, "python", goal=150, goal_on="value", goal_text="≤ 150 ms",
            gap="pydantic. Next: serve.")
        for metric, value in (("wall", 400.0), ("CPU", 420.0))
    ]  # fmt: skip
    met = Row(
        "help", "wall", "ms", 50.0, 30.0, "python", goal=80, goal_on="value", goal_text="≤ 80 ms", gap="x"
    )
    results = {"benchmarks": {"startup": Report("startup", rows=[*rows, met]).to_json()}}
    assert gaps(results) == ["- **startup, run** (≤ 150 ms, ratio 14.00): pydantic. Next: serve."]
