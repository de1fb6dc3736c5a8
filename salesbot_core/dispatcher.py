"""The pure core: given an event, the rules and the strategy state, decide the new owners.

Nothing here reads or writes a database or a file; the engine hands in the state it read
inside its transaction and writes back what ``decide`` returns. That keeps the decision
testable on its own and identical whichever store sits behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pluggy

from .errors import PluginError
from .models import BOT_PREFIX, Decision, Event, Outcome, Skip
from .rulesets import Rules, condition_key
from .strategy import RecordT, SelectRequest, Strategy


@dataclass(frozen=True)
class Decided:
    """What ``decide`` returns: the record to store, the outcome, and the states to write."""

    record: RecordT
    outcome: Outcome
    states: Mapping[str, dict[str, Any]]


@dataclass(frozen=True)
class Dispatcher:
    """Runs the bots set on a record through triggers, conditions, candidates and strategy."""

    rules: Rules
    strategies: Mapping[str, Strategy]
    hook: pluggy.HookRelay

    def decide(
        self,
        event: Event,
        previous_owners: list[str] | None,
        states: Mapping[str, Mapping[str, Any]],
    ) -> Decided:
        """Decide the new owners of ``event.record``.

        ``previous_owners`` are the owners the store had for the record (None when it is
        new); ``states`` holds the strategy state of each bot on the record. Every bot set
        as an owner is replaced by its pick or removed: a bot never stays an owner.
        """
        record = event.record
        owners = list(record.owners)
        decisions: list[Decision] = []
        new_states: dict[str, dict[str, Any]] = {}
        for bot_id in record.bot_ids():
            decision = self._decide_bot(event, bot_id, states.get(bot_id, {}))
            decisions.append(decision)
            ref = owners.index(BOT_PREFIX + bot_id)
            if decision.owner is None or decision.owner in owners:
                del owners[ref]
            else:
                owners[ref] = decision.owner
            if decision.status == "assigned":
                new_states[bot_id] = decision.state_after
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
        return Decided(record.model_copy(update={"owners": owners}), outcome, new_states)

    def _decide_bot(self, event: Event, bot_id: str, state: Mapping[str, Any]) -> Decision:
        account, record = event.account, event.record
        bot = self.rules.bot(account, bot_id)
        if bot is None:  # the engine validates events first; this guards direct callers
            raise ValueError(f"bot {bot_id!r} is not a bot of account {account!r}")
        reasons = [r for r in self.hook.salesbot_bot_applies(bot=bot, event=event, record=record) if r]
        if not reasons and not self.rules.conditions.matches(
            condition_key(account, bot.id), record.condition_fields()
        ):
            reasons.append("the record does not match trigger.where")
        if reasons:
            return Decision(bot=bot.id, status="not_applied", reason="; ".join(reasons))

        pool = [self.rules.user(account, user_id) for user_id in bot.users]
        skipped: dict[str, Skip] = {}
        for result in self.hook.salesbot_filter_candidates(
            bot=bot, record=record, candidates=[u for u in pool if u is not None]
        ):
            for skip in result:
                skipped.setdefault(skip.user, skip)
        candidates = [user_id for user_id in bot.users if user_id not in skipped]
        if not candidates:
            return Decision(bot=bot.id, status="no_candidate", strategy=bot.strategy,
                            reason="no user in the pool is eligible",
                            skipped=list(skipped.values()), state_before=dict(state))

        strategy = self.strategies[bot.strategy]
        pick = strategy.select(SelectRequest(bot, record, tuple(candidates), dict(state)))
        if pick.user not in candidates:
            raise PluginError(
                f"strategy {bot.strategy!r} picked {pick.user!r} for bot {bot.id!r}, "
                f"who is not one of its candidates {candidates}"
            )
        return Decision(
            bot=bot.id, status="assigned", owner=pick.user, reason=pick.reason,
            strategy=bot.strategy, candidates=candidates, skipped=list(skipped.values()),
            state_before=dict(state), state_after=dict(pick.state),
        )
