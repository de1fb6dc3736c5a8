"""``replay``: what if, the command over ``salesbot_core.replay``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..safetext import escape
from .common import account_option, cells, conditions_setting, db_option, echo_json, fail, json_option, warn

if TYPE_CHECKING:
    from rich.console import Console

    from ..replay import ReplayResult

#: Changed records listed on a terminal unless ``--show`` says otherwise (``--json`` lists all).
DEFAULT_SHOWN = 50


@click.command(name="replay")
@click.option(
    "--rulesets",
    "-r",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the candidate ruleset files.",
)
@db_option
@account_option
@click.option(
    "--since", default="30d", show_default=True, help="Start of the window: 30d, 12h, 2w or an ISO date/time."
)
@click.option("--until", default=None, help="End of the window (excluded), as --since.  [default: now]")
@click.option(
    "--show",
    type=click.IntRange(min=0),
    default=DEFAULT_SHOWN,
    show_default=True,
    help="Changed records listed in the table (--json lists all).",
)
@json_option
def replay_command(
    rulesets: Path, db: str, account: str, since: str, until: str | None, show: int, as_json: bool
) -> None:
    """What if: replay the account's stored events of a window under the candidate rules
    of --rulesets, writing nothing. Shows each bot's users as it was beside what it would
    have been, and the records whose owner would change, with both reasons. At most
    10,000 events (64 MiB) are replayed; payloads are kept for SALESBOT_EVENT_RETENTION_DAYS
    (90 by default). See docs/replay.md."""
    from datetime import UTC, datetime

    from rich.console import Console

    from .. import replay as bounds
    from ..engine import open_store
    from ..errors import SalesbotError
    from ..registry import make_plugin_manager
    from ..replay import parse_moment, replay_store

    now = datetime.now(UTC)
    try:
        start = parse_moment(since, now, "--since")
        end = parse_moment(until, now, "--until") if until is not None else now
        store = open_store(make_plugin_manager(), db, readonly=True)
        try:
            result = replay_store(store, rulesets, account, start, end, conditions=conditions_setting())
        finally:
            store.close()
    except SalesbotError as exc:
        fail(str(exc))
    for failure in result.plugin_failures:
        warn(failure)
    if result.truncated:
        warn(
            f"the window holds more than a replay takes ({bounds.MAX_REPLAY_EVENTS:,} events, "
            f"{bounds.MAX_REPLAY_BYTES // 2**20} MiB of payloads): the first {result.events:,} were replayed"
        )
    if as_json:
        echo_json(result.as_json())
        return
    _print(Console(), result, db, show)


def _print(out: Console, result: ReplayResult, db: str, show: int) -> None:
    from rich.table import Table
    from rich.text import Text

    window = f"{result.since:%Y-%m-%d %H:%M} to {result.until:%Y-%m-%d %H:%M} UTC"
    table = Table(
        title=Text(escape(f"What if, account {result.account!r}: {result.events} events")),
        caption=Text(escape(f"{window}; nothing was written to {db}")),
    )
    for column in ("bot", "user"):
        table.add_column(column, no_wrap=True)
    for column in ("as it was", "would be", "change"):
        table.add_column(column, justify="right")
    for bot, user, was, would in result.distribution():
        table.add_row(*cells(bot, user, was, would, f"{would - was:+d}" if would != was else ""))
    out.print(table)
    if result.changes:
        changes = Table(title=Text(f"{len(result.changes)} records would get other owners"))
        for column in ("event", "record", "owners were", "would be", "why it was", "why it would be"):
            changes.add_column(column, overflow="fold")
        for c in result.changes[:show]:
            changes.add_row(
                *cells(
                    c.event_id,
                    f"{c.entity} {c.record_id}",
                    ", ".join(c.actual) or "nobody",
                    ", ".join(c.candidate) or "nobody",
                    c.actual_reason,
                    c.candidate_reason,
                )
            )
        out.print(changes)
        if len(result.changes) > show:
            out.print(f"... and {len(result.changes) - show} more (--show N, or --json)", highlight=False)
    else:
        out.print("No record would get other owners.", highlight=False)
    for rejected in result.rejected:
        out.print(
            escape(f"rejected by the candidate rules: {rejected.message}"), markup=False, highlight=False
        )
    out.print(
        escape(
            result.candidate.line(result.events, "events", len(result.rejected), zero_rejected=False)
            + " (would be); "
            + result.actual.line(result.events, "events", 0, zero_rejected=False)
            + " (was)"
        ),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
