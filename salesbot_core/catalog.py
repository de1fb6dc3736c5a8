"""What the loaded plugins provide that ruleset files refer to by name or by key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .entities import EntityHandler
from .fields import FieldSpec, Place
from .propagation import PropagationMode
from .strategy import Strategy

#: The kinds of things a plugin provides, as messages name them.
Kind = str


@dataclass(frozen=True)
class Catalog:
    """Strategies, entity handlers, propagation modes and ruleset fields, by name.

    ``blocked`` records what blocked built-in plugins would have provided, ``(kind,
    name) -> plugin``, only so that a ruleset using it gets an error naming the plugin
    ("strategy 'round_robin' belongs to plugin ..., which is not loaded").
    """

    strategies: Mapping[str, Strategy]
    entities: Mapping[str, EntityHandler]
    propagation_modes: Mapping[str, PropagationMode]
    fields: Mapping[tuple[Place, str], FieldSpec[Any]] = field(default_factory=dict)
    blocked: Mapping[tuple[Kind, str], str] = field(default_factory=dict)

    def fields_of(self, place: Place) -> dict[str, FieldSpec[Any]]:
        """The plugin-owned fields of a user or a bot, by key."""
        return {key: spec for (where, key), spec in self.fields.items() if where == place}

    def not_loaded(self, kind: Kind, name: str) -> str | None:
        """``"<kind> 'name' belongs to plugin 'p', which is not loaded"``, or ``None``
        when no blocked plugin provides it."""
        plugin = self.blocked.get((kind, name))
        if plugin is None:
            return None
        # "user field" and "bot field" read as "field": the place is in the field path.
        noun = kind.split()[-1] if kind.endswith(" field") else kind
        return f"{noun} {name!r} belongs to plugin {plugin!r}, which is not loaded"
