"""The ``salesbot`` command: process event files and check ruleset folders.

User mistakes (a bad ruleset, a bad event line, a broken plugin) are printed as one
readable line each and give a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from .engine import DEFAULT_RULESETS, DEFAULT_STORE, Engine
from .errors import RulesetError, SalesbotError
from .registry import make_plugin_manager
from .rulesets import load_rulesets

DEFAULT_EVENTS = "examples/events.jsonl"
#: Inputs with at least this many lines get a progress bar on a terminal.
PROGRESS_MIN_LINES = 1000

rulesets_option = click.option(
    "--rulesets", "-r", default=DEFAULT_RULESETS, show_default=True,
    type=click.Path(file_okay=False, path_type=Path), help="Folder of ruleset files.",
)


@click.group()
@click.version_option(package_name="salesbot")
def main() -> None:
    """salesbot: picks the owner of CRM records set to a Sales Bot."""


def _fail(message: str) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise SystemExit(1)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                yield number, line


@main.command()
@click.argument("events", default=DEFAULT_EVENTS,
                type=click.Path(dir_okay=False, exists=True, path_type=Path))
@rulesets_option
@click.option("--db", default=DEFAULT_STORE, show_default=True,
              help="SQLite file (or a store URL) to keep records, rotation state and the log in.")
@click.option("--quiet", "-q", is_flag=True, help="Print no summary table.")
def run(events: Path, rulesets: Path, db: str, quiet: bool) -> None:
    """Process a JSON Lines file of EVENTS, one event per line.

    Events already processed (same account and event id) are answered from the log and
    change nothing, so running the same file again after a crash is safe.
    """
    out, err = Console(), Console(stderr=True)
    try:
        engine = Engine(rulesets, db)
    except SalesbotError as exc:
        _fail(str(exc))
    for failure in engine.plugin_failures:
        err.print(f"[yellow]warning:[/] {failure}", highlight=False, soft_wrap=True)

    total = sum(1 for _ in _lines(events))
    statuses: Counter[str] = Counter()
    assigned: Counter[tuple[str, str, str]] = Counter()
    rejected = 0
    show_progress = out.is_terminal and total >= PROGRESS_MIN_LINES and not quiet
    with engine, Progress(console=out, disable=not show_progress, transient=True) as progress:
        task = progress.add_task("routing", total=total)
        for number, line in _lines(events):
            progress.advance(task)
            try:
                outcome = engine.handle(json.loads(line))
            except json.JSONDecodeError as exc:
                rejected += 1
                err.print(f"{events}:{number}: not valid JSON: {exc}", highlight=False, soft_wrap=True)
                continue
            except SalesbotError as exc:
                rejected += 1
                err.print(f"{events}:{number}: {exc}", highlight=False, soft_wrap=True)
                continue
            if outcome.duplicate:
                statuses["duplicate"] += 1
                continue
            for decision in outcome.decisions:
                statuses[decision.status] += 1
                if decision.owner is not None:
                    assigned[(outcome.account, decision.bot, decision.owner)] += 1
            if not outcome.decisions:
                statuses["no_bot"] += 1
        all_time = {(a, b, u): n for a, b, u, n in engine.store.assignment_counts()}

    if not quiet:
        table = Table(title="Assignments per bot and user")
        for column in ("account", "bot", "user"):
            table.add_column(column)
        table.add_column("this run", justify="right")
        table.add_column("all time", justify="right")
        for key in sorted(set(assigned) | set(all_time)):
            table.add_row(*key, str(assigned[key]), str(all_time.get(key, 0)))
        out.print(table)
        parts = [f"{n} {status.replace('_', ' ')}" for status, n in sorted(statuses.items())]
        out.print(f"{total} events: " + ", ".join([*parts, f"{rejected} rejected"]),
                  highlight=False, soft_wrap=True)
    if rejected:
        raise SystemExit(1)


@main.command()
@rulesets_option
def validate(rulesets: Path) -> None:
    """Check every ruleset file of a folder; list the bots, or every problem found."""
    try:
        registry = make_plugin_manager()
        for failure in registry.failures:
            Console(stderr=True).print(f"[yellow]warning:[/] {failure}", highlight=False, soft_wrap=True)
        rules = load_rulesets(rulesets, registry.catalog())
    except RulesetError as exc:
        err = Console(stderr=True)
        for problem in exc.problems:
            err.print(f"[bold red]error:[/] {problem}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
    except SalesbotError as exc:
        _fail(str(exc))
    table = Table(title=f"{len(rules.bots)} bots in {rulesets}")
    for column in ("account", "bot", "name", "entity", "strategy", "users", "active", "file"):
        table.add_column(column)
    for (account, bot_id), bot in rules.bots.items():
        table.add_row(account, bot_id, bot.display_name, bot.entity, bot.strategy,
                      ", ".join(bot.users), "yes" if bot.active else "no",
                      rules.sources[(account, bot_id)])
    Console().print(table)
