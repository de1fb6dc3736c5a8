"""Member conditions, as Odoo's member domains: each pool member may carry a ``where`` of
their own and gets only records that match it, and a ``prefer`` condition that puts
them before the other candidates for the records that match it.

::

    users: [anna, bartek, celina]
    members:
      bartek: {where: {country: DE}}           # only German records
      celina: {prefer: {$gte: {value: 10000}}}  # large deals go to her first

The conditions are the language of ``trigger.where`` and run on the ruleset's evaluator
(the loader compiles them with the bots' own). The pool stays a list of user ids: a
member without an entry here takes any record, as before. The ``members`` key of a
ruleset bot belongs to this plugin (``MEMBERS``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from salesbot_core import Bot, Context, User, hookimpl
from salesbot_core.catalog import Catalog
from salesbot_core.conditions import quoted
from salesbot_core.fields import FieldSpec, answers_for
from salesbot_core.models import Identifier, Model
from salesbot_core.safetext import excerpt
from salesbot_core.strategy import RecordT


class Member(Model):
    """What one pool member takes: records matching ``where``; first, those matching ``prefer``."""

    #: The member gets only records that match (no ``where``: any record).
    where: dict[str, Any] | None = None
    #: Records that match go to the members whose ``prefer`` matches before the others
    #: (``true``: the member's ``where``).
    prefer: dict[str, Any] | bool = False


Members = dict[Identifier, Member]


def _in_pool(members: Members, bot: Bot, catalog: Catalog) -> list[str]:
    problems = [
        f"{excerpt(user)} is not in the bot's pool 'users'" for user in members if user not in bot.users
    ]
    problems += [
        f"{excerpt(user)}: prefer: true needs a where to prefer"
        for user, member in members.items()
        if member.prefer is True and member.where is None
    ]
    return problems


def _prefer_condition(member: Member) -> str | None:
    """The path of the condition that makes the member preferred, or ``None``."""
    if member.prefer is True:
        return "where"
    return "prefer" if member.prefer else None


def _conditions(members: Members) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    for user, member in members.items():
        if member.where is not None:
            found[f"{user}.where"] = member.where
        if isinstance(member.prefer, dict):
            found[f"{user}.prefer"] = member.prefer
    return found


MEMBERS: FieldSpec[Members] = FieldSpec(
    "bot",
    "members",
    Members,
    default={},
    description="Per pool member (by user id): 'where', a condition a record must match to go to "
    "this member; 'prefer', a condition (or true: the member's where) that puts the member "
    "before the other candidates for the records matching it.",
    check=_in_pool,
    conditions=_conditions,
)


@hookimpl
def salesbot_ruleset_fields() -> list[FieldSpec[Members]]:
    return [MEMBERS]


@hookimpl
@answers_for(MEMBERS)
def salesbot_skip_candidate(bot: Bot, record: RecordT, user: User, context: Context) -> str | None:
    member = MEMBERS.get(bot).get(user.id)
    if member is None or member.where is None or context.matches(bot, "members", f"{user.id}.where"):
        return None
    return f"the record does not match members.{user.id}.where {quoted(member.where)}"


@hookimpl
@answers_for(MEMBERS)
def salesbot_prefer_candidates(
    bot: Bot, record: RecordT, candidates: Sequence[str], context: Context
) -> dict[str, str] | None:
    members = MEMBERS.get(bot)
    preferred: dict[str, str] = {}
    for user in candidates:
        member = members.get(user)
        path = _prefer_condition(member) if member else None
        if path is not None and context.matches(bot, "members", f"{user}.{path}"):
            preferred[user] = f"members.{user}.{path}"
    if not preferred or len(preferred) == len(candidates):
        return None
    because = ", ".join(preferred.values())
    return {
        user: f"not preferred: the record matches {because}" for user in candidates if user not in preferred
    }
