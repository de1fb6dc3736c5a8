"""``python -m bench``: run the benchmarks, print the table, write ``bench/results/latest.json``.

Exit status 0 when every benchmark that ran gave its figures (a missed goal is reported,
not an error); 1 when one failed (for instance, its baseline wrote other rows than
salesbot did); 2 for bad options.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from . import (
    bots_scale,
    conditions,
    deadlines,
    list_operation,
    memory,
    page,
    per_event,
    postgres_workers,
    service,
    startup,
)
from .common import BenchmarkFailed, Options, Report, Row
from .markdown import fmt, render

BENCHMARKS = {
    module.NAME: module
    for module in (
        per_event,
        list_operation,
        deadlines,
        bots_scale,
        conditions,
        memory,
        postgres_workers,
        service,
        startup,
        page,
    )
}
RESULTS = Path(__file__).resolve().parent / "results"


def parse(argv: list[str] | None) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="salesbot benchmarks: each figure beside a baseline measured in the same run.",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        help="repetitions per measurement; the median is kept (default 3, 1 with --quick)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="about 1/20 of the sizes and one repetition, for a smoke run"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--events", type=int, help="override every event/record count (e.g. --events 1000000)"
    )
    parser.add_argument(
        "--bots", help="bot counts for bots_scale, comma-separated (default 1,100,1000,10000)"
    )
    parser.add_argument(
        "--pg", metavar="URL", help="a postgresql:// URL for postgres_workers (else it is skipped)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the salesbot side of per_event")
    parser.add_argument(
        "--json", type=Path, default=RESULTS / "latest.json", help="where to write the results"
    )
    parser.add_argument("--workdir", type=Path, help="where the scratch databases go (default: a temp dir)")
    parser.add_argument(
        "--markdown",
        type=Path,
        metavar="FILE",
        help="also write the README's and the docs' tables of this run, with its command and machine",
    )
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.events is not None and args.events < 1:
        parser.error("--events must be at least 1")
    bots = None
    if args.bots:
        try:
            bots = tuple(int(part) for part in args.bots.split(","))
        except ValueError:
            parser.error("--bots takes whole numbers separated by commas")
        if not bots or min(bots) < 1:
            parser.error("--bots takes positive numbers")
    options = Options(
        repeat=args.repeat, quick=args.quick, events=args.events, bots=bots, pg=args.pg, profile=args.profile
    )
    return options, args


def table(reports: list[Report], title: str) -> Table:
    grid = Table(
        title=title, caption="ratio = salesbot's cost ÷ the baseline's (time or memory): above 1 is slower"
    )
    for name, justify in [
        ("benchmark", "left"),
        ("case", "left"),
        ("metric", "left"),
        ("salesbot", "right"),
        ("baseline", "right"),
        ("baseline is", "left"),
        ("ratio", "right"),
        ("goal", "left"),
        ("", "left"),
    ]:
        grid.add_column(name, justify=justify)  # type: ignore[arg-type]
    for report in reports:
        if report.status != "ok":
            colour = "yellow" if report.status == "skipped" else "red"
            grid.add_row(report.name, f"[{colour}]{report.status}[/]", report.reason, *[""] * 6)
            continue
        for i, row in enumerate(report.rows):
            grid.add_row(
                report.name if i == 0 else "",
                row.case,
                f"{row.metric} ({row.unit})",
                fmt(row.value, row.unit),
                fmt(row.baseline, row.unit),
                row.baseline_label if row.baseline is not None else "",
                f"{row.ratio:.2f}" if row.ratio is not None else "—",
                row.goal_text,
                _status(row),
            )
        grid.add_section()
    return grid


def missed(reports: list[Report]) -> list[tuple[str, Row]]:
    """The rows whose goal was missed and that say where the gap is."""
    return [(r.name, row) for r in reports for row in r.rows if row.status == "missed" and row.gap]


def _status(row: Row) -> str:
    if row.status is None:
        return ""
    return "[green]met[/]" if row.status == "met" else "[bold red]missed[/]"


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _postgresql(url: str | None) -> str | None:
    """The server's version, or None without a reachable server."""
    if not url:
        return None
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=10) as conn:
            # "15.18 (Debian 15.18-0+deb12u1)": the version is the first word.
            return str(conn.execute("SHOW server_version").fetchone()[0]).split()[0]  # type: ignore[index]
    except Exception:  # the benchmark itself reports an unusable server
        return None


def _load() -> list[float]:
    try:
        return [round(one, 2) for one in os.getloadavg()]
    except OSError:
        return []


def _without_workdir(argv: list[str]) -> list[str]:
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip or arg.startswith("--workdir="):
            skip = False
        elif arg == "--workdir":
            skip = True
        else:
            kept.append(arg)
    return kept


def meta(argv: list[str], options: Options) -> dict[str, Any]:
    # The command as it can be run again, with no password in it (files are shared), and
    # without --workdir: a scratch folder of this machine, which changes no figure.
    shown = [postgres_workers._safe(arg) if arg == options.pg else arg for arg in _without_workdir(argv)]
    return {
        "command": shlex.join(["python", "-m", "bench", *shown]),
        "options": {**options.__dict__, "pg": bool(options.pg)},
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain")),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "postgresql": _postgresql(options.pg),
        "load_start": _load(),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    options, args = parse(argv)
    # A log file (nohup) gets a wide table; a terminal keeps its own width.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    names = args.only or list(BENCHMARKS)
    info = meta(argv, options)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="salesbot-bench-", dir=args.workdir))
    console.log(f"{info['command']}: {', '.join(names)}; scratch files in {workdir}")
    reports: list[Report] = []
    started = time.perf_counter()
    try:
        for name in names:
            module = BENCHMARKS[name]
            console.rule(f"{name}: {module.TITLE}")
            begun = time.perf_counter()
            try:
                report = module.run(options, workdir, console, args.json.parent)
            except BenchmarkFailed as exc:
                report = Report(name, status="failed", reason=str(exc))
                console.print(f"[bold red]{name} failed:[/] {exc}")
            except Exception as exc:
                console.print(traceback.format_exc(), markup=False)
                report = Report(name, status="failed", reason=f"{type(exc).__name__}: {exc}")
            report.seconds = time.perf_counter() - begun
            if report.status == "skipped":
                console.print(f"[yellow]{name} skipped:[/] {report.reason}")
            reports.append(report)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    wall = time.perf_counter() - started
    info["wall_seconds"] = wall
    info["load_end"] = _load()
    console.print()
    console.print(
        table(reports, f"salesbot benchmarks ({'quick, ' if options.quick else ''}repeat {options.repeat})")
    )
    for name, row in missed(reports):
        console.print(
            f"[bold red]missed:[/] {name}, {row.case}: {row.metric} {row.goal_text}", highlight=False
        )
        console.print(f"  {row.gap}", markup=False, highlight=False)
    console.print(f"wall time {wall:,.0f} s; results in {args.json}")
    results = {"meta": info, "benchmarks": {r.name: r.to_json() for r in reports}}
    args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(render(results), encoding="utf-8")
        console.print(f"Markdown tables in {args.markdown}")
    return 1 if any(r.status == "failed" for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
