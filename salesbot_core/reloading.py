"""Rules reloaded while ``salesbot serve`` runs: the rules' status and the folder watcher.

``Engine.rules_status`` is a ``RulesStatus``: when the running rules were loaded and from
which files, when the folder was last checked, and the problems of the last reload that
failed (a failed reload keeps the last good rules running). ``salesbot serve`` polls the
folder every ``--reload-interval`` seconds (``start_watcher``) and shows the status at
``GET /v1/rulesets`` (admin token).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .background import Background, every
from .errors import Problem, SalesbotError
from .models import utc_iso
from .safetext import escape

_log = logging.getLogger("salesbot.rules")

#: Seconds between two checks of the rulesets folder, by default.
RELOAD_INTERVAL = 2.0


@dataclass(frozen=True)
class RulesStatus:
    """The rules an engine runs on, and how their last reload went."""

    #: The rulesets folder, or None for rules handed in (never reloaded).
    folder: str | None
    #: When the running rules were loaded.
    loaded_at: datetime
    #: The ruleset files the running rules came from, by name, in load order.
    files: tuple[str, ...]
    #: When the folder was last compared with the running rules.
    checked_at: datetime
    #: Why the folder's current files are not running: the problems of the last reload,
    #: each naming the file, and the bot and field where known. Empty when they are.
    errors: tuple[Problem, ...] = ()
    #: With ``errors``: the account each file of that reload declares, by the name its
    #: problems give it (``RulesetError.accounts``), so that an account's admin is shown
    #: only its own problems. A file that could not be read has none.
    accounts: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The status as JSON. Names and messages come from the admin's files: control and
        invisible characters in them are escaped (``\\x1b``), as on a terminal."""
        return {
            "folder": escape(self.folder) if self.folder is not None else None,
            "loaded_at": utc_iso(self.loaded_at),
            "files": [escape(name) for name in self.files],
            "checked_at": utc_iso(self.checked_at),
            "ok": not self.errors,
            "errors": [
                {
                    "file": escape(problem.file),
                    "bot": escape(problem.bot) if problem.bot is not None else None,
                    "field": escape(problem.field) if problem.field else None,
                    "message": escape(problem.message),
                    "text": str(problem),
                }
                for problem in self.errors
            ],
        }


def start_watcher(reload: Callable[[], bool], interval: float = RELOAD_INTERVAL) -> Background:
    """Call ``reload`` (the engine's, under the service's lock) every ``interval`` seconds
    in a daemon thread, logging what each reload did; returns what stops it."""

    def check() -> None:
        try:
            if reload():
                _log.info("rules reloaded")
        except SalesbotError as exc:
            # Logged once per broken version of the folder: Engine.reload raises only
            # when the files changed since the last attempt.
            _log.warning("rules not reloaded; the last good rules keep running: %s", escape(str(exc)))

    return every("salesbot-rules", interval, check, _log)
