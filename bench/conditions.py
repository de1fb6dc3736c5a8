"""``conditions``: the per-event cost of ``trigger.where`` for each condition evaluator.

1, 100 and 10,000 bots with conditions (quick: 1, 100, 1,000), each bot a condition of
the shapes the example rulesets use (a comparison, a pattern, a list test); the figure is
the median µs of one ``ConditionSet.matches`` call on a record, for a random bot. The
``python`` evaluator is measured everywhere; ``durable`` where durable-rules runs
(Python 3.11 and 3.12). The baseline is each evaluator's 1-condition figure. Each
measurement runs in a fresh interpreter (durable-rules keeps process-wide C state).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from .common import Options, Report, Row, in_child, median

NAME = "conditions"
TITLE = "µs per trigger.where test, per evaluator, against the number of conditions"
SIZES = (1, 100, 10_000)
QUICK_SIZES = (1, 100, 1_000)
CALLS = 20_000


def condition(j: int) -> dict[str, Any]:
    """Condition number ``j``: one of three shapes, each true for ``RECORD``."""
    return [
        {"$and": [{"$gte": {"value": j % 1000}}, {"$neq": {"region": "export"}}]},
        {"$or": [{"$imt": {"title": ".*acme.*"}}, {"$eq": {"source": f"s{j}"}}]},
        {"$iany": {"tags": {"$eq": {"$i": "vip"}}}},
    ][j % 3]


RECORD = {"value": 5000, "region": "north", "title": "Big ACME deal", "tags": ["new", "vip"], "source": "web"}


def measure(evaluator: str, size: int, calls: int, seed: int) -> float:
    """In a fresh interpreter: the median µs of ``calls`` matches on ``size`` conditions."""
    from salesbot_core.conditions import ConditionSet

    conditions = ConditionSet({f"b{j}": condition(j) for j in range(size)}, evaluator)
    keys = random.Random(seed).choices([f"b{j}" for j in range(size)], k=calls)
    clock = time.perf_counter
    latencies = []
    try:
        for key in keys:
            t0 = clock()
            matched = conditions.matches(key, RECORD)
            latencies.append(clock() - t0)
            if not matched:
                raise AssertionError(f"{evaluator}: condition {key} did not match")
    finally:
        conditions.close()
    return median(latencies) * 1e6


def run(options: Options, workdir: Path, console: Console, results: Path) -> Report:
    from salesbot_core.conditions import durable_available

    sizes = QUICK_SIZES if options.quick else SIZES
    calls = options.size(CALLS)
    evaluators = ["durable", "python"] if durable_available() else ["python"]
    report = Report(NAME, details={"sizes": list(sizes), "calls": calls, "evaluators": evaluators})
    if "durable" not in evaluators:
        report.details["durable"] = "not measured: durable-rules does not run on this Python"
    for evaluator in evaluators:
        figures = {}
        for size in sizes:
            runs = []
            for rep in range(options.repeat):
                console.log(
                    f"conditions: {evaluator}, {size:,} condition(s), repetition {rep + 1}/{options.repeat}"
                )
                runs.append(in_child(measure, evaluator, size, calls, rep))
            figures[size] = median(runs)
            report.details[f"runs_{evaluator}_{size}"] = runs
        for size in sizes:
            case = f"{evaluator}, {size:,} condition" + ("s" if size != 1 else "")
            report.rows.append(
                Row(case, "per matches() (median)", "µs", figures[size], figures[sizes[0]], f"{evaluator}, 1")
            )
    return report
