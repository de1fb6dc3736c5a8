"""Builds the plugin manager of one engine: built-ins, entry-point plugins, host plugins.

There is no module-level plugin manager: ``make_plugin_manager`` returns a fresh one
each time, owned by the engine that asked for it, so two engines (or two tests) never
share plugins.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, TypeVar

import pluggy

from . import hookspecs
from .catalog import Catalog
from .errors import PluginError

T = TypeVar("T")

PROJECT = "salesbot"
ENTRY_POINT_GROUP = "salesbot"
#: Comma-separated plugin names (built-in module names or entry-point names) not to load.
BLOCK_ENV = "SALESBOT_BLOCK_PLUGINS"
#: Set to 1 to load no entry-point plugins at all.
DISABLE_AUTOLOAD_ENV = "SALESBOT_DISABLE_PLUGIN_AUTOLOAD"

#: The package of the built-in plugins. The core knows its name only: the list of
#: built-ins is the package's ``DEFAULT_PLUGINS`` (see ``builtin_plugins``), so adding,
#: removing or renaming a built-in never touches the core.
BUILTIN_PACKAGE = "salesbot_plugins"


def builtin_plugins() -> tuple[str, ...]:
    """The module names of the built-in plugins, in registration order; none when the
    built-in package is not installed (a host may run the core on its plugins alone)."""
    try:
        package = importlib.import_module(BUILTIN_PACKAGE)
    except ModuleNotFoundError:
        return ()
    return tuple(getattr(package, "DEFAULT_PLUGINS", ()))


@dataclass(frozen=True)
class PluginLoadFailure:
    """An entry-point plugin that could not be imported; the host goes on without it."""

    name: str
    distribution: str
    error: str

    def __str__(self) -> str:
        return f"plugin {self.name!r} (from {self.distribution}) failed to load: {self.error}"


#: The hooks that register what ruleset files name, the kind of thing, and its name.
_REGISTER_HOOKS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("salesbot_register_strategies", "strategy", lambda s: s.name),
    ("salesbot_register_entities", "entity", lambda h: h.entity),
    ("salesbot_register_propagation_modes", "propagation mode", lambda m: m.name),
    ("salesbot_ruleset_fields", "field", lambda f: f"{f.place}.{f.key}"),
)


@dataclass
class Registry:
    """A plugin manager plus what happened while it was filled."""

    pm: pluggy.PluginManager
    failures: list[PluginLoadFailure]
    #: Built-in plugins that were blocked, by module name.
    blocked_builtins: tuple[str, ...] = ()

    def catalog(self) -> Catalog:
        """Collect strategies, entity handlers, propagation modes and ruleset fields."""
        found = {kind: _collect(self.pm, hook, kind, key) for hook, kind, key in _REGISTER_HOOKS}
        fields = {(spec.place, spec.key): spec for spec in found["field"].values()}
        return Catalog(found["strategy"], found["entity"], found["propagation mode"], fields, self._blocked())

    def _blocked(self) -> dict[tuple[str, str], str]:
        """What each blocked built-in would have registered, to name it in errors.

        Each is registered alone in a scratch plugin manager, which is thrown away: none
        of its hooks but the register ones is ever called.
        """
        owners: dict[tuple[str, str], str] = {}
        for name in self.blocked_builtins:
            scratch = pluggy.PluginManager(PROJECT)
            scratch.add_hookspecs(hookspecs)
            scratch.register(importlib.import_module(name), name=name)
            for hook, kind, key in _REGISTER_HOOKS:
                for item in _collect(scratch, hook, kind, key).values():
                    label = key(item)
                    if kind == "field":
                        kind_label, label = f"{item.place} field", item.key
                    else:
                        kind_label = kind
                    owners.setdefault((kind_label, label), name)
        return owners


def _collect(pm: pluggy.PluginManager, hook: str, kind: str, key: Callable[[T], str]) -> dict[str, T]:
    """Call a register hook (through pluggy, so wrappers and tracing see it) and index
    its items by name; a name registered twice is an error naming the plugins."""
    caller = getattr(pm.hook, hook)
    found: dict[str, T] = {}
    for items in reversed(caller()):  # pluggy calls the last registered first
        for item in items or ():
            name = key(item)
            if name in found:
                raise PluginError(f"{kind} {name!r} is registered by {_culprits(caller, key, name)}")
            found[name] = item
    return found


def _culprits(caller: Any, key: Callable[[Any], str], name: str) -> str:
    """The plugins that register ``name``, asked one by one: only to word the error."""
    plugins = [
        repr(impl.plugin_name)
        for impl in caller.get_hookimpls()
        if any(key(item) == name for item in impl.function() or ())
    ]
    return " and ".join(plugins) if len(set(plugins)) > 1 else f"plugin {plugins[0]} twice"


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

    builtins = builtin_plugins()
    for module_name in builtins:
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
    return Registry(pm, failures, tuple(name for name in builtins if name in blocked))


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
                import difflib  # only to word this error: not paid by every start

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
