"""Smoke test of the benchmark suite (``python -m bench``): it runs and writes its JSON.

No speed is asserted: machines differ and are noisy. Only that the command exits 0 and
that the JSON holds positive figures beside positive baselines.
"""

from __future__ import annotations

import json
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
    # Over events 15-29, each with a new company: BEGIN, the audit row looked up, the
    # rotation read, the deal and its tag written, the company read, written and tagged,
    # 2 notes, 1 outbox row, the rotation and the audit row written, COMMIT.
    costs = report["details"]["per_event_costs"]
    assert costs["result"]["statements"] == 14
    assert costs["salesbot"]["statements"] > costs["result"]["statements"]
    assert all(cost["wal_pages"] > 0 for cost in costs.values())


def test_equality_check_sees_what_a_baseline_got_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bench fails when a baseline's observable result differs: here one wall note,
    then one rotation state, changed behind the result-defined baseline's back."""
    monkeypatch.syspath_prepend(str(ROOT))  # the bench package is not installed
    from bench.common import write_rules
    from bench.per_event import RULES, Sides, events

    rules = write_rules(tmp_path / "rules", {"bots.yaml": RULES})
    batch = events(12)
    sides = Sides(rules, tmp_path, "NORMAL")
    try:
        for side in ("salesbot", "result", "same"):
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
    ]
    assert all(row["value"] > 0 and row["baseline"] > 0 for row in report["rows"])
    assert [row["goal"] for row in report["rows"] if row["metric"] == "throughput"] == [2.0, 1.2]
    assert report["details"]["rounds"] == 4 and len(report["details"]["runs"]) == 1
