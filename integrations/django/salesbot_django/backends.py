"""Where salesbot runs for the project: the embedded ``Engine`` (one per process), or a
``salesbot serve`` over HTTP. Both answer the same three calls (``handle``,
``assign_list``, ``seen``), so the routing does not know which it talks to.

The backend is opened on first use, after the ruleset files are synced from the database,
and kept on the app's config (not in a module global); a change of the ``SALESBOT``
setting (a test's ``override_settings``) closes it, and the next use opens the new one.
Before each routing the files are synced again: a user added to a department is in the
pools' account at the next save, without a restart (a ``salesbot serve`` reading the same
folder reloads them itself, every 2 seconds).

The HTTP client is the standard library's: the app depends on salesbot and Django only.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from django.apps import apps
from django.core.signals import setting_changed

from salesbot_core import Engine, IdempotencyConflict
from salesbot_core.errors import SalesbotError
from salesbot_core.http.signing import SIGNATURE_HEADER, signature_header
from salesbot_core.models import Outcome

from . import sync
from .conf import Config, config


class Unavailable(SalesbotError):
    """The service did not take the request (unreachable, timed out, 429 or 5xx): send it
    again later, with the same event ids."""


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


class Remote:
    """A ``salesbot serve`` at ``URL``: events and list operations as signed ``POST``s."""

    def __init__(self, config: Config) -> None:
        self.config = config
        sync.sync(config)
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Sync the users and bots into the ruleset files the service reads."""
        with self._lock:
            sync.sync(self.config)

    def _post(self, account: str, path: str, payload: Mapping[str, Any]) -> Any:
        body = json.dumps(payload).encode()
        headers = {"Authorization": f"Bearer {self.config.token}", "Content-Type": "application/json"}
        if self.config.signing_secret:
            headers[SIGNATURE_HEADER] = signature_header([self.config.signing_secret], body)
        url = f"{self.config.url.rstrip('/')}/v1/accounts/{account}/{path}"  # type: ignore[union-attr]
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            if exc.code == 409:
                raise IdempotencyConflict(detail) from None
            if exc.code == 429 or exc.code >= 500:
                raise Unavailable(f"{url}: {exc.code} {detail}") from None
            raise SalesbotError(f"{url}: {exc.code} {detail}") from None
        except (OSError, TimeoutError) as exc:  # refused, reset, DNS, timeout
            raise Unavailable(f"{url}: {exc}") from None

    def handle(self, event: Mapping[str, Any]) -> Outcome:
        """``POST /events``: the outcome."""
        return Outcome.model_validate(self._post(event["account"], "events", event))

    def assign_list(
        self, account: str, entity: str, record_ids: list[str], bot: str, operation: str
    ) -> list[Outcome]:
        """``POST /assignments``: one outcome per record."""
        payload = {"entity": entity, "record_ids": record_ids, "bot": bot, "operation": operation}
        return [Outcome.model_validate(o) for o in self._post(account, "assignments", payload)["outcomes"]]

    def seen(self, account: str, entity: str, record_id: str, event_id: str) -> bool:
        """Unknown without a request: a repeat is told by the service (a duplicate, or a
        409 for a payload that changed since)."""
        return False

    def close(self) -> None:
        pass


_opening = threading.Lock()


def backend() -> Embedded | Remote:
    """The process's backend, opened on first use."""
    app = apps.get_app_config("salesbot_django")
    with _opening:
        if getattr(app, "backend", None) is None:
            settings = config()
            app.backend = Embedded(settings) if settings.mode == "embedded" else Remote(settings)  # type: ignore[attr-defined]
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
