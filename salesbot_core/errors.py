"""Errors a user can act on. Each carries a message that names what to fix; the CLI prints
the message and exits non-zero instead of showing a traceback."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .safetext import escape, excerpt


class SalesbotError(Exception):
    """Base of every error salesbot raises for a user's mistake."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a ruleset file: where it is and what is wrong."""

    file: str
    message: str
    bot: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        # File names, bot ids and field paths come from the admin's files: escaped, so a
        # control character in a file name cannot reach the terminal raw.
        where = [escape(self.file)]
        if self.bot is not None:
            where.append(f"bot {excerpt(self.bot, 80)}")
        if self.field:
            where.append(f"field {excerpt(self.field, 80)}")
        return f"{': '.join(where)}: {escape(self.message)}"


class RulesetError(SalesbotError):
    """One or more ruleset files are invalid; nothing of the set was loaded."""

    def __init__(self, problems: list[Problem], accounts: Mapping[str, str] | None = None):
        self.problems = problems
        #: The account each file that could be read declares, by the name its problems
        #: give it: whose problems they are (a file that could not be read has none).
        self.accounts: Mapping[str, str] = dict(accounts or {})
        super().__init__("\n".join(str(p) for p in problems))


class EventError(SalesbotError):
    """An event was rejected; nothing was changed."""


class PluginError(SalesbotError):
    """A plugin could not be loaded (a hook that matches no spec, a duplicate strategy...)."""


class IdempotencyConflict(EventError):
    """An event id already processed came again with a different payload: the first
    outcome stands, nothing was written (as Stripe answers a reused idempotency key)."""


class StoreError(SalesbotError):
    """The store could not be opened, or failed in a way retrying will not fix (a full
    disk, a corrupt file)."""


class TransientStoreError(StoreError):
    """The store aborted a transaction for a reason that passes: a deadlock, a
    serialization failure, a lost connection, a server restarting. Running the same
    event again is safe (it is idempotent); the engine retries with backoff first."""


class StaleVersion(SalesbotError):
    """A change to an account's rules was made on a version that is no longer the
    current one (optimistic concurrency, as HTTP's ``If-Match``): nothing was written."""

    def __init__(self, account: str, expected: int, current: int):
        self.account, self.expected, self.current = account, expected, current
        super().__init__(
            f"account {excerpt(account)}: the rules are at version {current}, not {expected}; "
            "read them again and make the change on the current version"
        )
