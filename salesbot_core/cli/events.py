"""Routing from the command line: ``run`` (an events file), ``assign`` (a list
operation) and ``simulate`` (a dry run of a bot)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from ..safetext import escape
from ..vocabulary import DEFAULT_SIMULATE_COUNT
from .common import (
    account_option,
    cells,
    db_option,
    echo_json,
    entity_argument,
    fail,
    json_option,
    rulesets_option,
    warn,
    with_engine,
)

if TYPE_CHECKING:
    from rich.console import Console

    from ..engine import Engine
    from ..models import EntityType
    from ..tally import Tally

DEFAULT_EVENTS = "examples/events.jsonl"
#: Inputs with at least this many lines get a progress bar on a terminal.
PROGRESS_MIN_LINES = 1000


def _assignments(tally: Tally, engine: Engine) -> list[dict[str, Any]]:
    """Records assigned per account, bot and user: in this batch and all time."""
    all_time = {(a, b, u): n for a, b, u, n in engine.store.assignment_counts()}
    return [
        {
            "account": a,
            "bot": b,
            "user": u,
            "this_run": tally.assigned[(a, b, u)],
            "all_time": all_time.get((a, b, u), 0),
        }
        for a, b, u in sorted(set(tally.assigned) | set(all_time))
    ]


def _print_tally(out: Console, tally: Tally, engine: Engine, total: int, rejected: int) -> None:
    """The assignments per bot and user (this batch and all time) and a status line: the
    summary printed after ``run`` and ``assign``."""
    from rich.table import Table

    table = Table(title="Assignments per bot and user")
    for column in ("account", "bot", "user"):
        table.add_column(column, no_wrap=True)
    table.add_column("this run", justify="right")
    table.add_column("all time", justify="right")
    for row in _assignments(tally, engine):
        table.add_row(*cells(*row.values()))
    out.print(table)
    out.print(
        tally.line(total, "events", rejected, zero_rejected=True),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _lines(path: Path) -> Iterator[tuple[int, bytes | None]]:
    """The non-blank lines of a file, numbered from 1, as bytes: each is decoded on its
    own, so a bad byte on one line costs that line only. A line longer than
    ``MAX_LINE_BYTES`` is read past in pieces, never held whole: ``None`` stands for it."""
    from ..limits import MAX_LINE_BYTES

    with path.open("rb") as f:
        number = 0
        while line := f.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                while (rest := f.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass
                yield number, None
            elif line.strip():
                yield number, line


@contextlib.contextmanager
def _progress(total: int, wanted: bool) -> Iterator[Callable[[], None]]:
    """A function that moves a transient progress bar of ``total`` lines on by one. The bar
    is shown only when ``wanted`` and stdout is a terminal; otherwise the function does
    nothing, and rich is not even imported."""
    if not wanted:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import Progress

    out = Console()
    with Progress(console=out, disable=not out.is_terminal, transient=True) as progress:
        task = progress.add_task("routing", total=total)
        yield lambda: progress.advance(task)


class _BadLine(Exception):
    """A line that is not one JSON value."""


def _parse_line(line: bytes | None) -> Any:
    """One JSON Lines line as a JSON value; ``_BadLine`` saying what is wrong with it."""
    from ..limits import MAX_LINE_BYTES, NotJSON, parse_json

    if line is None:
        raise _BadLine(f"the line is longer than {MAX_LINE_BYTES} bytes, the most an event may take")
    try:
        return parse_json(line)
    except NotJSON as exc:
        raise _BadLine(str(exc)) from None


@click.command()
@click.argument(
    "events", default=DEFAULT_EVENTS, type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
@with_engine
@click.option("--quiet", "-q", is_flag=True, help="Print no summary table.")
@json_option
def run(engine: Engine, events: Path, quiet: bool, as_json: bool) -> None:
    """Process a JSON Lines file of EVENTS, one event per line.

    Events already processed (same account and event id) are answered from the log and
    change nothing, so running the same file again after a crash is safe. A bad line is
    reported as FILE:LINE: message (with --json, in the JSON) and skipped; the exit
    status is then 1.
    """
    from ..errors import SalesbotError, StoreError
    from ..tally import Tally

    # rich (tens of milliseconds to import) only where it prints: a progress bar, the
    # summary table, a rejected line. `run -q` of a few events, or to a pipe, never needs it.
    err: Console | None = None
    total = sum(1 for _ in _lines(events))
    tally = Tally()
    rejected: list[dict[str, Any]] = []
    with _progress(total, total >= PROGRESS_MIN_LINES and not quiet and not as_json) as advance:
        for number, line in _lines(events):
            advance()
            try:
                tally.add(engine.handle(_parse_line(line)))
            except StoreError:
                # Not this line's fault, and the next lines would fail alike (the engine
                # already retried what passes): stop, as `error: ...` (see with_engine).
                raise
            except (_BadLine, SalesbotError) as exc:
                rejected.append({"line": number, "message": str(exc)})
                if not as_json:
                    if err is None:
                        from rich.console import Console

                        err = Console(stderr=True)
                    # The message quotes the input (ids, values) and the file name: escaped.
                    err.print(
                        escape(f"{events}:{number}: {exc}"), markup=False, highlight=False, soft_wrap=True
                    )
    if as_json:
        echo_json(
            {
                "events": total,
                "statuses": dict(sorted(tally.statuses.items())),
                "rejected": rejected,
                "assignments": _assignments(tally, engine),
            }
        )
    elif not quiet:
        from rich.console import Console

        _print_tally(Console(), tally, engine, total, len(rejected))
    if rejected:
        raise SystemExit(1)


@click.command()
@entity_argument
@click.argument("record_ids", metavar="RECORD_ID...", nargs=-1, required=True)
@with_engine
@click.option("--bot", "bot_id", required=True, metavar="BOT", help="The bot to set as owner.")
@click.option(
    "--operation",
    required=True,
    help="Id of this bulk operation; repeating it with the same id changes nothing.",
)
@account_option
@click.option("--quiet", "-q", is_flag=True, help="Print no summary table.")
def assign(
    engine: Engine,
    entity: str,
    record_ids: tuple[str, ...],
    bot_id: str,
    operation: str,
    account: str,
    quiet: bool,
) -> None:
    """Set BOT as the owner of stored ENTITY records (a list operation), each its own pick.

    ENTITY is deal, person, company or task. Unknown records are an error before
    anything is changed.
    """
    from rich.console import Console

    from ..tally import Tally

    if engine.rules.bot(account, bot_id) is None:
        fail(f"no bot {bot_id!r} in account {account!r}")
    outcomes = engine.assign_list(account, cast("EntityType", entity), record_ids, bot_id, operation)
    tally = Tally()
    for outcome in outcomes:
        tally.add(outcome)
        decision = next((d for d in outcome.decisions if d.bot == bot_id), None)
        if decision is not None and decision.status != "assigned":
            click.echo(escape(f"{outcome.record_id}: not assigned ({decision.reason})"))
        else:
            click.echo(escape(f"{outcome.record_id}: {', '.join(outcome.owners_after)}"))
    if not quiet:
        _print_tally(Console(), tally, engine, len(outcomes), 0)


#: The widest bar of ``salesbot simulate``, in characters.
SIMULATE_BAR_WIDTH = 40


@click.command(name="simulate")
@click.argument("bot_id", metavar="BOT")
@rulesets_option
@db_option
@account_option
@click.option(
    "--count",
    "-n",
    type=click.IntRange(min=1),
    default=None,
    help=f"Simulate this many synthetic records.  [default: {DEFAULT_SIMULATE_COUNT}]",
)
@click.option(
    "--records",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Simulate the records of this JSON Lines file instead (their owners are replaced by BOT).",
)
@click.option("--verbose", "-v", is_flag=True, help="Print who would get each record, and why.")
@json_option
def simulate_command(
    bot_id: str,
    rulesets: Path,
    db: str,
    account: str,
    count: int | None,
    records: Path | None,
    verbose: bool,
    as_json: bool,
) -> None:
    """A dry run of BOT: who would get which records, writing nothing to the store.

    The records are decided in one store transaction that is rolled back at the end, so
    the simulation goes on from the store's rotation state, switches, open records and
    caps usage, on any store; a SQLite file that does not exist is not created. Each
    record becomes a 'created' event (or the first kind of event BOT fires on) with BOT
    as its owner.
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ..errors import SalesbotError
    from ..simulate import simulate

    if count is not None and records is not None:
        raise click.UsageError("--count and --records cannot be used together")
    try:
        result = simulate(rulesets, db, account, bot_id, records or count or DEFAULT_SIMULATE_COUNT)
    except SalesbotError as exc:
        fail(str(exc))
    for failure in result.plugin_failures:
        warn(failure)
    bot = result.bot
    if records is None and bot.trigger.where is not None:
        warn(
            f"bot {bot.id!r} fires only on records matching its trigger.where, which synthetic "
            "records may not: simulate it with --records FILE"
        )
    if as_json:
        echo_json(
            {
                "account": account,
                "bot": bot.id,
                "records": result.total,
                "statuses": dict(sorted(result.statuses.items())),
                "users": result.users,
                "rejected": [{"number": r.number, "message": r.message} for r in result.rejected],
                "decisions": [dataclasses.asdict(r) for r in result.records],
            }
        )
        raise SystemExit(1 if result.rejected else 0)
    out, err = Console(), Console(stderr=True)
    for rejected in result.rejected:
        where = f"{records}:{rejected.number}" if records is not None else f"record {rejected.number}"
        err.print(escape(f"{where}: {rejected.message}"), markup=False, highlight=False, soft_wrap=True)
    if verbose:
        for r in result.records:
            why = r.reason if r.status == "assigned" else f"{r.status.replace('_', ' ')}: {r.reason}"
            out.print(
                escape(f"{r.record_id} -> {r.owner or 'nobody'} ({why})"),
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    table = Table(
        title=Text(escape(f"Dry run of bot {bot.id!r} ({bot.display_name}) in account {account!r}")),
        caption=Text(escape(f"nothing was written to {db}")),
    )
    table.add_column("user")
    table.add_column("records", justify="right")
    table.add_column("share %", justify="right")
    table.add_column("bar", min_width=SIMULATE_BAR_WIDTH)
    peak, assigned = max(result.users.values(), default=0), result.assigned
    for user, n in result.users.items():
        width = max(1, round(SIMULATE_BAR_WIDTH * n / peak)) if n else 0
        share = f"{100 * n / assigned:.1f}" if assigned else "0.0"
        table.add_row(Text(user), Text(str(n)), Text(share), Text("█" * width, style="cyan"))
    out.print(table)
    out.print(result.summary(), markup=False, highlight=False, soft_wrap=True)
    if result.rejected:
        raise SystemExit(1)
