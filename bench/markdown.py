"""The Markdown tables README.md and docs/benchmarks.md show, from one run's results.

``python -m bench --markdown FILE`` writes them after a run; ``python -m bench.markdown
RESULTS.json [FILE]`` writes them from a run's JSON (``bench/results/latest.json`` by
default). The file holds the command that reproduces the run, a line on the machine
(cores, Python, SQLite and PostgreSQL versions, load average), a short table of the
rows that have a goal (for the README), and the full table (for the benchmarks page), so
both documents quote the figures of the same run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

#: How a figure is printed, by unit (the terminal table's formats, without rich).
FORMATS = {
    "events/s": ",.0f",
    "assignments/s": ",.0f",
    "items/s": ",.0f",
    "records/s": ",.0f",
    "µs": ",.1f",
    "s": ",.3f",
    "MB": ",.1f",
    "ms": ",.0f",
    "statements": ",.1f",
    "pages": ",.1f",
}


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return format(value, FORMATS.get(unit, ",.2f"))


def cell(text: object) -> str:
    """A table cell: a ``|`` would end it, a newline would end the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def machine(meta: dict[str, Any]) -> str:
    """One line on where and how the run happened."""
    parts = [
        f"{meta.get('cpus', '?')} cores",
        f"Python {meta.get('python', '?')}",
        f"SQLite {meta.get('sqlite', '?')}",
    ]
    if meta.get("postgresql"):
        parts.append(f"PostgreSQL {meta['postgresql']}")
    load = meta.get("load_start"), meta.get("load_end")
    if all(isinstance(one, list) and one for one in load):
        parts.append(f"load average {load[0][0]:.1f} at the start, {load[1][0]:.1f} at the end")
    if meta.get("wall_seconds"):
        parts.append(f"{meta['wall_seconds'] / 60:.1f} minutes")
    commit = (meta.get("git_commit") or "")[:10]
    if commit:
        parts.append(f"commit {commit}" + (" with local changes" if meta.get("git_dirty") else ""))
    return ", ".join(parts)


def _goal(row: dict[str, Any]) -> str:
    if not row.get("goal_text"):
        return ""
    status = row.get("status")
    return f"{row['goal_text']} {status}" if status else row["goal_text"]


def _ratio(row: dict[str, Any]) -> str:
    return "—" if row.get("ratio") is None else f"{row['ratio']:.2f}"


def _rows(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, row)
        for name, report in results["benchmarks"].items()
        if report["status"] == "ok"
        for row in report["rows"]
    ]


def _checked(row: dict[str, Any]) -> float:
    """The figure a row's goal is checked on (higher is worse), to pick a group's worst."""
    if row.get("goal_on") == "value":
        return float(row["value"])
    if row.get("goal_on") == "growth":
        return float(row["value"]) - float(row.get("baseline") or 0)
    return float(row.get("ratio") or 0)


def short_table(results: dict[str, Any]) -> list[str]:
    """The README's table: the rows with a goal; rows of one benchmark under the same goal
    (each admin page, wall and CPU time) shown by their worst."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for name, row in _rows(results):
        if row.get("goal") is not None:
            groups.setdefault((name, row["goal_text"]), []).append(row)
    lines = ["| benchmark | case | salesbot | baseline | ratio | goal |", "|---|---|---|---|---|---|"]
    for (name, _), rows in groups.items():
        row = max(rows, key=_checked)
        unit = row["unit"]
        case = f"{row['case']}: {row['metric']} ({unit})"
        if len(rows) > 1:
            case = f"worst of {len(rows)}, {case}"
        baseline = ""
        if row.get("baseline") is not None:
            baseline = f"{fmt(row['baseline'], unit)} ({row['baseline_label']})"
        parts = (name, case, fmt(row["value"], unit), baseline, _ratio(row), _goal(row))
        lines.append("| " + " | ".join(cell(part) for part in parts) + " |")
    return lines


def gaps(results: dict[str, Any]) -> list[str]:
    """Each missed goal, where its gap is and the next step, as the run printed them (rows
    of one case under one goal, wall and CPU time, by their worst)."""
    worst: dict[tuple[str, str, str], dict[str, Any]] = {}
    for name, row in _rows(results):
        if row.get("status") == "missed" and row.get("gap"):
            key = (name, row["case"], row["goal_text"])
            if key not in worst or _checked(row) > _checked(worst[key]):
                worst[key] = row
    return [
        f"- **{cell(name)}, {cell(case)}** ({cell(goal)}, ratio {_ratio(row)}): {cell(row['gap'])}"
        for (name, case, goal), row in worst.items()
    ]


def full_table(results: dict[str, Any]) -> list[str]:
    """The benchmarks page's table: every row of every benchmark, and what did not run."""
    lines = [
        "| benchmark | case | metric | salesbot | baseline | baseline is | ratio | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, report in results["benchmarks"].items():
        if report["status"] != "ok":
            lines.append(f"| {cell(name)} | {cell(report['status'])}: {cell(report['reason'])} | | | | | | |")
            continue
        for i, row in enumerate(report["rows"]):
            unit = row["unit"]
            lines.append(
                "| "
                + " | ".join(
                    cell(part)
                    for part in (
                        name if i == 0 else "",
                        row["case"],
                        f"{row['metric']} ({unit})",
                        fmt(row["value"], unit),
                        fmt(row.get("baseline"), unit),
                        row["baseline_label"] if row.get("baseline") is not None else "",
                        _ratio(row),
                        _goal(row),
                    )
                )
                + " |"
            )
    return lines


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    seconds = ", ".join(
        f"{name} {report['seconds']:,.0f} s" for name, report in results["benchmarks"].items()
    )
    return "\n".join(
        [
            "<!-- Written by bench/markdown.py from one run of python -m bench: paste, do not edit. -->",
            "",
            f"Command: `{meta['command']}`",
            "",
            f"Machine: {machine(meta)}.",
            "",
            f"Time per benchmark: {seconds}.",
            "",
            "### Goals (README)",
            "",
            *short_table(results),
            "",
            "### Missed goals: where the gap is, and the next step",
            "",
            *(gaps(results) or ["Every goal was met."]),
            "",
            "### Every figure (docs/benchmarks.md)",
            "",
            *full_table(results),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) > 2 or any(arg.startswith("-") for arg in argv):
        print("usage: python -m bench.markdown [RESULTS.json [OUT.md]]", file=sys.stderr)
        return 2
    source = Path(argv[0]) if argv else Path(__file__).resolve().parent / "results" / "latest.json"
    try:
        results = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"cannot read results {source}: {exc}", file=sys.stderr)
        return 1
    text = render(results)
    if len(argv) == 2:
        Path(argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
