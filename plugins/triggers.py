"""When a bot may fire: its active switch, its entity, its trigger events, its processes."""

from __future__ import annotations

from salesbot_core import Bot, Event, hookimpl
from salesbot_core.strategy import RecordT


@hookimpl
def salesbot_bot_applies(bot: Bot, event: Event, record: RecordT) -> str | None:
    if not bot.active:
        return "the bot is switched off"
    if record.entity != bot.entity:
        return f"the bot handles {bot.entity} records, not {record.entity} records"
    if event.kind not in bot.trigger.events:
        return f"the bot does not fire on {event.kind!r} events"
    processes = bot.trigger.processes
    if processes is not None and getattr(record, "process", None) not in processes:
        return f"process {getattr(record, 'process', None)!r} is not one of {processes}"
    return None
