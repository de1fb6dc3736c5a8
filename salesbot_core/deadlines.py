"""``Engine.tick``: records whose owner missed a deadline (an SLA) handed on.

Why separate: the event's path (``engine``) only writes and clears due items; handing
a record on when its deadline passed is a path of its own, run by a scheduler, which
decides the record again through the event path. A mixin of ``Engine``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

from .decision import Decider, Reassign
from .errors import EventError
from .models import (
    BOT_PREFIX,
    LIST_PREFIX,
    DueItem,
    Event,
    Outcome,
    Ownership,
    ownership,
    record_from_json,
    utc_iso,
)
from .registry import Registry
from .retrying import retrying
from .rulesets import Rules
from .store import Store, Transaction, each_in


class Deadlines:
    """``tick`` and what it needs of the engine (``Engine`` provides the rest)."""

    rules: Rules
    store: Store
    registry: Registry
    _decider: Decider

    @abstractmethod
    def _validate(self, event: Event | Mapping[str, Any], list_operation: bool) -> Event: ...

    @abstractmethod
    def _handle_in(
        self,
        tx: Transaction,
        event: Event,
        route: bool,
        stored: Ownership | None = None,
        reassign: Reassign | None = None,
        reassignments: int = 0,
    ) -> Outcome: ...

    @abstractmethod
    def _observe(self, outcomes: list[Outcome]) -> None: ...

    def tick(
        self,
        now: datetime | None = None,
        *,
        batch_size: int = 100,
        stop: Callable[[], bool] | None = None,
    ) -> list[Outcome | EventError]:
        """Hand on every record whose deadline has passed at ``now`` (default: the clock).

        Each due item is taken, decided (``salesbot_sla_missed``: a new pick through the
        same or another bot with the owner excluded, the fallback owner, or nothing
        moves) and cleared in one transaction of up to ``batch_size`` items, so workers
        ticking at once handle each item once, and a tick killed midway leaves the items
        of its open batch due for the next. Returns the outcomes of records that had one
        (an item whose record is closed, gone, or already with someone else is dropped).

        The items of a transaction are group committed (``store.each_in``): each is
        decided under a savepoint of its own, so an item the event path refuses (its
        record's owners no longer in the rules published since, say) undoes only its own
        hand-on, is cleared all the same (never retried for ever), and its
        ``EventError`` is its result in the list; the others are handed on.

        When ``stop()`` turns true (a draining ``salesbot serve``), the tick ends after
        the batch it is running; the items left stay due for the next tick, of any worker.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        moment = _aware_utc(now or datetime.now(UTC))
        outcomes: list[Outcome | EventError] = []
        while True:
            taken, batch = retrying(partial(self._tick_batch, moment, batch_size))
            self._observe([r for r in batch if isinstance(r, Outcome)])
            outcomes += batch
            if taken < batch_size or (stop is not None and stop()):
                return outcomes

    def _tick_batch(self, now: datetime, batch_size: int) -> tuple[int, list[Outcome | EventError]]:
        """One transaction of ``tick``: how many items it took, and the results."""
        with self.store.transaction() as tx:
            items = tx.claim_due(utc_iso(now), batch_size)
            for due in items:
                # Outside the item's savepoint: a refused item is not taken again.
                tx.clear_due(due.account, due.entity, due.record_id)
            results = each_in(tx, items, lambda due: self._missed(tx, due, now))
        return len(items), [r for r in results if r is not None]

    def _missed(self, tx: Transaction, due: DueItem, now: datetime) -> Outcome | None:
        """Hand on one record whose deadline passed, inside ``tick``'s transaction."""
        account = due.account
        text = tx.get_record(account, due.entity, due.record_id)
        bot = self.rules.bot(account, due.bot)
        if text is None or bot is None:
            return None
        stored = ownership(text)
        if not stored.get("open", True) or due.owner not in stored["owners"]:
            return None  # closed, or moved on by hand: nothing left to hand on
        escalation = self._decider.first("salesbot_sla_missed", "bot", "due")(bot, due)
        if escalation is None:
            return None
        target = bot
        if escalation.to.startswith(BOT_PREFIX):
            target = self.rules.bot(account, escalation.to[len(BOT_PREFIX) :]) or bot
        final = escalation.to if escalation.to in ("fallback", "stay") else None
        if self.rules.account_settings(account).multiple_owners:
            owners = [o for o in stored["owners"] if o != due.owner] + [target.owner_ref]
        else:
            owners = [target.owner_ref]
        event = self._validate(
            {
                # A fresh key per item: its own namespace, never a host's event id.
                "id": f"{LIST_PREFIX}due/{due.key}",
                "kind": "list",
                "account": account,
                "at": now,
                "record": {**record_from_json(text).model_dump(mode="json"), "owners": owners},
            },
            list_operation=True,
        )
        outcome = self._handle_in(
            tx,
            event,
            False,
            stored=stored,
            reassign=Reassign(due.owner, escalation.note, final),
            reassignments=due.reassignments + 1,
        )
        if outcome.owners_after != stored["owners"]:
            tx.put_note(account, due.entity, due.record_id, escalation.note, target.id, event.id)
            for decision in outcome.assigned:
                if decision.notification is None:  # the bot has no template: a plain message
                    tx.put_notification(
                        account,
                        str(decision.owner),
                        f"{due.entity} {due.record_id} is yours: {escalation.note}",
                        event.id,
                        due.entity,
                        due.record_id,
                    )
            if escalation.notify_previous:
                tx.put_notification(
                    account,
                    due.owner,
                    f"{due.entity} {due.record_id}: {escalation.note}",
                    event.id,
                    due.entity,
                    due.record_id,
                )
        return outcome


def _aware_utc(moment: datetime) -> datetime:
    """An aware instant; a naive one is taken as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
