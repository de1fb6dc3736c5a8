"""Fall through: a routing bot with ``fall_through: true`` that applies but finds nobody
eligible in its pool (and has no fallback owner) passes the record on to the next bot by
priority, instead of stopping there (the default, for teams that want the stop). The
``fall_through`` key of a ruleset bot belongs to this plugin (``FALL_THROUGH``)."""

from __future__ import annotations

from salesbot_core import Bot, Decision, hookimpl
from salesbot_core.fields import FieldSpec

FALL_THROUGH: FieldSpec[bool] = FieldSpec(
    "bot",
    "fall_through",
    bool,
    default=False,
    description="Routing: when nobody in the pool is eligible and there is no fallback owner, "
    "try the next bot by priority instead of stopping.",
)


@hookimpl
def salesbot_ruleset_fields() -> list[FieldSpec[bool]]:
    return [FALL_THROUGH]


@hookimpl
def salesbot_keep_routing(bot: Bot, decision: Decision) -> str | None:
    return "the bot falls through to the next bot by priority" if FALL_THROUGH.get(bot) else None
