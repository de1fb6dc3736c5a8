"""Outbound webhooks: the ``webhook`` endpoints of an account, their dead letters, and
``deliver``, a delivery worker apart from ``salesbot serve``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ..safetext import escape
from .common import add_columns, cells, echo_json, json_option, print_table, warn, with_store

if TYPE_CHECKING:
    from ..store import Store


@click.group()
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
    from ..http.delivery import add_webhook

    made = add_webhook(store, account, url, [e.strip() for e in events.split(",") if e.strip()])
    click.echo(made.id)
    click.echo(made.secret)
    warn("this is the only time the signing secret is shown: store it with the receiver now")


@webhook.command(name="list")
@with_store(readonly=True)
@click.option("--account", "-a", default=None, help="Only this account's endpoints.")
@json_option
def webhook_list(store: Store, account: str | None, as_json: bool) -> None:
    """List endpoints (never their secrets): id, account, url, events, created."""
    from rich.table import Table

    from ..http.delivery import public

    rows = [public(w) for w in store.webhooks(account)]
    if as_json:
        echo_json(rows)
        return
    table = Table(title=f"{len(rows)} webhooks")
    lines = [cells(r["id"], r["account"], r["url"], ", ".join(r["events"]), r["created_at"]) for r in rows]
    add_columns(table, ("id", "account", "url", "events", "created"), ("id", "account"), lines)
    for line in lines:
        table.add_row(*line)
    print_table(table)


@webhook.command(name="remove")
@click.argument("webhook_id", metavar="WEBHOOK_ID")
@with_store(readonly=False)
@click.option("--account", "-a", required=True, help="The endpoint's account.")
def webhook_remove(store: Store, webhook_id: str, account: str) -> None:
    """Remove the endpoint WEBHOOK_ID and its deliveries."""
    from ..http.delivery import remove_webhook

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
    from rich.table import Table

    rows = [
        d.model_dump(include={"id", "webhook_id", "kind", "attempts", "last_error", "created_at", "next_at"})
        for d in store.deliveries(account, "dead", limit)
    ]
    if as_json:
        echo_json(rows)
        return
    table = Table(title=f"{len(rows)} dead deliveries")
    lines = [
        cells(
            r["id"],
            r["webhook_id"],
            r["kind"],
            r["attempts"],
            r["last_error"] or "",
            r["created_at"],
            r["next_at"],
        )
        for r in rows
    ]
    columns = ("delivery", "webhook", "kind", "attempts", "last error", "created", "given up")
    add_columns(table, columns, ("delivery", "webhook"), lines)
    for line in lines:
        table.add_row(*line)
    print_table(table)


@webhook.command(name="replay")
@click.argument("delivery_id", metavar="DELIVERY_ID")
@with_store(readonly=False)
@click.option("--account", "-a", required=True, help="The delivery's account.")
def webhook_replay(store: Store, delivery_id: str, account: str) -> None:
    """Queue a dead (or delivered) delivery again, with its retries; same delivery id."""
    from ..http.delivery import replay

    replay(store, account, delivery_id)
    click.echo(escape(f"delivery {delivery_id!r} of account {account!r} is queued again"))


_SCHEDULE_FLAGS = {
    "attempts": ("--webhook-attempts", "Attempts of a webhook delivery before it is dead [default: 8]."),
    "first": (
        "--webhook-first-wait",
        "Seconds the first retry waits at most; each next one doubles [default: 30].",
    ),
    "cap": ("--webhook-max-wait", "The most seconds one retry waits [default: 3600]."),
}


def schedule_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The webhook retry schedule's options (``webhook_attempts``, ``webhook_first``,
    ``webhook_cap``), each also read from its ``SALESBOT_WEBHOOK_*`` variable."""
    from ..vocabulary import SCHEDULE_SETTINGS

    for name, (variable, kind, low, high) in reversed(SCHEDULE_SETTINGS.items()):
        flag, help_text = _SCHEDULE_FLAGS[name]
        bounds = click.IntRange(int(low), int(high)) if kind is int else click.FloatRange(low, high)
        option = click.option(
            flag, f"webhook_{name}", envvar=variable, show_envvar=True, type=bounds, help=help_text
        )
        command = option(command)
    return command


def schedule_settings(given: dict[str, Any]) -> dict[str, Any]:
    """``RetrySchedule`` fields from ``schedule_options``' values, those given only."""
    return {name.removeprefix("webhook_"): value for name, value in given.items() if value is not None}


@click.command()
@with_store(readonly=False)
@click.option("--once", is_flag=True, help="Send what is due now, then exit.")
@click.option(
    "--poll", default=1.0, show_default=True, type=click.FloatRange(0.05), help="Seconds between polls."
)
@schedule_options
def deliver(store: Store, once: bool, poll: float, **retries: Any) -> None:
    """Run a webhook delivery worker (for hosts that run it apart from `salesbot serve`,
    or beside it: workers never send the same delivery at once). Stop it with Ctrl-C."""
    import threading

    from ..http.delivery import Deliverer, RetrySchedule

    deliverer = Deliverer(store, schedule=RetrySchedule(**schedule_settings(retries)))
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
