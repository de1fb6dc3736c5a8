"""Round trips per event on PostgreSQL, counted on the wire (docs/postgresql.md).

The bench's ``RoundTrips`` proxy sits between a real engine and the real server and counts
each time the client speaks after the server did.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from salesbot_core import Engine

ROOT = Path(__file__).resolve().parents[1]


def test_an_event_takes_4_round_trips_and_a_redelivery_2(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))  # bench is importable from the root, as python -m bench
    from bench.common import write_rules
    from bench.postgres_workers import RoundTrips, event, rules

    proxy = RoundTrips(postgres_url)
    runs = []
    try:
        with Engine(write_rules(tmp_path / "rules", rules("t")), proxy.url, autoload=False) as engine:
            engine.handle(event("t", "warm", 0))  # the pool's connection is made here
            for run in range(3):
                counts = []
                # inbound, partners, inbound, partners, then a redelivery
                for n in [*range(4), 1]:
                    proxy.reset()
                    engine.handle(event("t", f"e{run}", n))
                    counts.append(proxy.count)
                runs.append(counts)
    finally:
        proxy.close()
    # Each: the event's lookup with the record, the linked company, the rotation state,
    # the writes with COMMIT; the redelivery: the lookup, then COMMIT. None can take fewer
    # (each trip waits for the one before), so the total pins each: 4 + 4 + 4 + 4 + 2. The
    # total is what is compared, since where the proxy's threads see one event end and the
    # next begin can move a trip across the boundary (CI once counted [4, 5, 4, 3, 2]).
    # The least of three runs: on a loaded machine the server may answer a pipeline's first
    # statements before the client has sent its last, which the proxy sees as one more
    # trip (CI under `tox p` once counted [4, 4, 4, 4, 3]); a run never counts fewer.
    assert min(sum(counts) for counts in runs) == 4 * 4 + 2, runs


@pytest.mark.slow
def test_the_postgres_bench_counts_round_trips_beside_the_atomic_router(
    postgres_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--only",
            "postgres_workers",
            "--repeat",
            "1",
            "--events",
            "40",
            "--pg",
            postgres_url,
            "--json",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text(encoding="utf-8"))["benchmarks"]["postgres_workers"]
    assert report["status"] == "ok", report["reason"]
    assert report["details"]["round_trips"] == {"salesbot": 4.0, "atomic": 1.0}
    assert report["details"]["same_owners"] == 40  # every deal went to the same user on both sides
    assert [(r["case"], r["metric"], r["baseline_label"], r["goal_text"]) for r in report["rows"]] == [
        ("1 worker", "throughput", "atomic raw psycopg, 1 worker", "≥ 0.5× atomic raw"),
        ("2 workers", "throughput", "salesbot, 1 worker", "≥ 1.4× 1 worker"),
        ("atomic raw psycopg, 2 workers", "throughput", "atomic raw psycopg, 1 worker", ""),
        ("1 worker", "round trips", "atomic raw psycopg", "≤ 4"),
    ]
    one, two, atomic_two, trips = report["rows"]
    runs = {
        key: report["details"][f"runs_{key}"][0]
        for key in ("salesbot_1", "salesbot_2", "atomic_1", "atomic_2")
    }
    # Each throughput row beside the baseline the goal names, from the same run.
    assert (one["value"], one["baseline"]) == (runs["salesbot_1"], runs["atomic_1"])
    assert (two["value"], two["baseline"]) == (runs["salesbot_2"], runs["salesbot_1"])
    assert (atomic_two["value"], atomic_two["baseline"]) == (runs["atomic_2"], runs["atomic_1"])
    assert (one["goal"], two["goal"], atomic_two["goal"]) == (2.0, 1 / 1.4, None)
    # A speed-up of s is a ratio of 1/s.
    assert two["ratio"] == pytest.approx(1 / report["details"]["speedup"]["salesbot"])
    assert (trips["value"], trips["baseline"], trips["status"]) == (4.0, 1.0, "met")
