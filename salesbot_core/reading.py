"""What a host reads back from the engine (bots, records, walls, the outbox, audits) and
the bots' switches.

Why separate: none of these decides an event; they read what the event path wrote, so
the event's path (``engine``) reads through without them. A mixin of ``Engine``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from .decision import Decider, Reads
from .errors import SalesbotError
from .limits import MAX_ROW_ID
from .models import Bot, Decision, EntityType, Event, Note, Notification, Outcome, Ownership, record_from_dict
from .retrying import retrying
from .rulesets import Rules
from .store import Store, Transaction
from .strategy import RecordT
from .vocabulary import MAX_OUTBOX_LIMIT


class Delivered(NamedTuple):
    """What ``Engine.mark_delivered`` did, each list in the order the ids were given."""

    marked: list[int]
    #: Delivered before, or no such notification in the account.
    not_pending: list[int]


def mark_delivered(store: Store, account: str, ids: Iterable[int]) -> Delivered:
    """``Engine.mark_delivered`` on a bare store (the CLI's outbox needs no rules)."""
    wanted = list(dict.fromkeys(ids))
    # An id no store can hold is simply not pending: it never reaches the driver.
    marked = set(store.mark_delivered(account, [i for i in wanted if 0 < i <= MAX_ROW_ID]))
    return Delivered(
        marked=[i for i in wanted if i in marked], not_pending=[i for i in wanted if i not in marked]
    )


def check_outbox_limit(limit: int) -> int:
    """``limit`` if it is a valid page size of the outbox, else a ``SalesbotError``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_OUTBOX_LIMIT:
        raise SalesbotError(f"outbox limit must be a whole number from 1 to {MAX_OUTBOX_LIMIT:,}: {limit!r}")
    return limit


class Reading:
    """The engine's readers and bot switches, and what they need of the engine."""

    rules: Rules
    store: Store
    _decider: Decider

    @abstractmethod
    def validate(self, event: Event | Mapping[str, Any]) -> Event: ...

    @abstractmethod
    def _read(
        self, tx: Transaction, event: Event, bots: list[Bot], stored: Ownership | None = None
    ) -> Reads: ...

    def owner_options(self, account: str, entity: EntityType) -> list[Bot]:
        """The bots a host offers in a record's Owner field beside its users.

        The account's active bots for ``entity`` (after switches), none when the add-on
        is switched off for the account.
        """
        if not self.rules.account_settings(account).enabled:
            return []
        return [bot for bot, active in self.bots(account) if active and bot.entity == entity]

    def bots(self, account: str) -> list[tuple[Bot, bool]]:
        """Each bot of an account with whether it is active now (ruleset or switch)."""
        switches = self.store.get_switches(account)
        return [(bot, switches.get(bot.id, bot.active)) for bot in self.rules.account_bots(account)]

    def set_bot_active(self, account: str, bot_id: str, active: bool, by: str | None = None) -> None:
        """Switch a bot on or off; it overrides the ruleset's ``active`` until switched again.
        ``by`` names who did it (a token, ``cli``): the store keeps it with the time."""
        if self.rules.bot(account, bot_id) is None:
            raise SalesbotError(f"no bot {bot_id!r} in account {account!r}")
        self.store.set_switch(account, bot_id, active, by)

    def pool_now(self, account: str, bot_id: str, at: datetime | None = None) -> Decision:
        """Whom a bot would pick for a new record now (or ``at``) if it fired, whatever its
        switch and trigger: each pool user a candidate or skipped with the engine's reason,
        and who is next in rotation. Decided in a dry run on the store's state: nothing is
        written. ``SalesbotError`` for an unknown bot."""
        bot = self.rules.bot(account, bot_id)
        if bot is None:
            raise SalesbotError(f"no bot {bot_id!r} in account {account!r}")
        record = {"entity": bot.entity, "id": "pool-now", "owners": [bot.owner_ref]}
        event = self.validate(
            {"id": "pool-now", "kind": "created", "account": account, "record": record, "at": at}
        )

        def attempt() -> Decision:
            with self.store.dry_run() as tx:
                return self._decider.pick_now(event, bot, self._read(tx, event, [bot]))

        return retrying(attempt)

    def record(self, account: str, entity: EntityType, record_id: str) -> RecordT | None:
        """A record as the engine last stored it."""
        data = self.store.get_record(account, entity, record_id)
        return record_from_dict(data) if data is not None else None

    def wall(self, account: str, entity: EntityType, record_id: str) -> list[Note]:
        """The notes bots wrote on a record's wall, oldest first."""
        return self.store.notes(account, entity, record_id)

    def outbox(
        self, account: str | None = None, limit: int = 100, after: int | None = None
    ) -> list[Notification]:
        """Notifications waiting to be delivered, oldest first: at most ``limit``, which
        is 1 to ``MAX_OUTBOX_LIMIT`` (``SalesbotError`` otherwise); page by marking
        delivered what was sent, or pass the last id of a page as ``after``."""
        if after is not None and not 0 <= after <= MAX_ROW_ID:
            raise SalesbotError(f"outbox 'after' must be a notification id from 0 to {MAX_ROW_ID}: {after!r}")
        return self.store.pending_notifications(account, check_outbox_limit(limit), after)

    def mark_delivered(self, account: str, ids: Iterable[int]) -> Delivered:
        """Mark notifications of ``account`` delivered. Returns the ids marked, and the
        ids that were not pending (delivered already) or are not in that account."""
        return mark_delivered(self.store, account, ids)

    def explain(self, account: str, entity: str, record_id: str) -> list[Outcome]:
        """Every outcome logged for a record, oldest first: who got it and why."""
        return list(self.store.outcomes(account, entity, record_id))
