"""Deals: linked to persons and a company; the only entity with a sales process."""

from __future__ import annotations

from salesbot_core import hookimpl
from salesbot_core.entities import EntityHandler, LinkRef
from salesbot_core.models import Deal


def persons(deal: Deal) -> list[LinkRef]:
    return [("person", person) for person in deal.persons]


def company(deal: Deal) -> list[LinkRef]:
    return [("company", deal.company)] if deal.company else []


@hookimpl
def salesbot_register_entities() -> list[EntityHandler]:
    return [
        EntityHandler(
            "deal",
            related={"persons": persons, "company": company},
            process=lambda deal: deal.process,
            label=lambda deal: deal.title or deal.id,
        )
    ]
