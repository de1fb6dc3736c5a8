"""Sessions of the admin page: a signed cookie that names a token, never holds it.

The cookie carries the account and name of the token the admin signed in with, an
expiry and a random nonce, signed with HMAC-SHA256 under the server's session key. Every
request looks the token up again by account and name (token names are never reused), so
revoking the token ends its sessions at once. Signing out ends one session: its nonce is
kept in the store until the cookie expires (``Store.end_session``), so a copy of the cookie
made before is refused by every worker, which share nothing but the store. The CSRF token
of a session is an HMAC of its nonce: forms carry it, and a post without it (or with
another session's) is refused. Before sign-in, a short-lived cookie's nonce plays the same
part for the sign-in form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

#: The cookie of a signed-in session, and of the sign-in form's CSRF nonce.
SESSION_COOKIE = "salesbot_session"
SIGNIN_COOKIE = "salesbot_signin"
#: Seconds a session lasts; the sign-in form's nonce lasts as long.
SESSION_SECONDS = 12 * 3600
#: Cookies longer than this are not even parsed.
MAX_COOKIE = 1024


@dataclass(frozen=True)
class Session:
    """Who is signed in: the account (``*`` for an admin token) and name of a token."""

    account: str
    name: str
    expires: int
    nonce: str


def _sign(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def new_key() -> bytes:
    """A fresh session key (sessions signed with another key are not accepted)."""
    return secrets.token_bytes(32)


def issue(key: bytes, account: str, name: str, now: float | None = None) -> tuple[Session, str]:
    """A new session for a token, and its cookie value."""
    session = Session(account, name, int(now or time.time()) + SESSION_SECONDS, secrets.token_urlsafe(16))
    data = {"a": session.account, "n": session.name, "x": session.expires, "s": session.nonce}
    payload = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()
    return session, f"{payload}.{_sign(key, payload)}"


def read(key: bytes, cookie: str | None, now: float | None = None) -> Session | None:
    """The session a cookie carries, or None: absent, forged, malformed or expired."""
    if not cookie or len(cookie) > MAX_COOKIE or "." not in cookie:
        return None
    payload, _, signature = cookie.rpartition(".")
    if not hmac.compare_digest(signature, _sign(key, payload)):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload.encode()))
        session = Session(str(data["a"]), str(data["n"]), int(data["x"]), str(data["s"]))
    except (ValueError, KeyError, TypeError):
        return None
    return session if session.expires > (now or time.time()) else None


def csrf_token(key: bytes, nonce: str) -> str:
    """The CSRF token of the session (or sign-in form) with ``nonce``."""
    return _sign(key, f"csrf:{nonce}")


def csrf_ok(key: bytes, nonce: str | None, sent: str | None) -> bool:
    """Whether a form's ``sent`` CSRF token is the one of ``nonce``."""
    return bool(nonce and sent) and hmac.compare_digest(str(sent), csrf_token(key, str(nonce)))


def signin_nonce() -> str:
    """A nonce for the sign-in form's cookie."""
    return secrets.token_urlsafe(16)
