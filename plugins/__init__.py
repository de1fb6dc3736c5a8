"""salesbot's built-in plugins, each an ordinary plugin module registered by name.

Installed as ``salesbot_plugins``; see ``salesbot_core.registry.DEFAULT_PLUGINS``.
"""
