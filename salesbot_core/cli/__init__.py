"""The ``salesbot`` command: process event files, check ruleset folders, and manage the
bots, records and outbox of a store, and serve them over HTTP.

User mistakes (a bad ruleset, a bad event line, a broken plugin, an unknown bot or record)
are printed as one readable ``error:`` line each and give a non-zero exit status, never a
traceback.

One module per group of commands. A module is imported only when one of its commands
runs or shows its help, and imports the engine, the models and rich inside its commands:
``salesbot --help`` lists the commands from their summaries in ``COMMANDS`` and costs click
and nothing else.
"""

from __future__ import annotations

import importlib
import os
import sys
from gettext import gettext as _
from typing import Any

import click

from ..vocabulary import EVALUATOR_VARIABLE, EVALUATORS

#: Each command: the module (of this package), the name it has there, and its summary as
#: ``salesbot --help`` lists it. The summary is kept here so that listing the commands
#: imports none of them; a test checks it against each command's own help text.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("events", "run", "Process a JSON Lines file of EVENTS, one event per line."),
    "assign": (
        "events",
        "assign",
        "Set BOT as the owner of stored ENTITY records (a list operation), each its own pick.",
    ),
    "simulate": (
        "events",
        "simulate_command",
        "A dry run of BOT: who would get which records, writing nothing to the store.",
    ),
    "replay": (
        "replay",
        "replay_command",
        "What if: replay the account's stored events of a window under the candidate rules of "
        "--rulesets, writing nothing.",
    ),
    "validate": (
        "rules",
        "validate",
        "Check every ruleset file of a folder; list the bots, or every problem found.",
    ),
    "init": (
        "rules",
        "init",
        "Write a commented rulesets folder to start from into DIR (default: rulesets).",
    ),
    "schema": (
        "rules",
        "schema",
        "Print the JSON Schema of a ruleset file, with the loaded plugins' sections.",
    ),
    "bots": (
        "rules",
        "bots",
        "List the bots of an account and whether each is active now (after switches).",
    ),
    "bot": (
        "rules",
        "bot",
        "Switch a bot on or off (overrides its ruleset's 'active' until switched again).",
    ),
    "options": (
        "rules",
        "options",
        "The bots a host offers in the Owner field of ENTITY records, one per line.",
    ),
    "show": ("records", "show", "Show a stored record: its owners, tags, other fields and wall."),
    "explain": (
        "records",
        "explain",
        "Say why a record has its owners: every event, bot, condition, candidate and pick.",
    ),
    "outbox": ("records", "outbox", "Notifications to users waiting to be delivered by the host."),
    "token": (
        "access",
        "token",
        "API tokens of `salesbot serve`: one per client and account, shown once.",
    ),
    "signing": (
        "access",
        "signing",
        "Signed inbound requests: an account with a signing secret must sign its POSTs of events "
        "and list operations (Salesbot-Signature), beside sending its token.",
    ),
    "webhook": (
        "delivery",
        "webhook",
        "Outbound webhooks: endpoints that receive an account's assignments and notifications.",
    ),
    "deliver": (
        "delivery",
        "deliver",
        "Run a webhook delivery worker (for hosts that run it apart from `salesbot serve`, or "
        "beside it: workers never send the same delivery at once).",
    ),
    "serve": (
        "serve",
        "serve",
        "Serve the engine over HTTP (see docs/service.md): events, list operations, records, "
        "bots, the outbox and dry runs, per account, with bearer tokens (`salesbot token create`).",
    ),
    "tick": ("deadlines", "tick", "Hand on every record whose SLA deadline has passed, each exactly once."),
    "user": ("users", "user", "Switch users off and on, redistributing a leaver's open records."),
    "rules": (
        "rulebook",
        "rules",
        "Rules kept in the store: pull and push an account's files, and its versions.",
    ),
    "account": (
        "accounts",
        "account",
        "Accounts kept in the store: create, list, suspend, change plan, delete (operator).",
    ),
}


def _terminal_width() -> int | None:
    """The width click would give a help page, found without importing ``shutil`` (and
    with it zlib, bz2 and lzma): ``shutil.get_terminal_size``'s rule, then click's
    ``HelpFormatter`` clamp to 78 columns. ``None`` where click forces a width itself
    (``CliRunner``), so click's own rule applies there."""
    if click.formatting.FORCED_WIDTH is not None:
        return None
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return max(min(columns or 80, 80) - 2, 50)


class _Context(click.Context):
    """The root context: its help width, inherited by every subcommand's context."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.terminal_width is None and self.max_content_width is None:
            self.terminal_width = _terminal_width()


class LazyGroup(click.Group):
    """A group whose commands are imported by name when needed (see ``COMMANDS``)."""

    context_class = _Context

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        module, name, _summary = where
        command = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``salesbot --help``, as click writes it, from the summaries
        in ``COMMANDS``: a stand-in command with the summary as its help is shortened to
        the width exactly as the real one would be."""
        limit = formatter.width - 6 - max(map(len, COMMANDS))
        rows = [
            (name, click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit))
            for name in self.list_commands(ctx)
        ]
        with formatter.section(_("Commands")):  # click's heading, translated as click does
            formatter.write_dl(rows)


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
