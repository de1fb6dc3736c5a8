"""The per-entity contract: how a kind of record links to others and, for deals, its process.

Handlers are returned by the ``salesbot_register_entities`` hook; the built-in ones live in
``salesbot_plugins.deal``, ``.person``, ``.company`` and ``.task``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .models import EntityType, LinkRef
from .strategy import RecordT

__all__ = ["EntityHandler", "LinkRef"]


def _no_process(record: RecordT) -> str | None:
    return None


@dataclass(frozen=True)
class EntityHandler:
    """How the engine reads one entity's links and sales process."""

    entity: EntityType
    #: ``actions.related`` option name (``persons``, ``company``) -> the records it reaches.
    related: Mapping[str, Callable[[RecordT], list[LinkRef]]] = field(default_factory=dict)
    #: The sales process a bot's ``trigger.processes`` filter is matched against.
    process: Callable[[RecordT], str | None] = _no_process
    #: The text shown for the record in notes and notifications (``{record.label}``).
    label: Callable[[RecordT], str] = lambda record: record.id

    def links(self, record: RecordT, options: Mapping[str, bool]) -> list[LinkRef]:
        """The linked records reached by the ``related`` options switched on, in order."""
        found: list[LinkRef] = []
        for option, enabled in options.items():
            if enabled and option in self.related:
                found += [ref for ref in self.related[option](record) if ref not in found]
        return found
