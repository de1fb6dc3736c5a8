"""Signed webhooks, both ways, as Stripe and GitHub sign theirs.

A request is signed with HMAC-SHA256, keyed by a shared secret, over the timestamp, a
dot and the raw body (``f"{timestamp}.{body}"``), sent in one header::

    Salesbot-Signature: t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

``t`` is the Unix time of signing; ``v1`` the hex digest. Several ``v1=`` may be sent
while a secret is rotated (one signature per secret): a request is valid when any of
them is the signature of any secret in force. A timestamp more than
``TOLERANCE_SECONDS`` away from the receiver's clock is refused (a replay), and digests
are compared in constant time (``hmac.compare_digest``).

Secrets are kept as they are in the store, or in the environment of ``salesbot serve``
(``SALESBOT_SIGNING_SECRET_<ACCOUNT>``, see ``environment_secrets``), never in ruleset
files, which go into git: a signature can only be checked, or made, with the secret
itself, so unlike an API token it can't be kept as a hash. Guard the database as you
guard the secrets.

Inbound: an account with a signing secret (``salesbot signing enable``) must sign its
``POST`` requests of events and list operations, beside sending its token. Outbound:
each webhook endpoint has its own secret, and every delivery is signed with it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable, Mapping

from ..errors import SalesbotError

#: The header a signature travels in.
SIGNATURE_HEADER = "Salesbot-Signature"
#: The largest gap, in seconds, between a signature's timestamp and the receiver's clock.
TOLERANCE_SECONDS = 300
#: Every signing secret starts with this, so a leaked one is easy to recognise.
SECRET_PREFIX = "whsec_"
#: ``SALESBOT_SIGNING_SECRET_<ACCOUNT>`` holds an account's inbound signing secrets.
ENV_PREFIX = "SALESBOT_SIGNING_SECRET_"


class SignatureError(SalesbotError):
    """A request whose signature is missing, malformed, stale or wrong: why, in words."""


def new_signing_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 256 random bits, URL-safe."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def environment_name(account: str) -> str:
    """The environment variable of ``account``'s signing secrets: ``ENV_PREFIX`` and the
    account id in capitals, each character other than a letter or digit made ``_``
    (``acme-eu`` reads ``SALESBOT_SIGNING_SECRET_ACME_EU``)."""
    return ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", account.upper())


def environment_secrets(environ: Mapping[str, str], account: str) -> list[str]:
    """``account``'s signing secrets from ``environ``: its variable's value, split at commas
    (several while a secret is rotated), blanks dropped."""
    value = environ.get(environment_name(account), "")
    return [key.strip() for key in value.split(",") if key.strip()]


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` keyed by the secret's UTF-8 bytes."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(keys: Iterable[str], body: bytes, timestamp: int | None = None) -> str:
    """The ``Salesbot-Signature`` value of ``body``: one ``v1=`` per secret in ``keys``."""
    t = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={t}", *(f"v1={signature(key, t, body)}" for key in keys)])


def parse_header(header: str) -> tuple[int, list[str]]:
    """The timestamp and the ``v1`` signatures of a header; ``SignatureError`` if malformed."""
    timestamp: int | None = None
    found: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            value = value.strip().lower()
            # compare_digest takes ASCII strings only: anything else can't match anyway.
            found.append(value if value.isascii() else "")
    if timestamp is None:
        raise SignatureError(f"the {SIGNATURE_HEADER} header has no timestamp (t=<unix seconds>)")
    if not found:
        raise SignatureError(f"the {SIGNATURE_HEADER} header has no signature (v1=<hex>)")
    return timestamp, found


def verify(
    header: str | None,
    body: bytes,
    keys: Iterable[str],
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> None:
    """Check a request's signature header against ``keys``: None when it is valid, else a
    ``SignatureError`` saying why (missing, malformed, stale, no signature matches)."""
    if not header:
        raise SignatureError(f"this account signs its requests: send a {SIGNATURE_HEADER} header")
    timestamp, sent = parse_header(header)
    clock = time.time() if now is None else now
    if abs(clock - timestamp) > tolerance:
        raise SignatureError(
            f"the {SIGNATURE_HEADER} timestamp is more than {tolerance} seconds away from "
            "the server's clock: sign each request when it is sent"
        )
    expected = [signature(key, timestamp, body) for key in keys]
    # Every pair is compared, so the time taken says nothing about which one matched.
    matched = False
    for digest in expected:
        for candidate in sent:
            matched |= hmac.compare_digest(digest, candidate)
    if not matched:
        raise SignatureError(
            f"no signature in the {SIGNATURE_HEADER} header matches the body with this "
            "account's signing secret"
        )
