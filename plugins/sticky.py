"""Sticky routing: a ``sticky`` bot gives a deal or person to the owner of its linked
company when that owner is a candidate, so one account manager keeps the whole customer."""

from __future__ import annotations

from collections.abc import Sequence

from salesbot_core import Bot, Context, Pick, hookimpl
from salesbot_core.strategy import RecordT


@hookimpl
def salesbot_preselect(bot: Bot, record: RecordT, candidates: Sequence[str], context: Context) -> Pick | None:
    company_id = getattr(record, "company", None)
    if not bot.sticky or company_id is None:
        return None
    company = context.linked.get(("company", company_id))
    if company is None:
        return None
    for owner in company.owners:
        if owner in candidates:
            return Pick(user=owner, reason=f"owner of linked company {company_id!r}")
    return None
