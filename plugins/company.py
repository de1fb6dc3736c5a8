"""Companies: the top of the link graph; nothing to pass an owner on to."""

from __future__ import annotations

from salesbot_core import hookimpl
from salesbot_core.entities import EntityHandler


@hookimpl
def salesbot_register_entities() -> list[EntityHandler]:
    return [EntityHandler("company", label=lambda company: company.name or company.id)]
