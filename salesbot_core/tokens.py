"""API tokens of ``salesbot serve``: one per client (a CRM, a script), per account.

A token is shown once, when it is created; the store keeps only the SHA-256 of its
secret, so a leaked database holds no usable token. A request's token is found by the
hash of what it sent, and the hashes are then compared in constant time
(``hmac.compare_digest``). An admin token (account ``*``) acts for every account.

Scopes say what a token may do: ``events`` (send events and list operations), ``read``
(records, explanations, bots, owner options, the outbox) and ``manage`` (switch bots,
acknowledge the outbox, simulate).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

from .errors import SalesbotError
from .models import Token
from .safetext import excerpt
from .store import Store
from .vocabulary import ADMIN_ACCOUNT as ADMIN_ACCOUNT
from .vocabulary import SCOPES as SCOPES

#: Every secret starts with this, so a leaked one is easy to recognise (and to scan for).
PREFIX = "sb_"
#: Token names and accounts are identifiers, as account and bot ids are.
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.@-]{1,200}$")


def new_secret() -> str:
    """A fresh secret: ``sb_`` and 256 random bits, URL-safe."""
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(secret: str) -> str:
    """The hex SHA-256 of a secret, as the store keeps it."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(store: Store, account: str, name: str, scopes: Iterable[str] = SCOPES) -> str:
    """Create a token for ``account`` (``ADMIN_ACCOUNT`` for an admin token) and return its
    secret, the only time it is seen. ``SalesbotError`` for an unknown scope, a bad name or
    account, or a name the account already has."""
    if account != ADMIN_ACCOUNT and not _IDENTIFIER.match(account):
        raise SalesbotError(f"account {excerpt(account)} is not an account id (letters, digits, _.@-)")
    if not _IDENTIFIER.match(name):
        raise SalesbotError(f"token name {excerpt(name)} must be 1 to 200 letters, digits or _.@-")
    wanted = list(dict.fromkeys(scopes))
    unknown = [scope for scope in wanted if scope not in SCOPES]
    if unknown or not wanted:
        raise SalesbotError(
            f"unknown scope {excerpt(unknown[0]) if unknown else '(none)'}: scopes are {', '.join(SCOPES)}"
        )
    secret = new_secret()
    if not store.add_token(account, name, token_hash(secret), [s for s in SCOPES if s in wanted]):
        raise SalesbotError(
            f"account {account!r} already has a token named {name!r} (names are never reused, "
            "revoked ones included: pick another name)"
        )
    return secret


def authenticate(store: Store, secret: str) -> Token | None:
    """The live token whose secret is ``secret``, or None (unknown, revoked, malformed)."""
    if not secret.startswith(PREFIX) or len(secret) > 200:
        return None
    digest = token_hash(secret)
    token = store.token(digest)
    if token is None or not hmac.compare_digest(token.hash, digest) or token.revoked_at is not None:
        return None
    return token


def revoke_token(store: Store, account: str, name: str) -> None:
    """Revoke a token: requests bearing it are refused from now on."""
    if not store.revoke_token(account, name):
        raise SalesbotError(f"account {account!r} has no token {name!r} that is not revoked already")


def covers(token: Token, account: str) -> bool:
    """Whether ``token`` acts for ``account`` (its own, or any for an admin token)."""
    return token.account in (ADMIN_ACCOUNT, account)
