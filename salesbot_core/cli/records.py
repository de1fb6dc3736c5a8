"""Reading a store: ``show`` and ``explain`` a record; the ``outbox`` of notifications."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, cast

import click

from ..safetext import escape
from ..vocabulary import MAX_OUTBOX_LIMIT
from .common import (
    account_option,
    cells,
    echo_json,
    entity_argument,
    fail,
    json_option,
    print_table,
    reading_engine,
    with_store,
)

if TYPE_CHECKING:
    from ..engine import Engine
    from ..models import EntityType
    from ..store import Store


def _show_value(value: object) -> str:
    """A field's value on one line: text as it is, a list of texts joined, others as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) if value else "(none)"
    return json.dumps(value, ensure_ascii=False)


@click.command()
@entity_argument
@click.argument("record_id")
@reading_engine
@account_option
@json_option
def show(engine: Engine, entity: str, record_id: str, account: str, as_json: bool) -> None:
    """Show a stored record: its owners, tags, other fields and wall.

    ENTITY is deal, person, company or task.
    """
    record = engine.record(account, cast("EntityType", entity), record_id)
    if record is None:
        fail(f"no {entity} record {record_id!r} in account {account!r}")
    wall = engine.wall(account, cast("EntityType", entity), record_id)
    if as_json:
        notes = [note.model_dump(mode="json") for note in wall]
        echo_json({"account": account, "record": record.model_dump(mode="json"), "wall": notes})
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


@click.command()
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
        fail(f"salesbot has processed no event for {entity} {record_id!r} in account {account!r}")
    if as_json:
        echo_json(
            {
                "account": account,
                "entity": entity,
                "id": record_id,
                "outcomes": [outcome.model_dump(mode="json") for outcome in outcomes],
            }
        )
        return
    click.echo("\n".join(escape(line) for outcome in outcomes for line in outcome.explain()))


@click.group()
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
    from rich.table import Table

    from ..engine import check_outbox_limit

    pending = store.pending_notifications(account, check_outbox_limit(limit))
    if as_json:
        for notification in pending:
            click.echo(notification.model_dump_json())
        return
    table = Table(title=f"{len(pending)} pending notifications")
    for column in ("id", "account", "user", "record", "text", "created_at"):
        table.add_column(column)
    for n in pending:
        table.add_row(*cells(n.id, n.account, n.user, f"{n.entity} {n.record_id}", n.text, n.created_at))
    print_table(table)


@outbox.command(name="mark-delivered")
@click.argument("ids", metavar="ID...", nargs=-1, required=True, type=int)
@with_store(readonly=False)
@account_option
def mark_delivered_command(store: Store, ids: tuple[int, ...], account: str) -> None:
    """Mark the notifications of an account with these ids delivered."""
    from ..engine import mark_delivered

    done = mark_delivered(store, account, ids)
    click.echo(f"marked {len(done.marked)} of {len(done.marked) + len(done.not_pending)} delivered")
    if done.not_pending:
        missing = ", ".join(map(str, done.not_pending))
        click.echo(f"not pending or not in account {account!r}: {missing}")
