"""salesbot: a lead router that picks the owner of new and edited CRM records.

The public surface: ``Engine`` for host apps, ``hookimpl`` for plugin writers, and the
data types plugins receive and return.

Each name is imported when first used (PEP 562), not when the package is: the
``salesbot`` command imports this package before any of its own modules, and
``salesbot --help`` should not pay for pydantic, the engine and pluggy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the names are, for type checkers (``as``: re-exported)
    from .engine import Delivered as Delivered
    from .engine import Engine as Engine
    from .errors import EventError as EventError
    from .errors import IdempotencyConflict as IdempotencyConflict
    from .errors import PluginError as PluginError
    from .errors import RulesetError as RulesetError
    from .errors import SalesbotError as SalesbotError
    from .errors import StoreError as StoreError
    from .errors import TransientStoreError as TransientStoreError
    from .hookspecs import hookimpl as hookimpl
    from .models import Bot as Bot
    from .models import Decision as Decision
    from .models import Event as Event
    from .models import Outcome as Outcome
    from .models import Release as Release
    from .models import Skip as Skip
    from .models import User as User
    from .strategy import Context as Context
    from .strategy import Pick as Pick
    from .strategy import SelectRequest as SelectRequest
    from .strategy import Strategy as Strategy

#: Each public name and the module that defines it.
_HOMES = {
    "Delivered": "engine",
    "Engine": "engine",
    "EventError": "errors",
    "IdempotencyConflict": "errors",
    "PluginError": "errors",
    "RulesetError": "errors",
    "SalesbotError": "errors",
    "StoreError": "errors",
    "TransientStoreError": "errors",
    "Bot": "models",
    "Decision": "models",
    "Event": "models",
    "Outcome": "models",
    "Release": "models",
    "Skip": "models",
    "User": "models",
    "Context": "strategy",
    "Pick": "strategy",
    "SelectRequest": "strategy",
    "Strategy": "strategy",
    "hookimpl": "hookspecs",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value  # looked up once: the next access is a plain global
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
