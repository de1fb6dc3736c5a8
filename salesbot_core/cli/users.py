"""``salesbot user offboard`` and ``salesbot user activate``: a leaver's open records are
redistributed once, fairly; a user coming back gets new records again."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..safetext import escape
from .common import WHO, account_option, echo_json, json_option, reading_engine, with_engine

if TYPE_CHECKING:
    from ..engine import Engine


@click.group()
def user() -> None:
    """Switch users off and on, redistributing a leaver's open records."""


@user.command()
@click.argument("user_id", metavar="USER")
@with_engine
@account_option
@click.option(
    "--operation", required=True, help="Id of this offboarding: a rerun with it moves nothing twice."
)
@click.option("--to-bot", default=None, help="The bot for records whose own bot is gone or switched off.")
@click.option(
    "--batch", default=500, show_default=True, type=click.IntRange(1, 10_000), help="Records per commit."
)
@json_option
def offboard(
    engine: Engine, user_id: str, account: str, operation: str, to_bot: str | None, batch: int, as_json: bool
) -> None:
    """Switch USER off and redistribute every open record they own through the bot that
    assigned it (else --to-bot). Safe to run again after a crash: it finishes the rest."""
    from rich.console import Console
    from rich.progress import Progress

    out = Console()
    with Progress(console=out, disable=not out.is_terminal or as_json, transient=True) as bar:
        task = bar.add_task("redistributing", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = engine.offboard(
            account, user_id, operation, to_bot=to_bot, batch_size=batch, progress=advance, by=WHO
        )
    if as_json:
        echo_json({"account": account, "user": user_id, "operation": operation, **result.summary()})
        return
    click.echo(escape(f"user {user_id!r} of account {account!r} is switched off"))
    for bot_id, counts in result.moved().items():
        spread = ", ".join(f"{owner} {n}" for owner, n in counts.items())
        click.echo(escape(f"bot {bot_id}: {sum(counts.values())} records to {spread}"))
    for record in result.moved_records:
        how = [f"bot {record.bot}"] if record.bot else []
        if record.passed_on_from:
            how.append("passed on from {} {}".format(*record.passed_on_from))
        line = f"{record.entity} {record.id}: to {', '.join(record.owners)}"
        click.echo(escape(line + (f" ({', '.join(how)})" if how else "")))
    for entity, record_id, reason in result.left:
        click.echo(escape(f"{entity} {record_id}: stays with {user_id}: {reason}"))
    if result.remaining:
        click.echo(f"{result.remaining} records remain: run the same operation again")


@user.command()
@click.argument("user_id", metavar="USER")
@with_engine
@account_option
def activate(engine: Engine, user_id: str, account: str) -> None:
    """Switch USER on again: they get new records (nothing is pulled back)."""
    engine.set_user_active(account, user_id, True, by=WHO)
    click.echo(escape(f"user {user_id!r} of account {account!r} is switched on"))


@user.command(name="list")
@reading_engine
@account_option
@json_option
def list_users(engine: Engine, account: str, as_json: bool) -> None:
    """List the users of an account: active now, and who switched them on or off, when."""
    states = engine.users(account)
    if as_json:
        echo_json({"account": account, "users": [state.summary() for state in states]})
        return
    for state in states:
        line = f"{state.user.id}: {'active' if state.active else 'switched off'}"
        if state.switch is not None:
            verb = "on" if state.switch.active else "off"
            who, when = state.switch.by or "someone", state.switch.at or "an unknown time"
            line += f" (switched {verb} by {who} at {when})"
        click.echo(escape(line))
