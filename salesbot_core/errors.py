"""Errors a user can act on. Each carries a message that names what to fix; the CLI prints
the message and exits non-zero instead of showing a traceback."""

from __future__ import annotations

from dataclasses import dataclass


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
        where = [self.file]
        if self.bot is not None:
            where.append(f"bot {self.bot!r}")
        if self.field:
            where.append(f"field {self.field!r}")
        return f"{': '.join(where)}: {self.message}"


class RulesetError(SalesbotError):
    """One or more ruleset files are invalid; nothing of the set was loaded."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class EventError(SalesbotError):
    """An event was rejected; nothing was changed."""


class PluginError(SalesbotError):
    """A plugin could not be loaded (a hook that matches no spec, a duplicate strategy...)."""


class StoreError(SalesbotError):
    """No store could be opened for the given location."""


class TransientStoreError(Exception):
    """A transaction lost a race the database resolved by aborting it (a deadlock, a
    serialization failure): running the same event again is safe and will succeed."""
