"""Rules and bots: ``validate``, ``init`` and ``schema`` for ruleset folders; ``bots``,
``bot enable|disable`` and ``options`` for the bots of an account."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from ..safetext import escape
from ..vocabulary import DEFAULT_RULESETS
from .common import (
    WHO,
    account_option,
    conditions_setting,
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
    from rich.table import Table

    from ..engine import Engine
    from ..models import Bot, EntityType
    from ..rulesets import Rules


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
    from rich.table import Table
    from rich.text import Text

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


@click.command()
@rulesets_option
@json_option
def validate(rulesets: Path, as_json: bool) -> None:
    """Check every ruleset file of a folder; list the bots, or every problem found."""
    from rich.console import Console

    from ..errors import RulesetError, SalesbotError
    from ..registry import make_plugin_manager
    from ..rulesets import load_rulesets

    try:
        registry = make_plugin_manager()
        for failure in registry.failures:
            warn(str(failure))
        rules = load_rulesets(rulesets, registry.catalog(), conditions=conditions_setting())
    except RulesetError as exc:
        fail("\n".join(str(problem) for problem in exc.problems))
    except SalesbotError as exc:
        fail(str(exc))
    bots = [_bot_fields(rules, account, bot, bot.active) for (account, _), bot in rules.bots.items()]
    if as_json:
        echo_json({"rulesets": str(rulesets), "bots": bots})
        return
    out = Console()
    out.print(
        _bots_table(out, f"{len(bots)} bots in {rulesets}", bots, account_column=True, active_label="active")
    )
    click.echo(f"conditions: {rules.conditions.description}")


@click.command()
@click.argument("folder", metavar="[DIR]", default=DEFAULT_RULESETS, type=click.Path(path_type=Path))
def init(folder: Path) -> None:
    """Write a commented rulesets folder to start from into DIR (default: rulesets).

    One account, a few users and one bot, with every common option shown commented out;
    it validates as written. Existing files are never overwritten.
    """
    from ..errors import SalesbotError
    from ..starter import write_starter

    try:
        written = write_starter(folder)
    except SalesbotError as exc:
        fail(str(exc))
    for path in written:
        click.echo(escape(f"wrote {path}"))
    click.echo(escape(f"check it with: salesbot validate -r {folder}"))


@click.command()
@with_engine
@account_option
@json_option
def bots(engine: Engine, account: str, as_json: bool) -> None:
    """List the bots of an account and whether each is active now (after switches)."""
    from rich.console import Console

    rows = [_bot_fields(engine.rules, account, bot, active) for bot, active in engine.bots(account)]
    enabled = engine.rules.account_settings(account).enabled
    if as_json:
        echo_json({"account": account, "enabled": enabled, "bots": rows})
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


@click.group()
def bot() -> None:
    """Switch a bot on or off (overrides its ruleset's 'active' until switched again)."""


def _switch(engine: Engine, account: str, bot_id: str, active: bool) -> None:
    engine.set_bot_active(account, bot_id, active, by=WHO)
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


@click.command()
@entity_argument
@with_engine
@account_option
@json_option
def options(engine: Engine, entity: str, account: str, as_json: bool) -> None:
    """The bots a host offers in the Owner field of ENTITY records, one per line.

    ENTITY is deal, person, company or task. Prints nothing when no bot is offered.
    """
    offered = engine.owner_options(account, cast("EntityType", entity))
    if as_json:
        echo_json([{"owner": bot.owner_ref, "id": bot.id, "name": bot.display_name} for bot in offered])
        return
    for bot in offered:
        click.echo(f"{bot.owner_ref}\t{escape(bot.display_name)}")


@click.command()
@click.option("--indent", type=click.IntRange(0, 8), default=2, show_default=True, help="JSON indentation.")
def schema(indent: int) -> None:
    """Print the JSON Schema of a ruleset file, with the loaded plugins' sections.

    Save it beside the ruleset files (`salesbot schema > salesbot.schema.json`) and point
    an editor at it: a first line ``# yaml-language-server: $schema=salesbot.schema.json``
    in a YAML ruleset file (as `salesbot init` writes) makes VS Code's YAML extension
    complete and check it as you type.
    """
    from ..errors import SalesbotError
    from ..registry import make_plugin_manager
    from ..schema import ruleset_schema

    try:
        registry = make_plugin_manager()
        for failure in registry.failures:
            warn(str(failure))
        catalog = registry.catalog()
    except SalesbotError as exc:
        fail(str(exc))
    click.echo(json.dumps(ruleset_schema(catalog), indent=indent or None, ensure_ascii=False))
