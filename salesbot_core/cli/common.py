"""What the commands share: the common options, the engine and store a command gets, and
how errors, warnings, JSON and table cells are printed.

Nothing heavy is imported here at module level (see the package docstring): the engine,
the store plugins and rich are imported when a command runs.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ..safetext import escape
from ..vocabulary import DEFAULT_RULESETS, DEFAULT_STORE, ENTITIES

if TYPE_CHECKING:
    from rich.text import Text

DEFAULT_ACCOUNT = "default"
#: Who a switch made from the command line was made by, as the store keeps it.
WHO = "cli"

rulesets_option = click.option(
    "--rulesets",
    "-r",
    default=DEFAULT_RULESETS,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of ruleset files.",
)
rules_from_option = click.option(
    "--rules-from",
    type=click.Choice(["folder", "store"]),
    default="folder",
    show_default=True,
    envvar="SALESBOT_RULES_FROM",
    help="Where the rules are: the --rulesets folder, or the store (published with "
    "`salesbot rules push` or the API; see docs/managing.md).",
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
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (see docs/cli.md, 'JSON output'), no table."
)


def fail(message: str) -> NoReturn:
    """Print each line of ``message`` as an ``error:`` line on stderr and exit 1."""
    from rich.console import Console
    from rich.text import Text

    err = Console(stderr=True)
    for line in message.splitlines() or [message]:
        # Messages quote ids, names and values from the input: escaped.
        err.print(Text.assemble(("error:", "bold red"), " ", escape(line)), highlight=False, soft_wrap=True)
    raise SystemExit(1)


def warn(message: str) -> None:
    from rich.console import Console
    from rich.text import Text

    Console(stderr=True).print(
        Text.assemble(("warning:", "yellow"), " ", escape(message)), highlight=False, soft_wrap=True
    )


def conditions_setting() -> str | None:
    """The evaluator named by ``salesbot --conditions``, if any."""
    context = click.get_current_context(silent=True)
    settings = context.find_object(dict) if context is not None else None
    return settings.get("conditions") if settings else None


def with_engine(command: Callable[..., Any], *, readonly: bool = False) -> Callable[..., Any]:
    """Give a command the ``--rulesets`` and ``--db`` options and an open ``Engine``.

    The command gets the engine as its first argument instead of those two options. A
    ruleset or store that cannot be opened, and any ``SalesbotError`` the command raises,
    is printed as ``error: <message>`` with exit status 1; the engine is always closed.
    With ``readonly`` the store is opened for reading only (see ``reading_engine``).
    """

    @rulesets_option
    @rules_from_option
    @db_option
    @functools.wraps(command)
    def wrapper(rulesets: Path, rules_from: str, db: str, **kwargs: Any) -> Any:
        rules = rulesets if rules_from == "folder" else None
        return _with_open_engine(rules, db, readonly, command, kwargs)

    return wrapper


def with_store_rules(command: Callable[..., Any]) -> Callable[..., Any]:
    """``with_engine`` for the commands that edit the rules kept in the store (``salesbot
    rules push``, ``restore``...): only ``--db``, and an engine on the store's rules."""

    @db_option
    @functools.wraps(command)
    def wrapper(db: str, **kwargs: Any) -> Any:
        return _with_open_engine(None, db, False, command, kwargs)

    return wrapper


def _with_open_engine(
    rules: Path | None, db: str, readonly: bool, command: Callable[..., Any], kwargs: dict[str, Any]
) -> Any:
    """``command(engine, **kwargs)`` on an engine opened and closed here, each
    ``SalesbotError`` printed by ``fail``."""
    from ..engine import Engine
    from ..errors import SalesbotError

    try:
        engine = Engine(rules, db, readonly=readonly, conditions=conditions_setting())
    except SalesbotError as exc:
        fail(str(exc))
    for failure in engine.plugin_failures:
        warn(failure)
    with engine:
        try:
            return command(engine, **kwargs)
        except SalesbotError as exc:
            fail(str(exc))


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
            from ..engine import open_store
            from ..errors import SalesbotError
            from ..registry import make_plugin_manager

            try:
                registry = make_plugin_manager()
                for failure in registry.failures:
                    warn(str(failure))
                store = open_store(registry, db, readonly)
            except SalesbotError as exc:
                fail(str(exc))
            try:
                return command(store, **kwargs)
            except SalesbotError as exc:
                fail(str(exc))
            finally:
                store.close()

        return wrapper

    return decorate


def echo_json(data: object) -> None:
    """One JSON document on stdout. ``ensure_ascii`` writes every character outside
    ASCII as a ``\\u`` escape, so nothing from the input reaches the terminal raw
    (``escape`` then finds nothing left to escape: it is the same rule as elsewhere)."""
    click.echo(escape(json.dumps(data, ensure_ascii=True)))


def cells(*values: object) -> list[Text]:
    """Table cells shown as they are: no rich markup in names, paths or texts, and control
    characters escaped."""
    from rich.text import Text

    return [Text(escape(str(value))) for value in values]


def add_columns(
    table: Any, columns: Sequence[str], ids: Sequence[str], rows: Sequence[Sequence[object]]
) -> None:
    """The columns of ``table``: those named in ``ids`` as wide as their longest cell and
    never cut (a user copies an id into the next command), the others folded to fit."""
    for i, column in enumerate(columns):
        if column in ids:
            width = max(len(str(row[i])) for row in rows) if rows else 0
            table.add_column(column, no_wrap=True, min_width=max(width, len(column)))
        else:
            table.add_column(column, overflow="fold")


def print_table(table: Any) -> None:
    """A rich table on stdout."""
    from rich.console import Console

    Console().print(table)
