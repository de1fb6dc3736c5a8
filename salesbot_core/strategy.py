"""The selection-strategy contract: a pure function from (bot, record, candidates, state) to a pick.

A strategy never touches a database: the engine reads its state, calls ``select`` and
writes the new state in the same transaction as the assignment, so a strategy is
correct under crashes and concurrency without knowing about either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .models import Bot, Company, Deal, Person, Task

RecordT = Deal | Person | Company | Task


@dataclass(frozen=True)
class SelectRequest:
    """What a strategy is given to pick an owner."""

    bot: Bot
    record: RecordT
    #: Eligible users, in the bot's pool order; never empty.
    candidates: Sequence[str]
    #: The strategy's state for this bot as it last returned it (``{}`` the first time).
    state: Mapping[str, Any]


@dataclass(frozen=True)
class Pick:
    """A strategy's answer: the chosen user (one of the candidates) and its new state."""

    user: str
    state: Mapping[str, Any] = field(default_factory=dict)
    #: Why this user, in words shown by the audit trail.
    reason: str = ""


@dataclass(frozen=True)
class Strategy:
    """A named selection strategy, returned by ``salesbot_register_strategies``."""

    name: str
    select: Callable[[SelectRequest], Pick]
    description: str = ""
    #: Checks a bot's ``options``; returns a list of error messages (empty when valid).
    validate_options: Callable[[Mapping[str, Any]], list[str]] = lambda options: []
