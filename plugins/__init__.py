"""salesbot's built-in plugins, each an ordinary plugin module registered by name.

Installed as ``salesbot_plugins``. ``DEFAULT_PLUGINS`` is the list the engine loads, in
order, before the entry-point plugins (as datasette and pytest list their default
plugins). It lives here, not in ``salesbot_core``, so that the core knows no plugin: the
core imports this package by name and registers whatever it lists; each built-in can be
blocked by its module name and replaced by a third-party plugin.
"""

#: The built-in plugin modules, in registration order.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "salesbot_plugins.round_robin",
    "salesbot_plugins.weighted_round_robin",
    "salesbot_plugins.least_loaded",
    "salesbot_plugins.based_on_field",
    "salesbot_plugins.deal",
    "salesbot_plugins.person",
    "salesbot_plugins.company",
    "salesbot_plugins.task",
    "salesbot_plugins.propagation",
    "salesbot_plugins.eligibility",
    "salesbot_plugins.capacity",
    "salesbot_plugins.members",
    "salesbot_plugins.availability",
    "salesbot_plugins.sticky",
    "salesbot_plugins.schedule",
    "salesbot_plugins.fall_through",
    "salesbot_plugins.unassign",
    "salesbot_plugins.sla",
    "salesbot_plugins.sqlite_store",
    "salesbot_plugins.postgres_store",
)
