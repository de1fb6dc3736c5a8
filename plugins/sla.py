"""SLA reassignment: a record its owner does not act on within a time moves on.

The ``sla`` key of a ruleset bot belongs to this plugin (``SLA``)::

    sla:
      within: 2h                 # 45m, 2h, 1d, 1h30m
      business_hours: true       # counted in the owner's working hours, zone and absences
      met_when:                  # any of these stops the clock
        updated_by_owner: true   # an updated event whose `by` is the owner
        where: {$neq: {stage: "new"}}
        closed: true
      then: next                 # next | fallback | bot:<other bot>
      max_reassignments: 2
      notify_previous: true

When the bot assigns a record, ``salesbot_due`` gives the deadline (the engine writes a
due item with the assignment); an event that meets ``met_when`` clears it
(``salesbot_sla_met``); ``salesbot tick`` hands on the items due (``salesbot_sla_missed``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field, field_validator

from salesbot_core import Bot, User, hookimpl
from salesbot_core.catalog import Catalog
from salesbot_core.fields import FieldSpec
from salesbot_core.models import BOT_PREFIX, DueItem, Escalation, Event, Model
from salesbot_core.strategy import Context, RecordT

from .availability import OUT_OF_OFFICE, WORKING_HOURS
from .business_hours import business_deadline

DURATION = re.compile(r"^(?:(\d{1,3})d)?(?:(\d{1,4})h)?(?:(\d{1,6})m)?$")
#: The longest SLA: a deadline further out is a typo, not a service level.
MAX_WITHIN = timedelta(days=366)


def parse_within(text: str) -> timedelta:
    """``2h``, ``30m``, ``1d``, ``1h30m`` as a duration (a day is 24 hours of counted time)."""
    match = DURATION.match(text)
    if not text or match is None:
        raise ValueError(f"{text!r} is not a duration such as 30m, 2h, 1d or 1h30m")
    days, hours, minutes = (int(part or 0) for part in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes)
    if not timedelta(0) < duration <= MAX_WITHIN:
        raise ValueError(f"{text!r} must be more than 0 and at most {MAX_WITHIN.days} days")
    return duration


class MetWhen(Model):
    """What stops the clock; any one of them does."""

    #: An ``updated`` event whose ``by`` is the owner.
    updated_by_owner: bool = True
    #: A ruleset condition on the record (as ``trigger.where``), run by the conditions evaluator.
    where: dict[str, Any] | None = None
    #: The record is closed (``open: false``).
    closed: bool = True


class Sla(Model):
    """How long the owner a bot picked has to act, and what happens when they don't."""

    within: str
    business_hours: bool = False
    met_when: MetWhen = Field(default_factory=MetWhen)
    then: str = Field(default="next", pattern=r"^(next|fallback|bot:[A-Za-z0-9_.@-]{1,200})$")
    max_reassignments: int = Field(default=1, ge=0, le=100)
    notify_previous: bool = False

    @field_validator("within")
    @classmethod
    def _duration(cls, within: str) -> str:
        parse_within(within)
        return within

    @property
    def duration(self) -> timedelta:
        return parse_within(self.within)


def _conditions(sla: Sla | None) -> dict[str, dict[str, Any]]:
    """``met_when.where``, checked and compiled by the loader as ``trigger.where`` is."""
    return {} if sla is None or sla.met_when.where is None else {"met_when.where": sla.met_when.where}


def _bot_refs(sla: Sla | None) -> dict[str, str]:
    """The bot ``then: bot:<id>`` hands records on to, checked by the loader."""
    if sla is None or not sla.then.startswith(BOT_PREFIX):
        return {}
    return {"then": sla.then[len(BOT_PREFIX) :]}


def _check(sla: Sla | None, bot: Bot, catalog: Catalog) -> list[str]:
    """``then: fallback`` names the bot's fallback owner: a bot without one is a mistake."""
    if sla is not None and sla.then == "fallback" and bot.fallback is None:
        return ["then: fallback needs the bot's fallback owner: set 'fallback: <user>' on the bot"]
    return []


SLA: FieldSpec[Sla | None] = FieldSpec(
    "bot",
    "sla",
    Sla | None,
    default=None,
    description="How long the picked owner has to act before the record moves on (salesbot tick).",
    check=_check,
    conditions=_conditions,
    bot_refs=_bot_refs,
    sets_deadlines=True,
)


@hookimpl
def salesbot_ruleset_fields() -> list[FieldSpec[Any]]:
    return [SLA]


@hookimpl
def salesbot_due(bot: Bot, record: RecordT, owner: User, at: datetime, reassignments: int) -> datetime | None:
    sla = SLA.get(bot)
    if sla is None or reassignments > sla.max_reassignments:
        return None  # past the last step (the fallback owner has it): no clock any more
    if not sla.business_hours:
        return at + sla.duration
    return business_deadline(
        at, sla.duration, hours=WORKING_HOURS.get(owner), absences=OUT_OF_OFFICE.get(owner), zone=owner.zone
    )


@hookimpl
def salesbot_sla_met(bot: Bot, due: DueItem, event: Event, record: RecordT, context: Context) -> str | None:
    sla = SLA.get(bot)
    if sla is None:
        return "the bot has no SLA any more"
    met = sla.met_when
    if met.closed and not record.open:
        return "the record was closed"
    if met.updated_by_owner and event.kind == "updated" and event.by == due.owner:
        return f"updated by its owner {due.owner}"
    if met.where is not None and context.matches(bot, SLA.key, "met_when.where"):
        return "the record matches met_when.where"
    return None


@hookimpl
def salesbot_sla_missed(bot: Bot, due: DueItem) -> Escalation | None:
    sla = SLA.get(bot)
    if sla is None:
        return None
    if due.reassignments < sla.max_reassignments:
        to = sla.then
    else:
        to = "fallback" if bot.fallback is not None else "stay"
    verb = "SLA missed" if to == "stay" else "reassigned"
    return Escalation(
        to=to, note=f"{verb}: no contact within {sla.within}", notify_previous=sla.notify_previous
    )
