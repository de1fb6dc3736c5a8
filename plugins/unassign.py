"""Unassign conditions, as Frappe's: a bot with an ``unassign`` section takes back the owner
it gave a record when the record no longer matches its ``trigger.where`` (a deal whose
status left ``open``), and either leaves it without that owner (``then: remove``) or sends
it back to the pool, routed again by the account's bots (``then: reroute``).

Only an owner the bot gave is taken back, never one set by hand, and only once: the core
keeps which owners a bot gave. The ``unassign`` key of a ruleset bot belongs to this plugin
(``UNASSIGN``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from salesbot_core import Bot, Release, hookimpl
from salesbot_core.catalog import Catalog
from salesbot_core.fields import FieldSpec
from salesbot_core.models import Model
from salesbot_core.templates import check_template


class Unassign(Model):
    """What a bot does when a record it gave an owner stops matching ``trigger.where``."""

    #: ``remove``: take the owner off; ``reroute``: take it off and route the record again.
    then: Literal["remove", "reroute"] = "remove"
    #: The wall note written on the record (a template, as ``actions.note``); null: none.
    note: str | None = Field(
        default="{bot.name} unassigned {owner.name}: the record no longer matches the bot's condition",
        min_length=1,
    )
    #: The notification to the owner taken off (a template); null: none.
    notify: str | None = Field(
        default="{record.label} no longer matches {bot.name}: it was taken off you", min_length=1
    )


def _check(unassign: Unassign | None, bot: Bot, catalog: Catalog) -> list[str]:
    if unassign is None:
        return []
    problems = [
        f"{part}: {message}"
        for part in ("note", "notify")
        if (text := getattr(unassign, part)) is not None
        for message in check_template(text)
    ]
    if bot.trigger.where is None:
        problems.append("needs trigger.where: without a condition a record never stops matching")
    return problems


UNASSIGN: FieldSpec[Unassign | None] = FieldSpec(
    "bot",
    "unassign",
    Unassign | None,
    default=None,
    description="When a record the bot gave an owner no longer matches trigger.where: take "
    "that owner off (then: remove) or route the record again (then: reroute), with a wall "
    "note and a notification to the owner. None: owners stay.",
    check=_check,
)


@hookimpl
def salesbot_ruleset_fields() -> list[FieldSpec[Unassign | None]]:
    return [UNASSIGN]


@hookimpl
def salesbot_stopped_matching(bot: Bot, matches: bool) -> Release | None:
    unassign = UNASSIGN.get(bot)
    if unassign is None or matches:
        return None
    return Release(
        reason="the record no longer matches trigger.where",
        reroute=unassign.then == "reroute",
        note=unassign.note,
        notify=unassign.notify,
    )
