"""The selection-strategy contract: a pure function from (bot, record, candidates, state) to a pick.

A strategy never touches a database: the engine reads its state, calls ``select`` and
writes the new state in the same transaction as the assignment, so a strategy is
correct under crashes and concurrency without knowing about either.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from .models import Bot, LinkRef, RecordT
from .safetext import excerpt

if TYPE_CHECKING:  # for type checkers only: the catalog is made of strategies
    from .catalog import Catalog


def _no_conditions(bot: Bot, key: str, path: str) -> bool:
    raise LookupError(f"no record to test bot {bot.id!r}'s {key}.{path} on: this context has no conditions")


@dataclass(frozen=True)
class Context:
    """What the engine read for a decision, handed to hooks as plain data.

    Hooks and strategies stay pure: anything from the store they need is read by the
    engine inside the event's transaction and passed in here.
    """

    #: When the record was saved (the event's ``at``, or the engine's clock), aware.
    now: datetime
    #: The stored records the record links to, by ``(entity, id)``.
    linked: Mapping[LinkRef, RecordT] = field(default_factory=dict)
    #: Open records of the record's entity owned by each pool user (strategies that
    #: declare ``needs_load`` only; empty otherwise).
    load: Mapping[str, int] = field(default_factory=dict)
    #: For each capped pool user, the counts their fields ask for (``usage_kinds``):
    #: records assigned in the current ``day``, ``week`` and ``month`` of the user's time
    #: zone, in the rolling ``last_24h`` and ``last_30_days``, and ``open``, the open
    #: records they own now.
    usage: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: ``matches(bot, key, path)``: whether the record matches the ``where`` condition a
    #: plugin's bot field declared (``FieldSpec.conditions``), on the ruleset's evaluator.
    #: The decider binds it to the record; ``LookupError`` in a context without one.
    matches: Callable[[Bot, str, str], bool] = _no_conditions


@dataclass(frozen=True)
class SelectRequest:
    """What a strategy is given to pick an owner."""

    bot: Bot
    record: RecordT
    #: Eligible users, in the bot's pool order; never empty.
    candidates: Sequence[str]
    #: The strategy's state for this bot as it last returned it (``{}`` the first time).
    state: Mapping[str, Any]
    context: Context = field(default_factory=lambda: Context(datetime.now(UTC)))
    #: Every registered strategy by name, for a strategy that hands the pick on to
    #: another (``based_on_field``'s rotation).
    strategies: Mapping[str, Strategy] = field(default_factory=dict)


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
    #: Left out, the strategy takes no options: any option is an error, since an option
    #: accepted and ignored silently hides an admin's typo or wrong strategy name.
    validate_options: Callable[[Mapping[str, Any]], list[str]] = None  # type: ignore[assignment]
    #: Set when ``select`` reads ``request.context.load``, so the engine counts it.
    needs_load: bool = False
    #: The pydantic model of a bot's ``options``: the loader validates them through it
    #: (errors name ``options.<field>``), ``salesbot schema`` describes them, and
    #: ``select`` reads them with ``options_of(request)``. Given, ``validate_options``
    #: defaults to no further checks.
    options: type[BaseModel] | None = None
    #: Checks of a bot that need the catalog (the strategy another one names); returns
    #: ``(field path, message)`` problems, the path under the bot (``options.rotation``).
    check: Callable[[Bot, Catalog], list[tuple[str, str]]] | None = None

    def __post_init__(self) -> None:
        if self.validate_options is None:
            check = (
                _no_more_checks
                if self.options is not None
                else functools.partial(_takes_no_options, self.name)
            )
            object.__setattr__(self, "validate_options", check)

    @property
    def takes_no_options(self) -> bool:
        """True for the default check: the strategy refuses any option."""
        check = self.validate_options
        return isinstance(check, functools.partial) and check.func is _takes_no_options

    def options_of(self, request: SelectRequest) -> Any:
        """The bot's options as an instance of ``options`` (the loader validated them)."""
        if self.options is None:
            raise TypeError(f"strategy {self.name!r} declares no options model")
        return self.options.model_validate(request.bot.options)


def option_problems(strategy: Strategy, options: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(path, message)`` problems of ``options`` for ``strategy``: through its options
    model (paths under the options) and its own checks (path ``""``)."""
    problems: list[tuple[str, str]] = []
    if strategy.options is not None:
        try:
            strategy.options.model_validate(options)
        except ValidationError as exc:
            for err in exc.errors():
                message = "unknown option" if err["type"] == "extra_forbidden" else str(err["msg"])
                problems.append((".".join(str(part) for part in err["loc"]), message))
    problems += [("", msg) for msg in strategy.validate_options(options)]
    return problems


def _no_more_checks(options: Mapping[str, Any]) -> list[str]:
    return []


def _takes_no_options(name: str, options: Mapping[str, Any]) -> list[str]:
    return [f"strategy {excerpt(name)} takes no options"] if options else []
