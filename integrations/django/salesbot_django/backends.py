"""Where salesbot runs for the project: the embedded ``Engine``, one per process.

The engine is opened on first use, after the ruleset files are synced from the database,
and kept on the app's config (not in a module global); a change of the ``SALESBOT``
setting (a test's ``override_settings``) closes it, and the next use opens the new store.
Before each routing the files are synced again: a user added to a department is in the
pools' account at the next save, without a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from django.apps import apps
from django.core.signals import setting_changed

from salesbot_core import Engine
from salesbot_core.models import Outcome

from . import sync
from .conf import Config, config


class Embedded:
    """salesbot's ``Engine`` in the Django process, on ``STORE`` (a SQLite file or a
    PostgreSQL URL) and the ruleset files of ``RULES_DIR``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        sync.sync(config)
        self.engine = Engine(config.rules_dir, config.store, autoload=False)
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Sync the users and bots into the ruleset files; reload the engine if they changed."""
        with self._lock:
            if sync.sync(self.config):
                self.engine.reload(force=True)

    def handle(self, event: Mapping[str, Any]) -> Outcome:
        """The outcome of one event (``Engine.handle``)."""
        return self.engine.handle(event)

    def seen(self, account: str, entity: str, record_id: str, event_id: str) -> bool:
        """Whether salesbot already decided this event of this record."""
        return any(o.event_id == event_id for o in self.engine.explain(account, entity, record_id))

    def assign_list(
        self, account: str, entity: str, record_ids: list[str], bot: str, operation: str
    ) -> list[Outcome]:
        """A list operation (``Engine.assign_list``)."""
        return self.engine.assign_list(account, entity, record_ids, bot, operation)  # type: ignore[arg-type]

    def close(self) -> None:
        self.engine.close()


_opening = threading.Lock()


def backend() -> Embedded:
    """The process's backend, opened on first use."""
    app = apps.get_app_config("salesbot_django")
    with _opening:
        if getattr(app, "backend", None) is None:
            app.backend = Embedded(config())  # type: ignore[attr-defined]
    return app.backend  # type: ignore[attr-defined]


def close() -> None:
    """Close the process's backend (tests, or a settings change); the next use reopens it."""
    app = apps.get_app_config("salesbot_django")
    with _opening:
        if getattr(app, "backend", None) is not None:
            app.backend.close()  # type: ignore[attr-defined]
            app.backend = None  # type: ignore[attr-defined]


def _settings_changed(setting: str, **kwargs: Any) -> None:
    # Another store or other rules (a test's override_settings): the next use reopens.
    if setting == "SALESBOT" and apps.ready:
        close()


setting_changed.connect(_settings_changed)
