"""The pure core: given an event, the rules and the stored state, decide every change.

Nothing here reads or writes a database or a file; the engine hands in what it read
inside its transaction (the stored record, its linked records, the strategy states, the
bot switches) and writes back what ``decide`` returns. That keeps the decision testable
on its own and identical whichever store sits behind it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from .entities import EntityHandler, LinkRef
from .errors import PluginError
from .models import BOT_PREFIX, Bot, Change, Decision, Event, Outcome, Skip, record_from_dict
from .propagation import SINGLE_OWNER_MODE
from .registry import Catalog
from .rulesets import Rules, condition_key
from .strategy import RecordT, SelectRequest
from .templates import record_values, render


@dataclass(frozen=True)
class WallNote:
    """A wall note to write on a record."""

    ref: LinkRef
    text: str
    bot: str


@dataclass(frozen=True)
class Decided:
    """Everything ``decide`` wants written, in one transaction."""

    record: RecordT
    outcome: Outcome
    states: Mapping[str, dict[str, Any]]
    #: Linked records whose owners or tags changed.
    linked: list[RecordT] = field(default_factory=list)
    notes: list[WallNote] = field(default_factory=list)
    #: ``(user, text)`` to put in the outbox.
    notifications: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Dispatcher:
    """Runs the bots set on a record through triggers, conditions, candidates and strategy."""

    rules: Rules
    catalog: Catalog
    hook: pluggy.HookRelay

    def decide(
        self,
        event: Event,
        previous_owners: list[str] | None,
        states: Mapping[str, Mapping[str, Any]],
        linked: Mapping[LinkRef, RecordT] = {},
        switches: Mapping[str, bool] = {},
    ) -> Decided:
        """Decide the new owners of ``event.record`` and of its linked records.

        ``previous_owners`` are the owners the store had for the record (None when it is
        new); ``states`` holds the strategy state of each bot on the record; ``linked``
        the stored records it links to; ``switches`` the bots switched on or off since
        the rules were loaded. Every bot set as an owner is replaced by its pick or
        removed: a bot never stays an owner.
        """
        record = event.record
        handler = self.catalog.entities[record.entity]
        owners = list(record.owners)
        tags = list(record.tags)
        decisions: list[Decision] = []
        new_states: dict[str, dict[str, Any]] = {}
        changed: dict[LinkRef, RecordT] = {}
        notes: list[WallNote] = []
        notifications: list[tuple[str, str]] = []
        for bot_id in record.bot_ids():
            bot = self.rules.bot(event.account, bot_id)
            if bot is None:  # the engine validates events first; this guards direct callers
                raise ValueError(f"bot {bot_id!r} is not a bot of account {event.account!r}")
            if bot_id in switches:
                bot = bot.model_copy(update={"active": switches[bot_id]})
            decision = self._pick(event, bot, handler, states.get(bot_id, {}))
            at = owners.index(BOT_PREFIX + bot_id)
            if decision.owner is None or decision.owner in owners:
                del owners[at]
            else:
                owners[at] = decision.owner
            if decision.owner is not None:
                new_states[bot_id] = decision.state_after
                tags = _with(tags, bot.actions.tag)
                decision = self._act(event, bot, handler, decision, linked, changed, notes, notifications)
            decisions.append(decision)
        if not owners and previous_owners:
            # A bot that did not apply must not leave the record ownerless: it keeps the
            # owners it had before the bot was set.
            owners = [o for o in previous_owners if not o.startswith(BOT_PREFIX)]
        outcome = Outcome(
            event_id=event.id,
            account=event.account,
            entity=record.entity,
            record_id=record.id,
            kind=event.kind,
            owners_before=list(record.owners),
            owners_after=owners,
            decisions=decisions,
        )
        return Decided(
            record.model_copy(update={"owners": owners, "tags": tags}),
            outcome,
            new_states,
            list(changed.values()),
            notes,
            notifications,
        )

    def _pick(self, event: Event, bot: Bot, handler: EntityHandler, state: Mapping[str, Any]) -> Decision:
        """Whether the bot fires, who its candidates are, and whom its strategy picks."""
        account, record = event.account, event.record
        reasons = [
            r
            for r in self.hook.salesbot_bot_applies(
                bot=bot,
                event=event,
                record=record,
                settings=self.rules.account_settings(account),
                handler=handler,
            )
            if r
        ]
        if not reasons and not self.rules.conditions.matches(
            condition_key(account, bot.id), record.condition_fields()
        ):
            reasons.append("the record does not match trigger.where")
        if reasons:
            return Decision(bot=bot.id, status="not_applied", reason="; ".join(reasons))
        matched = _conditions(event, bot, handler)

        pool = [self.rules.user(account, user_id) for user_id in bot.users]
        skipped: dict[str, Skip] = {}
        for result in self.hook.salesbot_filter_candidates(
            bot=bot, record=record, candidates=[u for u in pool if u is not None]
        ):
            for skip in result:
                skipped.setdefault(skip.user, skip)
        candidates = [user_id for user_id in bot.users if user_id not in skipped]
        if not candidates:
            return Decision(
                bot=bot.id,
                status="no_candidate",
                strategy=bot.strategy,
                reason="no user in the pool is eligible",
                conditions=matched,
                skipped=list(skipped.values()),
                state_before=dict(state),
            )

        strategy = self.catalog.strategies[bot.strategy]
        pick = strategy.select(SelectRequest(bot, record, tuple(candidates), dict(state)))
        if pick.user not in candidates:
            raise PluginError(
                f"strategy {bot.strategy!r} picked {pick.user!r} for bot {bot.id!r}, "
                f"who is not one of its candidates {candidates}"
            )
        return Decision(
            bot=bot.id,
            status="assigned",
            owner=pick.user,
            reason=pick.reason,
            strategy=bot.strategy,
            conditions=matched,
            candidates=candidates,
            skipped=list(skipped.values()),
            state_before=dict(state),
            state_after=dict(pick.state),
        )

    def _act(
        self,
        event: Event,
        bot: Bot,
        handler: EntityHandler,
        decision: Decision,
        linked: Mapping[LinkRef, RecordT],
        changed: dict[LinkRef, RecordT],
        notes: list[WallNote],
        notifications: list[tuple[str, str]],
    ) -> Decision:
        """The bot's actions for its pick: linked records, tag, wall note, notification."""
        record, picked, actions = event.record, str(decision.owner), bot.actions
        settings = self.rules.account_settings(event.account)
        mode = self.catalog.propagation_modes[
            actions.related.mode if settings.multiple_owners else SINGLE_OWNER_MODE
        ]
        changes: list[Change] = []
        for ref in handler.links(record, actions.related.model_dump(include={"persons", "company"})):
            current = (
                changed.get(ref) or linked.get(ref) or record_from_dict({"entity": ref[0], "id": ref[1]})
            )
            owners = mode.apply(current.owners, picked)
            changes.append(
                Change(
                    entity=ref[0], record_id=ref[1], owners_before=list(current.owners), owners_after=owners
                )
            )
            changed[ref] = current.model_copy(
                update={"owners": owners, "tags": _with(current.tags, actions.tag)}
            )

        user = self.rules.user(event.account, picked)
        values: dict[str, dict[str, Any]] = {
            "bot": {"id": bot.id, "name": bot.display_name, "entity": bot.entity},
            "owner": {
                "id": picked,
                "name": user.display_name if user else picked,
                "email": user.email if user else None,
            },
            "record": {**record_values(record.model_dump()), "label": handler.label(record)},
        }
        note = render(actions.note, values) if actions.note else None
        if note is not None:
            notes += [WallNote((record.entity, record.id), note, bot.id)]
            notes += [WallNote((c.entity, c.record_id), note, bot.id) for c in changes]
        notification = render(actions.notify, values) if actions.notify else None
        if notification is not None:
            notifications.append((picked, notification))
        return decision.model_copy(
            update={"related": changes, "tag": actions.tag, "note": note, "notification": notification}
        )


def _conditions(event: Event, bot: Bot, handler: EntityHandler) -> list[str]:
    """The trigger conditions a firing bot met, in words, for the audit trail."""
    met = [f"event {event.kind!r} is one of {bot.trigger.events}"]
    if bot.trigger.processes is not None:
        met.append(f"process {handler.process(event.record)!r} is one of {bot.trigger.processes}")
    if bot.trigger.where is not None:
        met.append(f"trigger.where {json.dumps(bot.trigger.where, sort_keys=True)} matched")
    return met


def _with(tags: list[str], tag: str | None) -> list[str]:
    return tags if tag is None or tag in tags else [*tags, tag]
