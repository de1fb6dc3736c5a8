"""Assign based on a field, as Frappe's "based on field" rule: the owner is the user named
in a field of the record, when that user is a candidate (in the pool and eligible);
otherwise a rotation picks, round robin unless the options name another.

::

    strategy: based_on_field
    options: {field: account_manager, rotation: least_loaded}

The field is read from the record's custom ``fields`` (``fields.account_manager``). The
rotation keeps its state as if it were the bot's strategy: a record the field decides
leaves it untouched, so switching a bot from ``round_robin`` to this strategy keeps its
place. The pick's reason says which path was taken and why.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from salesbot_core import Bot, Pick, SelectRequest, Strategy, hookimpl
from salesbot_core.catalog import Catalog
from salesbot_core.models import Model
from salesbot_core.safetext import excerpt
from salesbot_core.strategy import option_problems

NAME = "based_on_field"


class Options(Model):
    """Which field names the owner, and who picks when it names nobody who can take it."""

    #: A key of the record's ``fields`` holding a user id.
    field: str = Field(min_length=1, max_length=200)
    #: The strategy that picks when the field does not name a candidate.
    rotation: str = "round_robin"
    #: The rotation's own options (``weights`` for ``weighted_round_robin``).
    rotation_options: dict[str, Any] = Field(default_factory=dict)


def _check(bot: Bot, catalog: Catalog) -> list[tuple[str, str]]:
    options = Options.model_validate(bot.options)
    rotation = catalog.strategies.get(options.rotation)
    if rotation is None or rotation.name == NAME:
        available = ", ".join(sorted(name for name in catalog.strategies if name != NAME)) or "none"
        message = catalog.not_loaded("strategy", options.rotation)
        return [
            (
                "options.rotation",
                message or f"unknown rotation {excerpt(options.rotation)}; available: {available}",
            )
        ]
    return [
        ("options.rotation_options" + (f".{path}" if path else ""), message)
        for path, message in option_problems(rotation, options.rotation_options)
    ]


def _why_not(value: Any, request: SelectRequest) -> str:
    """Why the field's value is not the owner, in words for the audit."""
    if value is None or value == "":
        return "is empty"
    if not isinstance(value, str):
        return f"holds {excerpt(value)}, not a user id"
    if value not in request.bot.users:
        return f"names {excerpt(value)}, who is not in the pool"
    return f"names {excerpt(value)}, who is not eligible for this record"


def select(request: SelectRequest) -> Pick:
    """The user the field names if a candidate; else the rotation's pick."""
    options: Options = STRATEGY.options_of(request)
    where = f"fields.{options.field}"
    value = request.record.fields.get(options.field)
    if isinstance(value, str) and value in request.candidates:
        return Pick(user=value, state=request.state, reason=f"{where} names {value!r}, a candidate")
    rotation = request.strategies[options.rotation]
    bot = request.bot.model_copy(update={"strategy": rotation.name, "options": options.rotation_options})
    pick = rotation.select(
        SelectRequest(
            bot, request.record, request.candidates, request.state, request.context, request.strategies
        )
    )
    because = f"{where} {_why_not(value, request)}: {rotation.name}"
    return Pick(
        user=pick.user, state=pick.state, reason=f"{because}, {pick.reason}" if pick.reason else because
    )


STRATEGY = Strategy(
    NAME,
    select,
    "the user a record field names, when a candidate; otherwise a rotation (options.rotation)",
    options=Options,
    check=_check,
    # The rotation may be least_loaded, which reads the pool's open load.
    needs_load=True,
)


@hookimpl
def salesbot_register_strategies() -> list[Strategy]:
    return [STRATEGY]
