"""Who may call ``salesbot serve``: API ``token``s and the ``signing`` secrets of
signed inbound requests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import click

from ..safetext import escape
from ..vocabulary import ADMIN_ACCOUNT, SCOPES
from .common import cells, echo_json, json_option, print_table, warn, with_store

if TYPE_CHECKING:
    from ..store import Store


@click.group()
def token() -> None:
    """API tokens of `salesbot serve`: one per client and account, shown once."""


@token.command(name="create")
@with_store(readonly=False)
@click.option("--account", "-a", default=None, help="The account the token acts for.")
@click.option("--admin", is_flag=True, help="An admin token: it acts for every account.")
@click.option("--name", required=True, help="What the token is for, e.g. crm-prod (unique in the account).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(SCOPES),
    help="What it may do; repeat for several.  [default: all: events, read, manage]",
)
def token_create(store: Store, account: str | None, admin: bool, name: str, scopes: tuple[str, ...]) -> None:
    """Create a token and print its secret: the only time it is shown (only its SHA-256
    is stored)."""
    from ..tokens import create_token

    if admin == (account is not None):
        raise click.UsageError("give exactly one of --account ACCOUNT and --admin")
    secret = create_token(store, ADMIN_ACCOUNT if admin else cast(str, account), name, scopes or SCOPES)
    click.echo(secret)
    warn("this is the only time the token is shown: store it in the client's secret store now")


@token.command(name="list")
@with_store(readonly=True)
@click.option("--account", "-a", default=None, help="Only this account's tokens ('*': admin tokens).")
@json_option
def token_list(store: Store, account: str | None, as_json: bool) -> None:
    """List tokens (never their secrets): account, name, scopes, created, revoked."""
    from rich.table import Table

    rows: list[dict[str, Any]] = [
        {
            "account": t.account,
            "name": t.name,
            "scopes": list(t.scopes),
            "created_at": t.created_at,
            "revoked_at": t.revoked_at,
        }
        for t in store.tokens(account)
    ]
    if as_json:
        echo_json(rows)
        return
    table = Table(title=f"{len(rows)} tokens")
    for column in ("account", "name", "scopes", "created", "revoked"):
        table.add_column(column)
    for row in rows:
        scopes = ", ".join(row["scopes"])
        table.add_row(*cells(row["account"], row["name"], scopes, row["created_at"], row["revoked_at"] or ""))
    print_table(table)


@token.command(name="revoke")
@click.argument("name", metavar="NAME")
@with_store(readonly=False)
@click.option("--account", "-a", default=None, help="The token's account.")
@click.option("--admin", is_flag=True, help="Revoke an admin token.")
def token_revoke(store: Store, name: str, account: str | None, admin: bool) -> None:
    """Revoke the token NAME: requests bearing it are refused from now on."""
    from ..tokens import revoke_token

    if admin == (account is not None):
        raise click.UsageError("give exactly one of --account ACCOUNT and --admin")
    target = ADMIN_ACCOUNT if admin else cast(str, account)
    revoke_token(store, target, name)
    click.echo(escape(f"token {name!r} of account {target!r} is revoked"))


@click.group()
def signing() -> None:
    """Signed inbound requests: an account with a signing secret must sign its POSTs of
    events and list operations (Salesbot-Signature), beside sending its token."""


@signing.command(name="enable")
@with_store(readonly=False)
@click.option("--account", "-a", required=True, help="The account whose requests must be signed.")
def signing_enable(store: Store, account: str) -> None:
    """Add a signing secret to ACCOUNT and print it: the only time it is shown. Secrets it
    already has stay valid (rotate: enable, move the sender over, then `disable --old`)."""
    from ..http.signing import new_signing_secret

    secret = new_signing_secret()
    store.add_signing_secret(account, secret)
    click.echo(secret)
    warn(
        "this is the only time the secret is shown: store it in the sender's secret store now "
        f"(requests to account {account!r} must be signed from now on)"
    )


@signing.command(name="disable")
@with_store(readonly=False)
@click.option("--account", "-a", required=True, help="The account.")
@click.option("--old", is_flag=True, help="Remove only the older secrets, keeping the newest (rotation).")
def signing_disable(store: Store, account: str, old: bool) -> None:
    """Remove the signing secrets of ACCOUNT: its requests need no signature any more
    (with --old: the newest secret alone stays valid)."""
    removed = store.remove_signing_secrets(account, keep_newest=old)
    left = len(store.signing_secrets(account))
    click.echo(escape(f"removed {removed} signing secret(s) of account {account!r}; {left} left"))
