"""The ``salesbot`` command: process event files, check ruleset folders, and manage the
bots, records and outbox of a store, and serve them over HTTP.

User mistakes (a bad ruleset, a bad event line, a broken plugin, an unknown bot or record)
are printed as one readable ``error:`` line each and give a non-zero exit status, never a
traceback.

One module per group of commands. A module is imported only when one of its commands
runs or a help page lists it, and imports the engine, the models and rich inside its
commands: ``salesbot --help`` costs click and nothing else.
"""

from __future__ import annotations

import importlib

import click

from ..vocabulary import EVALUATOR_VARIABLE, EVALUATORS

#: Each command: the module (of this package) and the name it has there.
COMMANDS = {
    "run": ("events", "run"),
    "assign": ("events", "assign"),
    "simulate": ("events", "simulate_command"),
    "replay": ("replay", "replay_command"),
    "validate": ("rules", "validate"),
    "init": ("rules", "init"),
    "schema": ("rules", "schema"),
    "bots": ("rules", "bots"),
    "bot": ("rules", "bot"),
    "options": ("rules", "options"),
    "show": ("records", "show"),
    "explain": ("records", "explain"),
    "outbox": ("records", "outbox"),
    "token": ("access", "token"),
    "signing": ("access", "signing"),
    "webhook": ("delivery", "webhook"),
    "deliver": ("delivery", "deliver"),
    "serve": ("serve", "serve"),
    "tick": ("deadlines", "tick"),
    "user": ("users", "user"),
}


class LazyGroup(click.Group):
    """A group whose commands are imported by name when needed (see ``COMMANDS``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        module, name = where
        command = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup)
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
    import logging

    ctx.obj = {"conditions": conditions}
    # The connection pool logs each reconnection attempt while a PostgreSQL server
    # restarts; the engine retries those itself and reports what it can't ride out as an
    # `error:` line, so the pool's warnings would only be noise on stderr.
    logging.getLogger("psycopg").addHandler(logging.NullHandler())
