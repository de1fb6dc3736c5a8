"""``salesbot tick``: hand on the records whose owners missed their SLA deadline."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import click

from ..safetext import escape
from .common import echo_json, fail, json_option, with_engine

if TYPE_CHECKING:
    from ..engine import Engine


def _instant(text: str | None) -> datetime | None:
    """``--now`` as an aware instant (a time without an offset is UTC), within the times
    an event may carry."""
    from ..errors import SalesbotError
    from ..limits import parse_instant

    if text is None:
        return None
    try:
        return parse_instant(text, "--now")
    except SalesbotError as exc:
        fail(str(exc))


@click.command()
@with_engine
@click.option("--now", default=None, metavar="ISO", help="The time to tick at (default: the clock).")
@click.option(
    "--batch", default=100, show_default=True, type=click.IntRange(1, 10_000), help="Items per transaction."
)
@json_option
def tick(engine: Engine, now: str | None, batch: int, as_json: bool) -> None:
    """Hand on every record whose SLA deadline has passed, each exactly once.

    Safe to run from cron on several hosts at once: workers take different items.
    """
    from ..models import Outcome

    results = engine.tick(_instant(now), batch_size=batch)
    outcomes = [r for r in results if isinstance(r, Outcome)]
    # An item the event path refused undid only itself (group commit): said, not fatal.
    refused = [str(r) for r in results if not isinstance(r, Outcome)]
    if as_json:
        echo_json(
            {
                "outcomes": [outcome.model_dump(mode="json") for outcome in outcomes],
                **({"refused": refused} if refused else {}),
            }
        )
        return
    for outcome in outcomes:
        reason = "; ".join(d.reason for d in outcome.decisions if d.reason)
        owners = ", ".join(outcome.owners_after) or "nobody"
        click.echo(escape(f"{outcome.entity} {outcome.record_id}: owners now {owners} ({reason})"))
    for message in refused:
        click.echo(escape(f"refused: {message}"), err=True)
    click.echo(f"{len(outcomes)} record{'' if len(outcomes) == 1 else 's'} handed on or kept")
