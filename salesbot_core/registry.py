"""Builds the plugin manager of one engine: built-ins, entry-point plugins, host plugins.

There is no module-level plugin manager: ``make_plugin_manager`` returns a fresh one
each time, owned by the engine that asked for it, so two engines (or two tests) never
share plugins.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TypeVar

import pluggy

from . import hookspecs
from .entities import EntityHandler
from .errors import PluginError
from .propagation import PropagationMode
from .strategy import Strategy

T = TypeVar("T")

PROJECT = "salesbot"
ENTRY_POINT_GROUP = "salesbot"
#: Comma-separated plugin names (built-in module names or entry-point names) not to load.
BLOCK_ENV = "SALESBOT_BLOCK_PLUGINS"
#: Set to 1 to load no entry-point plugins at all.
DISABLE_AUTOLOAD_ENV = "SALESBOT_DISABLE_PLUGIN_AUTOLOAD"

#: The built-in plugins, registered by module name like any other plugin (and blockable).
DEFAULT_PLUGINS: tuple[str, ...] = (
    "salesbot_plugins.round_robin",
    "salesbot_plugins.weighted_round_robin",
    "salesbot_plugins.least_loaded",
    "salesbot_plugins.deal",
    "salesbot_plugins.person",
    "salesbot_plugins.company",
    "salesbot_plugins.task",
    "salesbot_plugins.propagation",
    "salesbot_plugins.triggers",
    "salesbot_plugins.eligibility",
    "salesbot_plugins.capacity",
    "salesbot_plugins.availability",
    "salesbot_plugins.sticky",
    "salesbot_plugins.sqlite_store",
    "salesbot_plugins.postgres_store",
)


@dataclass(frozen=True)
class PluginLoadFailure:
    """An entry-point plugin that could not be imported; the host goes on without it."""

    name: str
    distribution: str
    error: str

    def __str__(self) -> str:
        return f"plugin {self.name!r} (from {self.distribution}) failed to load: {self.error}"


@dataclass(frozen=True)
class Catalog:
    """What the loaded plugins provide that ruleset files refer to by name."""

    strategies: dict[str, Strategy]
    entities: dict[str, EntityHandler]
    propagation_modes: dict[str, PropagationMode]


@dataclass
class Registry:
    """A plugin manager plus what happened while it was filled."""

    pm: pluggy.PluginManager
    failures: list[PluginLoadFailure]

    def catalog(self) -> Catalog:
        """Collect strategies, entity handlers and propagation modes from every plugin."""
        return Catalog(self.strategies(), self.entities(), self.propagation_modes())

    def strategies(self) -> dict[str, Strategy]:
        """All registered strategies by name; a name registered twice is an error."""
        return self._collect("salesbot_register_strategies", "strategy", lambda s: s.name)

    def entities(self) -> dict[str, EntityHandler]:
        """The handler of each entity; two handlers for one entity is an error."""
        return self._collect("salesbot_register_entities", "entity", lambda h: h.entity)

    def propagation_modes(self) -> dict[str, PropagationMode]:
        """All linked-record propagation modes by name."""
        return self._collect("salesbot_register_propagation_modes", "propagation mode", lambda m: m.name)

    def _collect(self, hook: str, kind: str, key: Callable[[T], str]) -> dict[str, T]:
        found: dict[str, T] = {}
        # Called implementation by implementation (not through the hook caller) so a
        # clash names the plugin that caused it.
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            items: Iterable[T] = impl.function() or ()
            for item in items:
                name = key(item)
                if name in found:
                    raise PluginError(
                        f"plugin {impl.plugin_name!r} registers {kind} {name!r}, "
                        "which another plugin already registered"
                    )
                found[name] = item
        return found


def _env_names(name: str) -> set[str]:
    return {part.strip() for part in os.environ.get(name, "").split(",") if part.strip()}


def make_plugin_manager(
    plugins: Iterable[object] = (),
    *,
    block: Iterable[str] = (),
    autoload: bool | None = None,
) -> Registry:
    """Return a new registry: the built-ins, the ``salesbot`` entry points, then ``plugins``.

    ``block`` names plugins not to load (added to the ``SALESBOT_BLOCK_PLUGINS`` env var).
    ``autoload`` (default: on unless ``SALESBOT_DISABLE_PLUGIN_AUTOLOAD`` is set) loads
    the entry-point plugins. An entry point that fails to import is recorded in
    ``failures`` and skipped; a hook implementation that matches no spec raises
    ``PluginError`` naming the plugin.
    """
    blocked = set(block) | _env_names(BLOCK_ENV)
    if autoload is None:
        autoload = os.environ.get(DISABLE_AUTOLOAD_ENV, "") in ("", "0")
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in blocked:
        pm.set_blocked(name)
    failures: list[PluginLoadFailure] = []

    for module_name in DEFAULT_PLUGINS:
        if module_name not in blocked:
            _register(pm, importlib.import_module(module_name), module_name)

    if autoload:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in blocked or pm.get_plugin(ep.name) is not None:
                continue
            dist = ep.dist.name if ep.dist is not None else "unknown distribution"
            try:
                plugin = ep.load()
            except (Exception, SystemExit) as exc:  # any import-time error of a third party
                failures.append(PluginLoadFailure(ep.name, dist, f"{type(exc).__name__}: {exc}"))
                continue
            _register(pm, plugin, ep.name)

    for plugin in plugins:
        # A readable name for messages and blocking: a module's name, an object's class;
        # a second object of the same class gets a numbered name.
        base = getattr(plugin, "__name__", None) or type(plugin).__name__
        name, n = base, 1
        while pm.has_plugin(name):
            n += 1
            name = f"{base}#{n}"
        if base not in blocked:
            _register(pm, plugin, name)

    _check_unknown_hooks(pm)
    return Registry(pm, failures)


def _check_unknown_hooks(pm: pluggy.PluginManager) -> None:
    """Fail on a hook implementation that matches no spec (pluggy's ``check_pending``),
    with a message that names the plugin and suggests the hook it probably meant."""
    known = [name for name in dir(hookspecs) if name.startswith("salesbot_")]
    for hook_name in sorted(vars(pm.hook)):
        caller = getattr(pm.hook, hook_name)
        if caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if not impl.optionalhook:
                close = difflib.get_close_matches(hook_name, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise PluginError(
                    f"plugin {impl.plugin_name!r} implements {hook_name!r}, "
                    f"which is not a salesbot hook{hint}"
                )


def _register(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {name!r} is invalid: {exc}") from None
    except ValueError as exc:  # pluggy: the same plugin or name registered twice
        raise PluginError(f"plugin {name!r}: {exc}") from None
