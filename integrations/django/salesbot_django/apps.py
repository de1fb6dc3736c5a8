"""Connects the routing to the mapped models' saves once every app is loaded.

The mapping names models of other apps, so it is read in ``ready`` (when they exist), and
a mistake in it stops the project at startup with the key to fix.
"""

from __future__ import annotations

from django.apps import AppConfig


class SalesbotConfig(AppConfig):
    """The ``salesbot_django`` app."""

    name = "salesbot_django"
    verbose_name = "Sales Bot"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import admin_actions, routing
        from .conf import config

        routing.connect(config())
        admin_actions.install(config())
