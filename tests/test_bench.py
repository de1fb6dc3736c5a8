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
    assert [(r["case"], r["metric"]) for r in rows] == [
        (f"synchronous={mode}", metric)
        for mode in ("FULL", "NORMAL")
        for metric in ("throughput", "p50 latency", "p99 latency")
    ]
    for row in rows:
        assert {"value", "baseline", "ratio", "unit", "goal", "status"} <= row.keys()
        assert row["value"] > 0 and row["baseline"] > 0 and row["ratio"] > 0
    throughput = [r for r in rows if r["metric"] == "throughput"]
    assert [r["goal"] for r in throughput] == [1.5, 2.5]
    assert all(r["status"] in ("met", "missed") for r in throughput)
    # Salesbot and the raw sqlite3 baseline wrote the same rows: 30 deals and their companies.
    counts = report["details"]["rows_FULL"]
    assert counts["outcomes"] == counts["assignments"] == counts["notifications"] == 30
    assert counts["notes"] == 60 and counts["records"] == 60


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
