"""Persons: linked to the company they work at."""

from __future__ import annotations

from salesbot_core import hookimpl
from salesbot_core.entities import EntityHandler, LinkRef
from salesbot_core.models import Person


def company(person: Person) -> list[LinkRef]:
    return [("company", person.company)] if person.company else []


@hookimpl
def salesbot_register_entities() -> list[EntityHandler]:
    return [
        EntityHandler(
            "person",
            related={"company": company},
            label=lambda person: person.name or person.id,
        )
    ]
