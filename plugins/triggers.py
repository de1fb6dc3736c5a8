"""When a bot may fire: the add-on and bot switches, its entity, trigger events and processes."""

from __future__ import annotations

from salesbot_core import Bot, Event, hookimpl
from salesbot_core.entities import EntityHandler
from salesbot_core.models import AccountSettings
from salesbot_core.strategy import RecordT


@hookimpl
def salesbot_bot_applies(
    bot: Bot, event: Event, record: RecordT, settings: AccountSettings, handler: EntityHandler
) -> str | None:
    if not settings.enabled:
        return f"the Sales Bot add-on is switched off for account {event.account!r}"
    if not bot.active:
        return "the bot is switched off"
    if record.entity != bot.entity:
        return f"the bot handles {bot.entity} records, not {record.entity} records"
    if event.kind not in bot.trigger.events:
        return f"the bot does not fire on {event.kind!r} events"
    if event.kind == "updated" and event.changed is not None and "owners" not in event.changed:
        return "the update did not change the owners"
    processes = bot.trigger.processes
    if processes is not None and handler.process(record) not in processes:
        return f"process {handler.process(record)!r} is not one of {processes}"
    return None
