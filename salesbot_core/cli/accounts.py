"""``salesbot account``: the operator's commands for the accounts whose rules the store keeps.

An account's standing (active or suspended, its plan, the add-on switched on or off) is
the operator's and is not part of its rules' versions: a restore never changes what an
account pays for. These commands change it directly in the store (``--db``); the rules
themselves are published with ``salesbot rules push`` or over the API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ..safetext import escape
from ..vocabulary import DEFAULT_PLAN, MAX_RATE, PLAN_NAMES
from .common import add_columns, cells, echo_json, fail, json_option, print_table, with_store

if TYPE_CHECKING:
    from ..store import AccountRow, Store

account_argument = click.argument("account", metavar="ACCOUNT")
plan_option = click.option("--plan", type=click.Choice(PLAN_NAMES), default=None, help="The account's plan.")


#: What ``--rate-limit`` and ``--rate-burst`` take to give an account serve's defaults again.
DEFAULT = "default"


#: ``--rate-limit`` or ``--rate-burst`` not given: not the same as ``default``.
UNCHANGED = object()


class OrDefault(click.ParamType):
    """A number within bounds, or the word ``default`` (read as None); ``UNCHANGED`` as it is."""

    name = "number|default"

    def __init__(self, number: click.FloatRange | click.IntRange):
        self.number = number

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is UNCHANGED:
            return value
        if value is None or (isinstance(value, str) and value.strip().lower() == DEFAULT):
            return None
        return self.number.convert(value, param, ctx)


@click.group()
def account() -> None:
    """Accounts kept in the store: create, list, suspend, change plan, delete (operator)."""


def _fields(row: AccountRow) -> dict[str, object]:
    return {
        "account": row.account,
        "status": row.status,
        "plan": row.plan,
        "enabled": row.enabled,
        "version": row.version,
        "rate_limit": row.rate_limit,
        "rate_burst": row.rate_burst,
    }


def _limit(row: AccountRow) -> str:
    """The account's own rate limit in words: ``5/s, burst 10``, ``none``, ``default``."""
    if row.rate_limit is None and row.rate_burst is None:
        return DEFAULT
    rate = DEFAULT if row.rate_limit is None else ("none" if row.rate_limit == 0 else f"{row.rate_limit:g}/s")
    return rate if row.rate_burst is None else f"{rate}, burst {row.rate_burst}"


def _say(row: AccountRow) -> None:
    enabled = "enabled" if row.enabled else "disabled"
    limit = _limit(row)
    own = "" if limit == DEFAULT else f", rate limit {limit}"  # serve's defaults: not said
    click.echo(
        escape(f"account {row.account!r}: {row.status}, {row.plan}, {enabled}, version {row.version}{own}")
    )


@account.command()
@account_argument
@with_store(readonly=False)
@plan_option
@click.option("--disabled", is_flag=True, help="The Sales Bot add-on starts switched off.")
def create(store: Store, account: str, plan: str | None, disabled: bool) -> None:
    """Add ACCOUNT, with no rules yet (version 0; the plan by default: professional)."""
    from pydantic import TypeAdapter, ValidationError

    from ..models import Identifier

    try:
        TypeAdapter(Identifier).validate_python(account)
    except ValidationError:
        fail(f"{account!r} is not an account id: letters, digits and _ . @ - only, at most 200")
    if not store.create_account(account, plan or DEFAULT_PLAN, not disabled):
        fail(f"account {account!r} already exists")
    _say(store.accounts(account)[0])


@account.command(name="list")
@with_store(readonly=True)
@json_option
def list_accounts(store: Store, as_json: bool) -> None:
    """The accounts kept in the store, with their standing, rules version and rate limit."""
    from rich.table import Table

    rows = store.accounts()
    if as_json:
        echo_json({"accounts": [_fields(row) for row in rows]})
        return
    columns = ["account", "status", "plan", "enabled", "version", "rate limit"]
    values = [
        [row.account, row.status, row.plan, "yes" if row.enabled else "no", row.version, _limit(row)]
        for row in rows
    ]
    table = Table(title="accounts")
    add_columns(table, columns, ["account"], values)
    for value in values:
        table.add_row(*cells(*value))
    print_table(table)


@account.command(name="set")
@account_argument
@with_store(readonly=False)
@plan_option
@click.option(
    "--suspend/--resume", "suspend", default=None, help="Refuse (or accept again) its tokens and events."
)
@click.option("--enable/--disable", "enable", default=None, help="Switch the Sales Bot add-on on or off.")
@click.option(
    "--rate-limit",
    type=OrDefault(click.FloatRange(0, MAX_RATE)),
    default=UNCHANGED,
    help="Its requests a second in `salesbot serve` (0: no limit; `default`: serve's --rate-limit).",
)
@click.option(
    "--rate-burst",
    type=OrDefault(click.IntRange(1, MAX_RATE)),
    default=UNCHANGED,
    help="Its requests at once over the rate (`default`: serve's --rate-burst).",
)
def set_account(
    store: Store,
    account: str,
    plan: str | None,
    suspend: bool | None,
    enable: bool | None,
    rate_limit: Any,
    rate_burst: Any,
) -> None:
    """Change ACCOUNT's standing: its plan, suspended or active, the add-on on or off, its
    rate limit."""
    limits: dict[str, Any] = {
        name: value
        for name, value in (("rate_limit", rate_limit), ("rate_burst", rate_burst))
        if value is not UNCHANGED
    }
    if plan is None and suspend is None and enable is None and not limits:
        fail(
            "nothing to change: give --plan, --suspend/--resume, --enable/--disable, --rate-limit "
            "or --rate-burst"
        )
    status = None if suspend is None else ("suspended" if suspend else "active")
    if not store.update_account(account, status=status, plan=plan, enabled=enable, limits=limits):
        fail(f"no account {account!r}")
    _say(store.accounts(account)[0])


@account.command()
@account_argument
@with_store(readonly=False)
@click.option("--yes", is_flag=True, help="Really delete it (there is no undo).")
def delete(store: Store, account: str, yes: bool) -> None:
    """Delete ACCOUNT and everything the store keeps of it: rules, versions, drafts,
    records, log, tokens and webhooks."""
    if not yes:
        fail(f"deleting account {account!r} removes its rules, versions, records and tokens: pass --yes")
    if not store.delete_account(account):
        fail(f"no account {account!r}")
    click.echo(escape(f"deleted account {account!r}"))
