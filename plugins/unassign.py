"""Unassign conditions, as Frappe's: a bot with an ``unassign`` section takes back the owner
it gave a record when the record matches the section's own ``where`` (Frappe's
``unassign_condition``: a deal whose status became ``lost``), or, without one, when the
record no longer matches the bot's ``trigger.where`` (its status left ``open``). It either
leaves the record without that owner (``then: remove``) or sends it back to the pool,
routed again by the account's bots (``then: reroute``).

Only an owner the bot gave is taken back, never one set by hand, and only once: the core
keeps which owners a bot gave. The ``unassign`` key of a ruleset bot belongs to this plugin
(``UNASSIGN``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from salesbot_core import Bot, Context, Release, hookimpl
from salesbot_core.catalog import Catalog
from salesbot_core.conditions import quoted
from salesbot_core.fields import FieldSpec
from salesbot_core.models import Model
from salesbot_core.templates import check_template

NOTE = "{bot.name} unassigned {owner.name}: the record no longer matches the bot's condition"
NOTIFY = "{record.label} no longer matches {bot.name}: it was taken off you"
#: The default texts when the section has a ``where`` of its own (the record now matches it).
WHERE_NOTE = "{bot.name} unassigned {owner.name}: the record meets the bot's unassign condition"
WHERE_NOTIFY = "{record.label} meets the unassign condition of {bot.name}: it was taken off you"


class Unassign(Model):
    """What a bot does when a record it gave an owner matches ``where``, or, without one,
    stops matching ``trigger.where``."""

    #: Frappe's unassign condition: the owner is taken back when the record matches it.
    #: None: when the record no longer matches the bot's ``trigger.where``.
    where: dict[str, Any] | None = None
    #: ``remove``: take the owner off; ``reroute``: take it off and route the record again.
    then: Literal["remove", "reroute"] = "remove"
    #: The wall note written on the record (a template, as ``actions.note``); null: none.
    note: str | None = Field(default=NOTE, min_length=1)
    #: The notification to the owner taken off (a template); null: none.
    notify: str | None = Field(default=NOTIFY, min_length=1)


def _check(unassign: Unassign | None, bot: Bot, catalog: Catalog) -> list[str]:
    if unassign is None:
        return []
    problems = [
        f"{part}: {message}"
        for part in ("note", "notify")
        if (text := getattr(unassign, part)) is not None
        for message in check_template(text)
    ]
    if unassign.where is None and bot.trigger.where is None:
        problems.append(
            "needs a where of its own or the bot's trigger.where: without a condition a record "
            "never stops matching"
        )
    return problems


def _conditions(unassign: Unassign | None) -> dict[str, Mapping[str, Any]]:
    return {"where": unassign.where} if unassign is not None and unassign.where is not None else {}


UNASSIGN: FieldSpec[Unassign | None] = FieldSpec(
    "bot",
    "unassign",
    Unassign | None,
    default=None,
    description="When a record the bot gave an owner matches 'where' (or, without it, no "
    "longer matches trigger.where): take that owner off (then: remove) or route the record "
    "again (then: reroute), with a wall note and a notification to the owner. None: owners stay.",
    check=_check,
    conditions=_conditions,
)


@hookimpl
def salesbot_ruleset_fields() -> list[FieldSpec[Unassign | None]]:
    return [UNASSIGN]


@hookimpl
def salesbot_stopped_matching(bot: Bot, matches: bool, context: Context) -> Release | None:
    unassign = UNASSIGN.get(bot)
    if unassign is None:
        return None
    note, notify = unassign.note, unassign.notify
    if unassign.where is not None:
        if not context.matches(bot, "unassign", "where"):
            return None
        reason = f"the record matches unassign.where {quoted(unassign.where)}"
        note = WHERE_NOTE if note == NOTE else note
        notify = WHERE_NOTIFY if notify == NOTIFY else notify
    elif matches:
        return None
    else:
        reason = "the record no longer matches trigger.where"
    return Release(reason=reason, reroute=unassign.then == "reroute", note=note, notify=notify)
