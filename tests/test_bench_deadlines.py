"""The ``deadlines`` benchmark (SLA ticks and offboarding beside a raw sqlite3 baseline):
it runs, and its equality check fails a baseline that moves records otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from test_bench import ROOT, bench


def test_deadlines_smoke(tmp_path: Path) -> None:
    _, results = bench(tmp_path, "--only", "deadlines", "--repeat", "1", "--events", "40")
    report = results["benchmarks"]["deadlines"]
    assert report["status"] == "ok", report["reason"]
    tick = "salesbot tick: 40 due items, 100 per transaction"
    leave = "offboarding: 40 open records, 500 per transaction"
    assert [(row["case"], row["metric"], row["unit"]) for row in report["rows"]] == [
        (tick, "throughput", "items/s"),
        (tick, "time", "s"),
        (leave, "time", "s"),
        (leave, "throughput", "records/s"),
    ]
    assert all(row["value"] > 0 and row["baseline"] > 0 for row in report["rows"])
    # Issue 25's goals, one row per case: the time at most 3 times the baseline's.
    assert [(row["goal"], row["goal_text"]) for row in report["rows"]] == [
        (None, ""),
        (3.0, "ratio ≤ 3"),
        (3.0, "ratio ≤ 3"),
        (None, ""),
    ]
    assert {row["status"] for row in report["rows"] if row["goal"]} <= {"met", "missed"}
    assert (report["details"]["due_items"], report["details"]["offboarded"]) == (40, 40)


def test_the_equality_check_fails_a_baseline_that_picks_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))  # the bench package is not installed
    from bench import deadlines
    from bench.common import BenchmarkFailed, Options, write_rules

    rules = write_rules(tmp_path / "rules", {"bots.yaml": deadlines.RULES})
    options = Options(repeat=1, events=12)
    quiet = Console(quiet=True)
    seconds = deadlines.measure(options, tmp_path, quiet, rules, "tick", 12)
    assert [len(seconds[side]) for side in deadlines.SIDES] == [1, 1]
    # A baseline that forgets to skip the owner the record is taken from.
    pick = deadlines.RawDeadlines._pick
    monkeypatch.setattr(deadlines.RawDeadlines, "_pick", lambda self, bot, skip: pick(self, bot, set()))
    with pytest.raises(BenchmarkFailed) as failed:
        deadlines.measure(options, tmp_path, quiet, rules, "tick", 12)
    assert str(failed.value) == (
        "tick: the baseline's results differ from salesbot's: owners, rotation, due, outbox"
    )
