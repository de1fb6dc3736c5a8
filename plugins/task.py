"""Tasks: about one deal, person or company, but an owner is not passed on from a task."""

from __future__ import annotations

from salesbot_core import hookimpl
from salesbot_core.entities import EntityHandler


@hookimpl
def salesbot_register_entities() -> list[EntityHandler]:
    return [EntityHandler("task", label=lambda task: task.title or task.id)]
