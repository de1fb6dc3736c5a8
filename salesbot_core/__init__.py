"""salesbot: a lead router that picks the owner of new and edited CRM records.

The public surface: ``Engine`` for host apps, ``hookimpl`` for plugin writers, and the
data types plugins receive and return.
"""

import pluggy

from .engine import Delivered, Engine
from .errors import (
    EventError,
    IdempotencyConflict,
    PluginError,
    RulesetError,
    SalesbotError,
    StoreError,
    TransientStoreError,
)
from .models import Bot, Decision, Event, Outcome, Release, Skip, User
from .strategy import Context, Pick, SelectRequest, Strategy

#: The marker plugins use for their hook implementations.
hookimpl = pluggy.HookimplMarker("salesbot")

__all__ = [
    "Bot",
    "Context",
    "Decision",
    "Delivered",
    "Engine",
    "Event",
    "EventError",
    "IdempotencyConflict",
    "Outcome",
    "Pick",
    "PluginError",
    "Release",
    "RulesetError",
    "SalesbotError",
    "SelectRequest",
    "Skip",
    "StoreError",
    "Strategy",
    "TransientStoreError",
    "User",
    "hookimpl",
]
