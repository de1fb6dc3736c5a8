"""The ``salesbot`` command: process event files, check ruleset folders, and manage the
bots, records and outbox of a store.

User mistakes (a bad ruleset, a bad event line, a broken plugin, an unknown bot or record)
are printed as one readable ``error:`` line each and give a non-zero exit status, never a
traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, cast

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from .conditions import EVALUATOR_VARIABLE, EVALUATORS
from .engine import (
    DEFAULT_RULESETS,
    DEFAULT_STORE,
    MAX_OUTBOX_LIMIT,
    Engine,
    check_outbox_limit,
    mark_delivered,
    open_store,
)
from .errors import RulesetError, SalesbotError, StoreError
from .limits import MAX_LINE_BYTES, NotJSON, parse_json
from .models import ENTITIES, Bot, EntityType
from .registry import make_plugin_manager
from .rulesets import Rules, load_rulesets
from .safetext import escape
from .simulate import DEFAULT_COUNT, simulate
from .starter import write_starter
from .store import Store
from .tally import Tally
from .tokens import ADMIN_ACCOUNT, SCOPES, create_token, revoke_token

DEFAULT_EVENTS = "examples/events.jsonl"
DEFAULT_ACCOUNT = "default"
#: Inputs with at least this many lines get a progress bar on a terminal.
PROGRESS_MIN_LINES = 1000

rulesets_option = click.option(
    "--rulesets",
    "-r",
    default=DEFAULT_RULESETS,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of ruleset files.",
)
db_option = click.option(
    "--db",
    default=DEFAULT_STORE,
    show_default=True,
    help="SQLite file (or a store URL) to keep records, rotation state and the log in.",
)
account_option = click.option(
    "--account",
    "-a",
    default=DEFAULT_ACCOUNT,
    show_default=True,
    help="The account (tenant).",
)
entity_argument = click.argument("entity", metavar="ENTITY", type=click.Choice(ENTITIES))


@click.group()
@click.version_option(package_name="salesbot")
@click.option(
    "--conditions",
    type=click.Choice(EVALUATORS),
    default=None,
    help=f"The trigger.where evaluator: durable (durable-rules; the default on Python 3.11 and "
    f"3.12) or python (the only one on 3.13+). Default: ${EVALUATOR_VARIABLE}, else the default.",
)
@click.pass_context
def main(ctx: click.Context, conditions: str | None) -> None:
    """salesbot: picks the owner of CRM records set to a Sales Bot."""
    ctx.obj = {"conditions": conditions}
    # The connection pool logs each reconnection attempt while a PostgreSQL server
    # restarts; the engine retries those itself and reports what it can't ride out as an
    # `error:` line, so the pool's warnings would only be noise on stderr.
    logging.getLogger("psycopg").addHandler(logging.NullHandler())


def _fail(message: str) -> NoReturn:
    """Print each line of ``message`` as an ``error:`` line on stderr and exit 1."""
    err = Console(stderr=True)
    for line in message.splitlines() or [message]:
        # Messages quote ids, names and values from the input: escaped.
        err.print(Text.assemble(("error:", "bold red"), " ", escape(line)), highlight=False, soft_wrap=True)
    raise SystemExit(1)


def _conditions_setting() -> str | None:
    """The evaluator named by ``salesbot --conditions``, if any."""
    context = click.get_current_context(silent=True)
    settings = context.find_object(dict) if context is not None else None
    return settings.get("conditions") if settings else None


def _warn(message: str) -> None:
    Console(stderr=True).print(
        Text.assemble(("warning:", "yellow"), " ", escape(message)), highlight=False, soft_wrap=True
    )


def with_engine(command: Callable[..., Any], *, readonly: bool = False) -> Callable[..., Any]:
    """Give a command the ``--rulesets`` and ``--db`` options and an open ``Engine``.

    The command gets the engine as its first argument instead of those two options. A
    ruleset or store that cannot be opened, and any ``SalesbotError`` the command raises,
    is printed as ``error: <message>`` with exit status 1; the engine is always closed.
    With ``readonly`` the store is opened for reading only (see ``reading_engine``).
    """

    @rulesets_option
    @db_option
    @functools.wraps(command)
    def wrapper(rulesets: Path, db: str, **kwargs: Any) -> Any:
        try:
            engine = Engine(rulesets, db, readonly=readonly, conditions=_conditions_setting())
        except SalesbotError as exc:
            _fail(str(exc))
        for failure in engine.plugin_failures:
            _warn(failure)
        with engine:
            try:
                return command(engine, **kwargs)
            except SalesbotError as exc:
                _fail(str(exc))

    return wrapper


def reading_engine(command: Callable[..., Any]) -> Callable[..., Any]:
    """``with_engine`` for commands that only read: the store must exist and is opened
    read-only, so a read-only file can be read, and a missing one is not created."""
    return with_engine(command, readonly=True)


def with_store(*, readonly: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the ``--db`` option and the open store alone: no rulesets folder
    is needed (the store plugins are found as an engine finds them). ``-r`` is accepted
    and ignored, for scripts that pass it to every command."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @click.option("--rulesets", "-r", hidden=True, help="Ignored: this command needs no rules.")
        @db_option
        @functools.wraps(command)
        def wrapper(rulesets: str | None, db: str, **kwargs: Any) -> Any:
            try:
                registry = make_plugin_manager()
                for failure in registry.failures:
                    _warn(str(failure))
                store = open_store(registry, db, readonly)
            except SalesbotError as exc:
                _fail(str(exc))
            try:
                return command(store, **kwargs)
            except SalesbotError as exc:
                _fail(str(exc))
            finally:
                store.close()

        return wrapper

    return decorate


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (see README, 'Command line'), no table."
)


def _echo_json(data: object) -> None:
    """One JSON document on stdout. ``ensure_ascii`` writes every character outside
    ASCII as a ``\\u`` escape, so nothing from the input reaches the terminal raw
    (``escape`` then finds nothing left to escape: it is the same rule as elsewhere)."""
    click.echo(escape(json.dumps(data, ensure_ascii=True)))


def _row(*values: object) -> list[Text]:
    """Table cells shown as they are: no rich markup in names, paths or texts, and control
    characters escaped."""
    return [Text(escape(str(value))) for value in values]


def _bot_fields(rules: Rules, account: str, bot: Bot, active: bool) -> dict[str, Any]:
    """A bot as ``validate --json`` and ``bots --json`` give it (and their tables show it)."""
    file = str(rules.sources[(account, bot.id)])
    return {"account": account, **bot.summary(), "active": active, "file": file}


#: Columns dropped, in this order, while a bots table is wider than the terminal.
DROPPABLE_COLUMNS = ("file", "name")
#: Columns holding ids (of accounts, bots, entities, strategies): never wrapped nor cut.
ID_COLUMNS = ("account", "bot", "entity", "strategy")


def _bots_table(
    out: Console,
    title: str,
    bots: list[dict[str, Any]],
    *,
    account_column: bool,
    active_label: str,
) -> Table:
    """One row per bot (see ``_bot_fields``): what ``validate`` and ``bots`` show. Ids are
    never cut: on a narrow terminal the file, then the name column is left out, and
    the other columns wrap."""
    cells = {
        "account": [b["account"] for b in bots],
        "bot": [b["id"] for b in bots],
        "name": [b["name"] for b in bots],
        "entity": [b["entity"] for b in bots],
        "strategy": [b["strategy"] for b in bots],
        "users": [", ".join(b["users"]) for b in bots],
        active_label: ["yes" if b["active"] else "no" for b in bots],
        "file": [b["file"] for b in bots],
    }
    if not account_column:
        del cells["account"]
    texts = {column: [escape(v) for v in values] for column, values in cells.items()}

    def widest(column: str) -> int:
        """The longest id, or the longest word of the column: no narrower, nothing is cut."""
        if column in ID_COLUMNS:
            return max(map(len, [column, *texts[column]]))
        return max(len(word) for text in [column, *texts[column]] for word in text.split())

    for column in DROPPABLE_COLUMNS:
        if sum(widest(c) + 3 for c in texts) + 1 <= out.width:  # 3: padding and border
            break
        del texts[column]
    table = Table(title=Text(escape(title)))  # a Text: a path or account is not markup
    for column in texts:
        # Ids never wrap; the other columns wrap between words.
        if column in ID_COLUMNS:
            table.add_column(column, no_wrap=True, min_width=widest(column))
        else:
            table.add_column(column, overflow="fold")
    for row in zip(*texts.values(), strict=True):
        table.add_row(*map(Text, row))
    return table


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
    table = Table(title="Assignments per bot and user")
    for column in ("account", "bot", "user"):
        table.add_column(column, no_wrap=True)
    table.add_column("this run", justify="right")
    table.add_column("all time", justify="right")
    for row in _assignments(tally, engine):
        table.add_row(*_row(*row.values()))
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


class _BadLine(Exception):
    """A line that is not one JSON value."""


def _parse_line(line: bytes | None) -> Any:
    """One JSON Lines line as a JSON value; ``_BadLine`` saying what is wrong with it."""
    if line is None:
        raise _BadLine(f"the line is longer than {MAX_LINE_BYTES} bytes, the most an event may take")
    try:
        return parse_json(line)
    except NotJSON as exc:
        raise _BadLine(str(exc)) from None


@main.command()
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
    out, err = Console(), Console(stderr=True)
    total = sum(1 for _ in _lines(events))
    tally = Tally()
    rejected: list[dict[str, Any]] = []
    show_progress = out.is_terminal and total >= PROGRESS_MIN_LINES and not quiet and not as_json
    with Progress(console=out, disable=not show_progress, transient=True) as progress:
        task = progress.add_task("routing", total=total)
        for number, line in _lines(events):
            progress.advance(task)
            try:
                tally.add(engine.handle(_parse_line(line)))
            except StoreError:
                # Not this line's fault, and the next lines would fail alike (the engine
                # already retried what passes): stop, as `error: ...` (see with_engine).
                raise
            except (_BadLine, SalesbotError) as exc:
                rejected.append({"line": number, "message": str(exc)})
                if not as_json:
                    # The message quotes the input (ids, values) and the file name: escaped.
                    err.print(
                        escape(f"{events}:{number}: {exc}"), markup=False, highlight=False, soft_wrap=True
                    )
    if as_json:
        _echo_json(
            {
                "events": total,
                "statuses": dict(sorted(tally.statuses.items())),
                "rejected": rejected,
                "assignments": _assignments(tally, engine),
            }
        )
    elif not quiet:
        _print_tally(out, tally, engine, total, len(rejected))
    if rejected:
        raise SystemExit(1)


@main.command()
@rulesets_option
@json_option
def validate(rulesets: Path, as_json: bool) -> None:
    """Check every ruleset file of a folder; list the bots, or every problem found."""
    try:
        registry = make_plugin_manager()
        for failure in registry.failures:
            _warn(str(failure))
        rules = load_rulesets(rulesets, registry.catalog(), conditions=_conditions_setting())
    except RulesetError as exc:
        _fail("\n".join(str(problem) for problem in exc.problems))
    except SalesbotError as exc:
        _fail(str(exc))
    bots = [_bot_fields(rules, account, bot, bot.active) for (account, _), bot in rules.bots.items()]
    if as_json:
        _echo_json({"rulesets": str(rulesets), "bots": bots})
        return
    out = Console()
    out.print(
        _bots_table(out, f"{len(bots)} bots in {rulesets}", bots, account_column=True, active_label="active")
    )
    click.echo(f"conditions: {rules.conditions.description}")


@main.command()
@click.argument("folder", metavar="[DIR]", default=DEFAULT_RULESETS, type=click.Path(path_type=Path))
def init(folder: Path) -> None:
    """Write a commented rulesets folder to start from into DIR (default: rulesets).

    One account, a few users and one bot, with every common option shown commented out;
    it validates as written. Existing files are never overwritten.
    """
    try:
        written = write_starter(folder)
    except SalesbotError as exc:
        _fail(str(exc))
    for path in written:
        click.echo(escape(f"wrote {path}"))
    click.echo(escape(f"check it with: salesbot validate -r {folder}"))


@main.command()
@with_engine
@account_option
@json_option
def bots(engine: Engine, account: str, as_json: bool) -> None:
    """List the bots of an account and whether each is active now (after switches)."""
    rows = [_bot_fields(engine.rules, account, bot, active) for bot, active in engine.bots(account)]
    enabled = engine.rules.account_settings(account).enabled
    if as_json:
        _echo_json({"account": account, "enabled": enabled, "bots": rows})
        return
    out = Console()
    title = f"{len(rows)} bots of account {account!r}"
    out.print(_bots_table(out, title, rows, account_column=False, active_label="active now"))
    if not enabled:
        out.print(
            escape(
                f"The Sales Bot add-on is switched off for account {account!r}: no bot fires "
                "and none is offered as an owner."
            ),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@main.group()
def bot() -> None:
    """Switch a bot on or off (overrides its ruleset's 'active' until switched again)."""


def _switch(engine: Engine, account: str, bot_id: str, active: bool) -> None:
    engine.set_bot_active(account, bot_id, active)
    click.echo(escape(f"bot {bot_id!r} of account {account!r} is now {'enabled' if active else 'disabled'}"))


@bot.command()
@click.argument("bot_id", metavar="BOT")
@with_engine
@account_option
def enable(engine: Engine, bot_id: str, account: str) -> None:
    """Switch BOT on."""
    _switch(engine, account, bot_id, True)


@bot.command()
@click.argument("bot_id", metavar="BOT")
@with_engine
@account_option
def disable(engine: Engine, bot_id: str, account: str) -> None:
    """Switch BOT off: it no longer fires and is not offered as an owner."""
    _switch(engine, account, bot_id, False)


@main.command()
@entity_argument
@with_engine
@account_option
@json_option
def options(engine: Engine, entity: str, account: str, as_json: bool) -> None:
    """The bots a host offers in the Owner field of ENTITY records, one per line.

    ENTITY is deal, person, company or task. Prints nothing when no bot is offered.
    """
    offered = engine.owner_options(account, cast(EntityType, entity))
    if as_json:
        _echo_json([{"owner": bot.owner_ref, "id": bot.id, "name": bot.display_name} for bot in offered])
        return
    for bot in offered:
        click.echo(f"{bot.owner_ref}\t{escape(bot.display_name)}")


def _show_value(value: object) -> str:
    """A field's value on one line: text as it is, a list of texts joined, others as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) if value else "(none)"
    return json.dumps(value, ensure_ascii=False)


@main.command()
@entity_argument
@click.argument("record_id")
@reading_engine
@account_option
@json_option
def show(engine: Engine, entity: str, record_id: str, account: str, as_json: bool) -> None:
    """Show a stored record: its owners, tags, other fields and wall.

    ENTITY is deal, person, company or task.
    """
    record = engine.record(account, cast(EntityType, entity), record_id)
    if record is None:
        _fail(f"no {entity} record {record_id!r} in account {account!r}")
    wall = engine.wall(account, cast(EntityType, entity), record_id)
    if as_json:
        notes = [note.model_dump(mode="json") for note in wall]
        _echo_json({"account": account, "record": record.model_dump(mode="json"), "wall": notes})
        return
    lines = [
        f"{entity} {record_id} in account {account!r}",
        f"owners: {_show_value(record.owners)}",
        f"tags: {_show_value(record.tags)}",
    ]
    data = record.model_dump(
        mode="json", exclude={"entity", "id", "owners", "tags", "fields"}, exclude_none=True
    )
    lines += [f"{name}: {_show_value(value)}" for name, value in data.items()]
    lines += [f"fields.{name}: {_show_value(value)}" for name, value in record.fields.items()]
    lines.append(f"wall: {len(wall)} note{'' if len(wall) == 1 else 's'}")
    lines += [f"  {note.created_at}  bot:{note.bot}  {note.text}" for note in wall]
    # Titles, fields and notes come from the CRM: a control character is shown escaped.
    click.echo("\n".join(map(escape, lines)))


@main.command()
@entity_argument
@click.argument("record_id")
@reading_engine
@account_option
@json_option
def explain(engine: Engine, entity: str, record_id: str, account: str, as_json: bool) -> None:
    """Say why a record has its owners: every event, bot, condition, candidate and pick.

    ENTITY is deal, person, company or task.
    """
    outcomes = engine.explain(account, entity, record_id)
    if not outcomes:
        _fail(f"salesbot has processed no event for {entity} {record_id!r} in account {account!r}")
    if as_json:
        _echo_json(
            {
                "account": account,
                "entity": entity,
                "id": record_id,
                "outcomes": [outcome.model_dump(mode="json") for outcome in outcomes],
            }
        )
        return
    click.echo("\n".join(escape(line) for outcome in outcomes for line in outcome.explain()))


@main.command()
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
    if engine.rules.bot(account, bot_id) is None:
        _fail(f"no bot {bot_id!r} in account {account!r}")
    outcomes = engine.assign_list(account, cast(EntityType, entity), record_ids, bot_id, operation)
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


@main.group()
def outbox() -> None:
    """Notifications to users waiting to be delivered by the host."""


@outbox.command(name="list")
@with_store(readonly=True)
@click.option(
    "--account", "-a", default=None, help="Only this account's notifications (default: every account)."
)
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(min=1, max=MAX_OUTBOX_LIMIT),
    help="At most this many, oldest first.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, no table.")
def outbox_list(store: Store, account: str | None, limit: int, as_json: bool) -> None:
    """List pending notifications, oldest first."""
    pending = store.pending_notifications(account, check_outbox_limit(limit))
    if as_json:
        for notification in pending:
            click.echo(notification.model_dump_json())
        return
    table = Table(title=f"{len(pending)} pending notifications")
    for column in ("id", "account", "user", "record", "text", "created_at"):
        table.add_column(column)
    for n in pending:
        table.add_row(*_row(n.id, n.account, n.user, f"{n.entity} {n.record_id}", n.text, n.created_at))
    Console().print(table)


@outbox.command(name="mark-delivered")
@click.argument("ids", metavar="ID...", nargs=-1, required=True, type=int)
@with_store(readonly=False)
@account_option
def mark_delivered_command(store: Store, ids: tuple[int, ...], account: str) -> None:
    """Mark the notifications of an account with these ids delivered."""
    done = mark_delivered(store, account, ids)
    click.echo(f"marked {len(done.marked)} of {len(done.marked) + len(done.not_pending)} delivered")
    if done.not_pending:
        missing = ", ".join(map(str, done.not_pending))
        click.echo(f"not pending or not in account {account!r}: {missing}")


#: The widest bar of ``salesbot simulate``, in characters.
SIMULATE_BAR_WIDTH = 40


@main.command(name="simulate")
@click.argument("bot_id", metavar="BOT")
@rulesets_option
@db_option
@account_option
@click.option(
    "--count",
    "-n",
    type=click.IntRange(min=1),
    default=None,
    help=f"Simulate this many synthetic records.  [default: {DEFAULT_COUNT}]",
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
    if count is not None and records is not None:
        raise click.UsageError("--count and --records cannot be used together")
    try:
        result = simulate(rulesets, db, account, bot_id, records or count or DEFAULT_COUNT)
    except SalesbotError as exc:
        _fail(str(exc))
    for failure in result.plugin_failures:
        _warn(failure)
    bot = result.bot
    if records is None and bot.trigger.where is not None:
        _warn(
            f"bot {bot.id!r} fires only on records matching its trigger.where, which synthetic "
            "records may not: simulate it with --records FILE"
        )
    if as_json:
        _echo_json(
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


@main.command()
@click.option("--indent", type=click.IntRange(0, 8), default=2, show_default=True, help="JSON indentation.")
def schema(indent: int) -> None:
    """Print the JSON Schema of a ruleset file, with the loaded plugins' sections.

    Save it and point an editor at it: a first line
    ``# yaml-language-server: $schema=salesbot-ruleset.schema.json`` in a YAML ruleset
    file makes VS Code's YAML extension complete and check it as you type.
    """
    from .schema import ruleset_schema

    try:
        registry = make_plugin_manager()
        for failure in registry.failures:
            _warn(str(failure))
        catalog = registry.catalog()
    except SalesbotError as exc:
        _fail(str(exc))
    click.echo(json.dumps(ruleset_schema(catalog), indent=indent or None, ensure_ascii=False))


@main.group()
def token() -> None:
    """API tokens of `salesbot serve`: one per client and account, shown once."""


@token.command(name="create")
@with_store(readonly=False)
@click.option("--account", "-a", default=None, help="The account the token acts for.")
@click.option("--admin", is_flag=True, help="An admin token: it acts for every account.")
@click.option("--name", required=True, help="What the token is for, e.g. crm-prod (unique in the account).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(SCOPES),
    help="What it may do; repeat for several.  [default: all: events, read, manage]",
)
def token_create(store: Store, account: str | None, admin: bool, name: str, scopes: tuple[str, ...]) -> None:
    """Create a token and print its secret: the only time it is shown (only its SHA-256
    is stored)."""
    if admin == (account is not None):
        raise click.UsageError("give exactly one of --account ACCOUNT and --admin")
    secret = create_token(store, ADMIN_ACCOUNT if admin else cast(str, account), name, scopes or SCOPES)
    click.echo(secret)
    _warn("this is the only time the token is shown: store it in the client's secret store now")


@token.command(name="list")
@with_store(readonly=True)
@click.option("--account", "-a", default=None, help="Only this account's tokens ('*': admin tokens).")
@json_option
def token_list(store: Store, account: str | None, as_json: bool) -> None:
    """List tokens (never their secrets): account, name, scopes, created, revoked."""
    rows: list[dict[str, Any]] = [
        {
            "account": t.account,
            "name": t.name,
            "scopes": list(t.scopes),
            "created_at": t.created_at,
            "revoked_at": t.revoked_at,
        }
        for t in store.tokens(account)
    ]
    if as_json:
        _echo_json(rows)
        return
    table = Table(title=f"{len(rows)} tokens")
    for column in ("account", "name", "scopes", "created", "revoked"):
        table.add_column(column)
    for row in rows:
        scopes = ", ".join(row["scopes"])
        table.add_row(*_row(row["account"], row["name"], scopes, row["created_at"], row["revoked_at"] or ""))
    Console().print(table)


@token.command(name="revoke")
@click.argument("name", metavar="NAME")
@with_store(readonly=False)
@click.option("--account", "-a", default=None, help="The token's account.")
@click.option("--admin", is_flag=True, help="Revoke an admin token.")
def token_revoke(store: Store, name: str, account: str | None, admin: bool) -> None:
    """Revoke the token NAME: requests bearing it are refused from now on."""
    if admin == (account is not None):
        raise click.UsageError("give exactly one of --account ACCOUNT and --admin")
    target = ADMIN_ACCOUNT if admin else cast(str, account)
    revoke_token(store, target, name)
    click.echo(escape(f"token {name!r} of account {target!r} is revoked"))


@main.group()
def signing() -> None:
    """Signed inbound requests: an account with a signing secret must sign its POSTs of
    events and list operations (Salesbot-Signature), beside sending its token."""


@signing.command(name="enable")
@with_store(readonly=False)
@click.option("--account", "-a", required=True, help="The account whose requests must be signed.")
def signing_enable(store: Store, account: str) -> None:
    """Add a signing secret to ACCOUNT and print it: the only time it is shown. Secrets it
    already has stay valid (rotate: enable, move the sender over, then `disable --old`)."""
    from .signing import new_signing_secret

    secret = new_signing_secret()
    store.add_signing_secret(account, secret)
    click.echo(secret)
    _warn(
        "this is the only time the secret is shown: store it in the sender's secret store now "
        f"(requests to account {account!r} must be signed from now on)"
    )


@signing.command(name="disable")
@with_store(readonly=False)
@click.option("--account", "-a", required=True, help="The account.")
@click.option("--old", is_flag=True, help="Remove only the older secrets, keeping the newest (rotation).")
def signing_disable(store: Store, account: str, old: bool) -> None:
    """Remove the signing secrets of ACCOUNT: its requests need no signature any more
    (with --old: the newest secret alone stays valid)."""
    removed = store.remove_signing_secrets(account, keep_newest=old)
    left = len(store.signing_secrets(account))
    click.echo(escape(f"removed {removed} signing secret(s) of account {account!r}; {left} left"))


@main.group()
def webhook() -> None:
    """Outbound webhooks: endpoints that receive an account's assignments and notifications."""


@webhook.command(name="add")
@click.argument("url", metavar="URL")
@with_store(readonly=False)
@click.option("--account", "-a", required=True, help="The account whose messages the endpoint receives.")
@click.option(
    "--events",
    default="assignment,notification",
    show_default=True,
    help="What it receives, comma-separated: assignment, notification.",
)
def webhook_add(store: Store, url: str, account: str, events: str) -> None:
    """Register the endpoint URL; prints its id, then its signing secret: the only time
    it is shown."""
    from .webhooks import add_webhook

    made = add_webhook(store, account, url, [e.strip() for e in events.split(",") if e.strip()])
    click.echo(made.id)
    click.echo(made.secret)
    _warn("this is the only time the signing secret is shown: store it with the receiver now")


@webhook.command(name="list")
@with_store(readonly=True)
@click.option("--account", "-a", default=None, help="Only this account's endpoints.")
@json_option
def webhook_list(store: Store, account: str | None, as_json: bool) -> None:
    """List endpoints (never their secrets): id, account, url, events, created."""
    from .webhooks import public

    rows = [public(w) for w in store.webhooks(account)]
    if as_json:
        _echo_json(rows)
        return
    table = Table(title=f"{len(rows)} webhooks")
    for column in ("id", "account", "url", "events", "created"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            *_row(row["id"], row["account"], row["url"], ", ".join(row["events"]), row["created_at"])
        )
    Console().print(table)


@webhook.command(name="remove")
@click.argument("webhook_id", metavar="WEBHOOK_ID")
@with_store(readonly=False)
@click.option("--account", "-a", required=True, help="The endpoint's account.")
def webhook_remove(store: Store, webhook_id: str, account: str) -> None:
    """Remove the endpoint WEBHOOK_ID and its deliveries."""
    from .webhooks import remove_webhook

    remove_webhook(store, account, webhook_id)
    click.echo(escape(f"webhook {webhook_id!r} of account {account!r} is removed"))


@webhook.command(name="failures")
@with_store(readonly=True)
@click.option("--account", "-a", required=True, help="The account.")
@click.option(
    "--limit", default=100, show_default=True, type=click.IntRange(1, 10_000), help="At most this many."
)
@json_option
def webhook_failures(store: Store, account: str, limit: int, as_json: bool) -> None:
    """Dead deliveries (their retries ran out), newest first: replay them with
    `salesbot webhook replay`."""
    rows = [
        d.model_dump(include={"id", "webhook_id", "kind", "attempts", "last_error", "created_at", "next_at"})
        for d in store.deliveries(account, "dead", limit)
    ]
    if as_json:
        _echo_json(rows)
        return
    table = Table(title=f"{len(rows)} dead deliveries")
    for column in ("delivery", "webhook", "kind", "attempts", "last error", "created", "given up"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            *_row(
                r["id"],
                r["webhook_id"],
                r["kind"],
                r["attempts"],
                r["last_error"] or "",
                r["created_at"],
                r["next_at"],
            )
        )
    Console().print(table)


@webhook.command(name="replay")
@click.argument("delivery_id", metavar="DELIVERY_ID")
@with_store(readonly=False)
@click.option("--account", "-a", required=True, help="The delivery's account.")
def webhook_replay(store: Store, delivery_id: str, account: str) -> None:
    """Queue a dead (or delivered) delivery again, with its retries; same delivery id."""
    from .webhooks import replay

    replay(store, account, delivery_id)
    click.echo(escape(f"delivery {delivery_id!r} of account {account!r} is queued again"))


@main.command()
@with_store(readonly=False)
@click.option("--once", is_flag=True, help="Send what is due now, then exit.")
@click.option(
    "--poll", default=1.0, show_default=True, type=click.FloatRange(0.05), help="Seconds between polls."
)
def deliver(store: Store, once: bool, poll: float) -> None:
    """Run a webhook delivery worker (for hosts that run it apart from `salesbot serve`,
    or beside it: workers never send the same delivery at once). Stop it with Ctrl-C."""
    import threading

    from .webhooks import Deliverer

    deliverer = Deliverer(store)
    try:
        if once:
            made = deliverer.run_until_idle()
            click.echo(f"{made} delivery attempt(s)")
            return
        try:
            deliverer.run(threading.Event(), poll)
        except KeyboardInterrupt:
            pass
    finally:
        deliverer.close()


@main.command()
@rulesets_option
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on."
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes, each with its own engine (use a PostgreSQL store for many).",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    default="json",
    show_default=True,
    help="Log lines on stderr: one JSON object per line, or text for a terminal.",
)
@click.option(
    "--deliver/--no-deliver",
    default=True,
    show_default=True,
    help="Run a webhook delivery worker in each worker process (or run `salesbot deliver` apart).",
)
@click.option(
    "--reload-interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds between checks of the rulesets folder; changed rules are reloaded (0: never).",
)
def serve(
    rulesets: Path,
    db: str,
    host: str,
    port: int,
    workers: int,
    log_format: str,
    deliver: bool,
    reload_interval: float,
) -> None:
    """Serve the engine over HTTP (see README, 'Service'): events, list operations,
    records, bots, the outbox and dry runs, per account, with bearer tokens
    (`salesbot token create`). The API is described at /docs and /openapi.json;
    Prometheus metrics are at /metrics, and each event is one log line on stderr."""
    try:
        import uvicorn

        from .observability import MULTIPROC_ENV, log_config
        from .service import ENV_DB, ENV_NO_DELIVERY, ENV_RELOAD, ENV_RULESETS
    except ImportError:
        _fail("salesbot serve needs the web server extra: pip install 'salesbot[server]'")
    try:
        # Fail here, with a readable error, on bad rules or an unreachable store; this
        # also creates or upgrades the store once, before the workers open it.
        with Engine(rulesets, db) as engine:
            for failure in engine.plugin_failures:
                _warn(failure)
    except SalesbotError as exc:
        _fail(str(exc))
    os.environ[ENV_RULESETS] = str(rulesets)
    os.environ[ENV_DB] = db
    os.environ[ENV_NO_DELIVERY] = "0" if deliver else "1"
    os.environ[ENV_RELOAD] = str(reload_interval)
    with contextlib.ExitStack() as stack:
        if workers > 1 and not os.environ.get(MULTIPROC_ENV):
            # Metrics of all workers, summed at each scrape: the workers write their samples
            # into a folder named before they start (and removed when serve stops).
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="salesbot-metrics-"))
            os.environ[MULTIPROC_ENV] = folder
        uvicorn.run(
            "salesbot_core.service:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=log_config(log_format),
        )
