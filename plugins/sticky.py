"""Sticky routing: a ``sticky`` bot gives a deal or person to the owner of its linked
company when that owner is a candidate, so one account manager keeps the whole customer.
The ``sticky`` key of a ruleset bot belongs to this plugin (``STICKY``)."""

from __future__ import annotations

from collections.abc import Sequence

from salesbot_core import Bot, Context, Pick, hookimpl
from salesbot_core.catalog import Catalog
from salesbot_core.fields import FieldSpec, answers_for
from salesbot_core.strategy import RecordT


def _has_company(sticky: bool, bot: Bot, catalog: Catalog) -> list[str]:
    handler = catalog.entities.get(bot.entity)
    if sticky and handler is not None and "company" not in handler.related:
        return [f"{bot.entity} records have no linked company to stick to"]
    return []


STICKY: FieldSpec[bool] = FieldSpec(
    "bot",
    "sticky",
    bool,
    default=False,
    description="A deal or person linked to a company whose owner is a candidate goes to that owner.",
    check=_has_company,
)


@hookimpl
def salesbot_ruleset_fields() -> list[FieldSpec[bool]]:
    return [STICKY]


@hookimpl
@answers_for(STICKY)
def salesbot_preselect(bot: Bot, record: RecordT, candidates: Sequence[str], context: Context) -> Pick | None:
    company_id = getattr(record, "company", None)
    if not STICKY.get(bot) or company_id is None:
        return None
    company = context.linked.get(("company", company_id))
    if company is None:
        return None
    for owner in company.owners:
        if owner in candidates:
            return Pick(user=owner, reason=f"owner of linked company {company_id!r}")
    return None
