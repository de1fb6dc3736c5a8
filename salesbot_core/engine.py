"""The Engine: what a host app embeds. It owns a plugin manager, the loaded rules and a store.

``Engine.handle`` validates an event, then in ONE store transaction: answers a repeated
event id from the log, reads the strategy state, lets the decider decide, and writes
the record, the new state and the outcome together.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast

from pydantic import ValidationError

from .conditions import choose_evaluator
from .decision import Decider, Reads, Reassign
from .entities import LinkRef
from .errors import (
    EventError,
    IdempotencyConflict,
    RulesetError,
    SalesbotError,
    StoreError,
    TransientStoreError,
)
from .fields import FieldSpec
from .limits import MAX_EVENT_ID, MAX_ROW_ID
from .models import (
    BOT_PREFIX,
    FROM_STORE,
    GIVEN_BY,
    LIST_PREFIX,
    USER_PREFIX,
    Bot,
    Decision,
    DueItem,
    EntityType,
    Event,
    Note,
    Notification,
    Outcome,
    User,
    given_by,
    list_event_id,
    record_from_dict,
    utc_iso,
)
from .periods import CALENDAR, OPEN_OWNED, usage_bounds
from .registry import Registry, make_plugin_manager
from .reloading import RulesStatus
from .rulesets import Rules, folder_fingerprint, folder_stats, load_rulesets, scan_folder
from .safetext import excerpt
from .store import Store, Switch, Transaction, kept_payload, queue_deliveries
from .strategy import Context, RecordT
from .vocabulary import DEFAULT_RULESETS as DEFAULT_RULESETS
from .vocabulary import DEFAULT_STORE as DEFAULT_STORE
from .vocabulary import MAX_OUTBOX_LIMIT as MAX_OUTBOX_LIMIT

T = TypeVar("T")

#: How often a transaction is tried when the store fails in a way that passes
#: (``TransientStoreError``: a deadlock, a lost connection, a server restarting).
RETRY_ATTEMPTS = 12
#: Backoff before each retry: a random wait (full jitter, so workers that failed together
#: don't retry together) of up to 50 ms, doubling each time, up to 5 s. The 11 waits of
#: 12 attempts add up to at most about 26 s (13 s on average), plus the pool's own wait
#: for a connection: enough to ride out a PostgreSQL restart.
RETRY_FIRST_WAIT = 0.05
RETRY_MAX_WAIT = 5.0


class Offboarded(NamedTuple):
    """What ``Engine.offboard`` did."""

    #: One per record redistributed by this run (a rerun of the same operation skips the
    #: records it already moved: they are no longer the user's).
    outcomes: list[Outcome]
    #: ``(entity, id)`` of open records no active bot could take (none assigned them, and
    #: ``to_bot`` was not given or handles another entity): they stay with the user.
    left: list[tuple[str, str]]
    #: Records still to move because ``limit`` ended this run: run the operation again.
    remaining: int = 0
    #: The records earlier runs of the same operation moved, oldest first.
    earlier: Sequence[Outcome] = ()

    def moved(self) -> dict[str, dict[str, int]]:
        """How many records each bot gave to whom over every run of the operation, so a
        rerun answers as the first run did."""
        counts: dict[str, dict[str, int]] = {}
        for outcome in [*self.earlier, *self.outcomes]:
            for decision in outcome.assigned:
                per_bot = counts.setdefault(decision.bot, {})
                per_bot[str(decision.owner)] = per_bot.get(str(decision.owner), 0) + 1
        return {bot: dict(sorted(owners.items())) for bot, owners in sorted(counts.items())}

    def summary(self) -> dict[str, Any]:
        """The operation so far as JSON (``salesbot user offboard --json``, the API): the
        same whichever run of the operation answers, once ``done``."""
        return {
            "moved": self.moved(),
            "records_moved": len(self.earlier) + len(self.outcomes),
            "left": [{"entity": entity, "id": record_id} for entity, record_id in self.left],
            "remaining": self.remaining,
            "done": self.remaining == 0,
        }


class UserState(NamedTuple):
    """A user of an account now: on or off (ruleset or switch), and the switch, which
    keeps who set it and when (``None`` if never switched)."""

    user: User
    active: bool
    switch: Switch | None

    def summary(self) -> dict[str, Any]:
        """As JSON (``salesbot user list --json``, the API's ``GET /users``)."""
        return {
            "id": self.user.id,
            "name": self.user.display_name,
            "active": self.active,
            "switched_by": self.switch.by if self.switch else None,
            "switched_at": self.switch.at if self.switch else None,
        }


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


def retry_wait(attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...): full jitter."""
    return random.uniform(0, min(RETRY_MAX_WAIT, RETRY_FIRST_WAIT * 2 ** (attempt - 1)))


def _retrying(fn: Callable[[], T]) -> T:
    """Run ``fn`` (one whole store transaction) until it does not fail transiently, at
    most ``RETRY_ATTEMPTS`` times. Safe because a failed transaction left nothing behind
    and every event is idempotent: one that did commit is answered from the log."""
    for attempt in range(1, RETRY_ATTEMPTS):
        try:
            return fn()
        except TransientStoreError:
            time.sleep(retry_wait(attempt))
    return fn()


def open_store(registry: Registry, url: str, readonly: bool = False, dry_run: bool = False) -> Store:
    """Ask the store plugins for a store that handles ``url`` (a path or a URL); with
    ``readonly``, one that exists, opened for reading only; with ``dry_run``, one opened
    for ``Store.dry_run`` only, creating nothing (see ``salesbot_open_store``)."""
    store = registry.pm.hook.salesbot_open_store(url=url, readonly=readonly, dry_run=dry_run)
    if store is None:
        raise StoreError(f"no store plugin handles {url!r}")
    return store


class Engine:
    """Routes CRM records to owners by the bots of a rulesets folder.

    >>> engine = Engine("rulesets", "salesbot.db")            # doctest: +SKIP
    >>> engine.handle({"id": "e1", "kind": "created",
    ...                "record": {"entity": "deal", "id": "d1", "owners": ["bot:inbound"]}})
    """

    def __init__(
        self,
        rulesets: str | Path | Rules = DEFAULT_RULESETS,
        store: str | Path | Store = DEFAULT_STORE,
        *,
        plugins: Iterable[object] = (),
        block: Iterable[str] = (),
        autoload: bool | None = None,
        readonly: bool = False,
        dry_run: bool = False,
        conditions: str | None = None,
    ):
        """Build the plugin registry, load the rules, open the store.

        ``plugins`` are extra plugin objects or modules from the host; ``block`` names
        plugins not to load; ``autoload`` controls the ``salesbot`` entry points.
        ``readonly`` opens an existing store for reading only (nothing is created or
        upgraded; handling events then fails with ``StoreError``). ``dry_run`` opens the
        store for ``simulate`` only: nothing is created or upgraded (a store that does not
        exist is an empty one) and every other write fails.
        ``conditions`` picks the ``trigger.where`` evaluator, ``"durable"`` (durable-rules,
        the default where it runs: Python 3.11 and 3.12) or ``"python"`` (the only one on
        3.13+); by default the ``SALESBOT_CONDITIONS`` environment variable decides.
        Raises ``RulesetError``, ``PluginError`` or ``StoreError`` with a readable message.
        """
        self.registry = make_plugin_manager(plugins, block=block, autoload=autoload)
        self.catalog = self.registry.catalog()
        self._folder: Path | None = None
        self._conditions = choose_evaluator(conditions)
        now = datetime.now(UTC)
        if isinstance(rulesets, Rules):
            self.rules = rulesets
            #: The running rules: when loaded, from which files, the last reload's errors.
            self.rules_status = RulesStatus(None, now, (), now)
        else:
            self._folder = Path(rulesets)
            self._stats = folder_stats(self._folder, time.time())
            self._fingerprint = folder_fingerprint(self._folder)
            self._failed: str | None = None
            self.rules = load_rulesets(self._folder, self.catalog, conditions=self._conditions)
            self.rules_status = RulesStatus(str(self._folder), now, _file_names(self._folder), now)
        self.store = (
            store if isinstance(store, Store) else open_store(self.registry, str(store), readonly, dry_run)
        )
        self._decider = Decider(self.rules, self.catalog, self.registry.pm.hook)

    def reload(self, force: bool = False) -> bool:
        """Reload the rulesets folder if its files changed (or always, with ``force``).

        Returns whether new rules were loaded. If the folder is now invalid, raises
        ``RulesetError`` and the engine keeps running on the last good rules; the error is
        raised once per broken version of the folder (until its files change again, a call
        returns False) and stays in ``rules_status.errors``. Bot switches and rotation
        state live in the store and carry over. Cheap when nothing changed: the files'
        stats are compared (``folder_stats``), their contents only when the stats differ
        or are too recent to tell.
        """
        if self._folder is None:
            return False
        now, stats = datetime.now(UTC), folder_stats(self._folder, time.time())
        status = self.rules_status
        if not force and stats is not None and stats == self._stats:
            self.rules_status = replace(status, checked_at=now)
            return False
        fingerprint = folder_fingerprint(self._folder)
        self._stats = stats
        if not force and fingerprint == self._fingerprint:  # back to the running rules
            self._failed = None
            self.rules_status = replace(status, checked_at=now, errors=())
            return False
        if not force and fingerprint == self._failed:
            self.rules_status = replace(status, checked_at=now)
            return False
        try:
            rules = load_rulesets(self._folder, self.catalog, conditions=self._conditions)
        except RulesetError as exc:
            self._failed = fingerprint
            self.rules_status = replace(status, checked_at=now, errors=tuple(exc.problems))
            raise
        old_rules, self.rules, self._fingerprint, self._failed = self.rules, rules, fingerprint, None
        self._decider = Decider(rules, self.catalog, self.registry.pm.hook)
        old_rules.conditions.close()  # the evaluator's state for the old conditions is freed
        self.rules_status = RulesStatus(str(self._folder), now, _file_names(self._folder), now)
        return True

    @property
    def plugin_failures(self) -> list[str]:
        """Entry-point plugins that failed to import, one readable line each."""
        return [str(failure) for failure in self.registry.failures]

    def validate(self, event: Event | Mapping[str, Any]) -> Event:
        """Return ``event`` as a valid ``Event`` or raise ``EventError`` naming the field.

        Nothing is written: a bad event, however malformed (not an object, ``NaN``, a
        lone surrogate, too deep, too large: see ``salesbot_core.limits``), is only ever
        this error.
        """
        return self._validate(event, list_operation=False)

    def _validate(self, event: Event | Mapping[str, Any], list_operation: bool) -> Event:
        """``validate``; ``list_operation`` events (made by ``assign_list``) may, and only
        they may, have ids in the list operations' namespace."""
        if not isinstance(event, Event):
            try:
                context = {FROM_STORE: True} if list_operation else None
                event = Event.model_validate(event, context=context)
            except ValidationError as exc:
                event_id = event.get("id") if isinstance(event, Mapping) else None
                raise EventError(_describe(event_id, exc)) from None
        if event.id.startswith(LIST_PREFIX) and not list_operation:
            raise EventError(
                f"event {event.id!r}: field 'id': ids starting with {LIST_PREFIX!r} are "
                "reserved for list operations (Engine.assign_list)"
            )
        account = event.account
        owners = event.record.owners
        if len(owners) > 1 and not self.rules.account_settings(account).multiple_owners:
            raise EventError(
                f"event {event.id!r}: field 'record.owners': account {account!r} "
                "allows one owner per record (settings.multiple_owners is off)"
            )
        for i, owner in enumerate(owners):
            if owner.startswith(BOT_PREFIX):
                if self.rules.bot(account, owner[len(BOT_PREFIX) :]) is None:
                    raise EventError(
                        f"event {event.id!r}: field 'record.owners.{i}': "
                        f"{owner!r} is not a bot of account {account!r}"
                    )
            elif self.rules.user(account, owner) is None:
                raise EventError(
                    f"event {event.id!r}: field 'record.owners.{i}': "
                    f"{owner!r} is not a user of account {account!r}"
                )
        return event

    def handle(self, event: Event | Mapping[str, Any], *, route: bool = False) -> Outcome:
        """Process one event exactly once and return its outcome.

        An event id seen before returns the first outcome (``duplicate=True``) and
        changes nothing. Raises ``EventError`` for an invalid event, changing nothing.
        With ``route``, a record with no bot among its owners is routed by the account's
        bots for its entity, in priority order (see ``route``).
        """
        valid = self.validate(event)

        def attempt() -> Outcome:
            with self.store.transaction() as tx:
                return self._handle_in(tx, valid, route)

        outcome = _retrying(attempt)
        self._observe([outcome])
        return outcome

    def _handle_in(
        self,
        tx: Transaction,
        event: Event,
        route: bool,
        stored: dict[str, Any] | None = None,
        reassign: Reassign | None = None,
        reassignments: int = 0,
    ) -> Outcome:
        """Decide a valid event and write what it changes, inside an open transaction.

        ``stored`` is the record as the transaction read it already (a list operation's),
        else it is read here. ``reassign`` hands on a record whose owner missed a deadline
        (``tick``), for the ``reassignments``-th time."""
        record, account = event.record, event.account
        seen = tx.outcome(account, event.id, (record.entity, record.id))
        if seen is not None:
            if event.id.startswith(LIST_PREFIX):
                # A list operation reads its records from the store when it runs, so a
                # repeat carries them as the first run left them: the bot it sets is what
                # says whether it is the same operation.
                first = [o for o in seen.outcome.owners_before if o.startswith(BOT_PREFIX)]
                same = first == [BOT_PREFIX + bot for bot in event.record.bot_ids()]
            else:  # logs from before fingerprints (None) cannot tell
                same = seen.fingerprint in (None, event.fingerprint)
            if not same:
                raise IdempotencyConflict(
                    f"event {event.id!r}: field 'id': already processed with a different payload; "
                    "the first delivery's outcome stands (a new event needs a new id)"
                )
            return seen.outcome.model_copy(update={"duplicate": True})
        reads = self._read(tx, event, self._decider.bots_that_may_fire(event, route), stored)
        decided = self._decider.decide(event, replace(reads, reassign=reassign), route)
        if decided.reroute and not route:
            # A bot took back the owner it gave and sends the record back to the pool: it
            # is routed, so the routing bots' state is read (and locked) too.
            reads = self._read(tx, event, self._decider.bots_that_may_fire(event, True), stored)
            decided = self._decider.decide(event, replace(reads, reassign=reassign), True)
        for bot_id, state in decided.states.items():
            tx.put_state(account, bot_id, state)
        for changed in (decided.record, *decided.linked):
            given = decided.given.get((changed.entity, changed.id))
            tx.put_record(
                account, {**changed.model_dump(mode="json"), **({GIVEN_BY: given} if given else {})}
            )
        for note in decided.notes:
            tx.put_note(account, *note.ref, note.text, note.bot, event.id)
        for user, text in decided.notifications:
            tx.put_notification(account, user, text, event.id, record.entity, record.id)
        tx.put_outcome(decided.outcome, event.fingerprint or None)
        # The time the event was decided at: a replay decides it again then, and deadlines
        # are counted from it.
        at = decided.outcome.at or datetime.now(UTC)
        tx.put_event(account, event.id, at, kept_payload(event, at), route)
        # The outbox of webhooks: deliveries are committed with the event or not at all.
        queue_deliveries(tx, decided.outcome, decided.notifications)
        if reassign is None:
            self._meet_due(tx, event, decided.record, at)
        self._put_due(tx, decided.outcome, decided.record, reassignments, at)
        return decided.outcome

    def _meet_due(self, tx: Transaction, event: Event, record: RecordT, now: datetime) -> None:
        """Clear the record's due item if the event meets it (``salesbot_sla_met``). Read
        only when a plugin can meet one: an engine without SLAs pays nothing."""
        hook = self.registry.pm.hook
        if not hook.salesbot_sla_met.get_hookimpls() or not self._decider.has_deadlines(event.account):
            return
        due = tx.get_due(event.account, record.entity, record.id)
        if due is None:
            return
        bot = self.rules.bot(due.account, due.bot)
        if bot is None:  # a bot no longer in the rules has no deadline to keep
            tx.clear_due(due.account, due.entity, due.record_id)
            return
        # The plugins' field conditions (``sla.met_when.where``) tested on this record.
        context = Context(now=now, matches=self._decider.field_matcher(event))
        if hook.salesbot_sla_met(bot=bot, due=due, event=event, record=record, context=context):
            tx.clear_due(due.account, due.entity, due.record_id)

    def _put_due(
        self, tx: Transaction, outcome: Outcome, record: RecordT, reassignments: int, at: datetime
    ) -> None:
        """Write a due item for each owner a bot gave the record at ``at``, if a plugin sets
        a deadline (``salesbot_due``); the last one wins (one item per record)."""
        hook = self.registry.pm.hook
        if not hook.salesbot_due.get_hookimpls():
            return
        for decision in outcome.assigned:
            bot = self.rules.bot(outcome.account, decision.bot)
            owner = self.rules.user(outcome.account, str(decision.owner))
            if bot is None or owner is None:
                continue
            due_at = hook.salesbot_due(
                bot=bot, record=record, owner=owner, at=at, reassignments=reassignments
            )
            if due_at is None:
                continue
            tx.put_due(
                DueItem(
                    key=uuid.uuid4().hex,
                    account=outcome.account,
                    entity=outcome.entity,
                    record_id=outcome.record_id,
                    bot=bot.id,
                    owner=owner.id,
                    assigned_at=utc_iso(at),
                    due_at=utc_iso(due_at),
                    reassignments=reassignments,
                )
            )

    def tick(self, now: datetime | None = None, *, batch_size: int = 100) -> list[Outcome]:
        """Hand on every record whose deadline has passed at ``now`` (default: the clock).

        Each due item is taken, decided (``salesbot_sla_missed``: a new pick through the
        same or another bot with the owner excluded, the fallback owner, or nothing
        moves) and cleared in one transaction of up to ``batch_size`` items, so workers
        ticking at once handle each item once, and a tick killed midway leaves the items
        of its open batch due for the next. Returns the outcomes of records that had one
        (an item whose record is closed, gone, or already with someone else is dropped).
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        moment = _aware_utc(now or datetime.now(UTC))
        outcomes: list[Outcome] = []
        while True:
            taken, batch = _retrying(partial(self._tick_batch, moment, batch_size))
            self._observe(batch)
            outcomes += batch
            if taken < batch_size:
                return outcomes

    def _tick_batch(self, now: datetime, batch_size: int) -> tuple[int, list[Outcome]]:
        """One transaction of ``tick``: how many items it took, and the outcomes."""
        outcomes: list[Outcome] = []
        with self.store.transaction() as tx:
            items = tx.claim_due(utc_iso(now), batch_size)
            for due in items:
                tx.clear_due(due.account, due.entity, due.record_id)
                outcome = self._missed(tx, due, now)
                if outcome is not None:
                    outcomes.append(outcome)
        return len(items), outcomes

    def _missed(self, tx: Transaction, due: DueItem, now: datetime) -> Outcome | None:
        """Hand on one record whose deadline passed, inside ``tick``'s transaction."""
        account = due.account
        stored = tx.get_record(account, due.entity, due.record_id)
        bot = self.rules.bot(account, due.bot)
        if stored is None or bot is None or not stored.get("open", True) or due.owner not in stored["owners"]:
            return None  # closed, or moved on by hand: nothing left to hand on
        escalation = self.registry.pm.hook.salesbot_sla_missed(bot=bot, due=due)
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
                "record": {**record_from_dict(stored).model_dump(mode="json"), "owners": owners},
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

    def route(self, event: Event | Mapping[str, Any]) -> Outcome:
        """Route a record that has no bot set: the account's bots for its entity are tried
        in ascending ``priority`` (then file order) and the first that applies picks the
        owner, as CRM assignment rules do. Exactly once, like ``handle``."""
        return self.handle(event, route=True)

    def _read(
        self, tx: Transaction, event: Event, bots: list[Bot], stored: dict[str, Any] | None = None
    ) -> Reads:
        """Everything the decision needs from the store, read inside the transaction."""
        account, record = event.account, event.record
        now = event.at or datetime.now(UTC)
        now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
        if stored is None:
            stored = tx.get_record(account, record.entity, record.id)
        previous = stored["owners"] if stored else None
        given = {(record.entity, record.id): given_by(stored)}
        if not bots:
            # Owners a bot gave may be taken back: whether the bot is switched on counts.
            switches = tx.get_switches(account) if given_by(stored) else {}
            return Reads(Context(now=now), bots, previous_owners=previous, switches=switches, given=given)
        handler = self.catalog.entities[record.entity]
        linked: dict[LinkRef, RecordT] = {}
        for entity, record_id in handler.links(record, dict.fromkeys(handler.related, True)):
            data = tx.get_record(account, entity, record_id)
            if data is not None:
                linked[(entity, record_id)] = record_from_dict(data)
                given[(entity, record_id)] = given_by(data)
        # Rotation states are locked (on PostgreSQL) in one order, bot id, then each capped
        # user's usage in user-id order, so two events never wait for each other in a cycle.
        states = {bot.id: tx.get_state(account, bot.id) for bot in sorted(bots, key=lambda b: b.id)}
        pool = {user for bot in bots for user in bot.users}
        loaded = [u for bot in bots if self.catalog.strategies[bot.strategy].needs_load for u in bot.users]
        counted = [spec for spec in self.catalog.fields_of("user").values() if spec.counts_usage]
        capped = [
            user
            for user in map(lambda u: self.rules.user(account, u), sorted(pool))
            if user and any(user.plugin_fields.get(spec.key) is not None for spec in counted)
        ]
        context = Context(
            now=now,
            linked=linked,
            load=_without(tx.open_load(account, record.entity, sorted(set(loaded))), stored)
            if loaded
            else {},
            usage={user.id: _usage(tx, account, user, counted, now, stored) for user in capped},
        )
        return Reads(
            context,
            bots,
            previous_owners=previous,
            states=states,
            switches=tx.get_switches(account),
            given=given,
        )

    def handle_many(
        self, events: Iterable[Event | Mapping[str, Any]], *, batch_size: int = 1
    ) -> list[Outcome]:
        """Process several events (a list operation, a batch of webhooks) in one call.

        All events are validated first: if any is invalid, ``EventError`` lists every bad
        one and nothing is processed. Each record still gets its own pick, in order.
        ``batch_size`` events share one transaction: 1 (the default) commits each event
        on its own, so a crash loses at most the event in flight; a larger batch (a list
        operation over 100,000 records) commits far less often, and a crash or an error
        then rolls back the whole batch in flight, never part of an event.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        valid: list[Event] = []
        errors: list[str] = []
        for event in events:
            try:
                valid.append(self.validate(event))
            except EventError as exc:
                errors.append(str(exc))
        if errors:
            raise EventError("\n".join(errors))
        outcomes: list[Outcome] = []
        for start in range(0, len(valid), batch_size):
            batch = _retrying(partial(self._handle_batch, valid[start : start + batch_size]))
            self._observe(batch)
            outcomes += batch
        return outcomes

    def simulate(
        self, events: Iterable[Event | Mapping[str, Any]], *, route: bool | Sequence[bool] = False
    ) -> list[Outcome | EventError]:
        """Decide ``events`` in turn as ``handle`` would, writing nothing: a dry run.

        They run in one ``Store.dry_run`` transaction, which is rolled back at the end:
        each event is decided on the store's rotation state, switches, open records and
        caps usage as the events before it left them, and nothing is committed. Observers
        (``salesbot_after_assign``) are not told. Returns, for each event in order, its
        outcome (``duplicate=True`` for an id the store already processed) or the
        ``EventError`` that rejects it (an invalid event changes nothing in the run).
        ``route`` may also say, per event, whether it is routed (a replay of history).
        """
        checked: list[Event | EventError] = []
        for event in events:
            try:
                checked.append(self.validate(event))
            except EventError as exc:
                checked.append(exc)

        def attempt() -> list[Outcome | EventError]:
            decided: list[Outcome | EventError] = []
            routes = [route] * len(checked) if isinstance(route, bool) else list(route)
            with self.store.dry_run() as tx:
                for item, routed in zip(checked, routes, strict=True):
                    if isinstance(item, EventError):
                        decided.append(item)
                        continue
                    try:
                        decided.append(self._handle_in(tx, item, routed))
                    except EventError as exc:  # raised before the event writes anything
                        decided.append(exc)
            return decided

        return _retrying(attempt)

    def _handle_batch(self, events: list[Event]) -> list[Outcome]:
        """Valid events in one transaction: all committed, or none."""
        with self.store.transaction() as tx:
            return [self._handle_in(tx, event, False) for event in events]

    def _observe(self, outcomes: list[Outcome]) -> None:
        """Tell the observers about committed outcomes (not about duplicates)."""
        for outcome in outcomes:
            if not outcome.duplicate:
                self.registry.pm.hook.salesbot_after_assign(outcome=outcome)

    def assign_list(
        self,
        account: str,
        entity: EntityType,
        record_ids: Iterable[str],
        bot_id: str,
        operation: str,
        *,
        batch_size: int = 500,
    ) -> list[Outcome]:
        """A list operation: set ``bot_id`` as the owner of stored records, each its own pick.

        The CRM's bulk "set owner" from a list view. ``operation`` identifies this bulk
        operation: repeating it with the same id changes nothing (each record's event id
        is ``list/<operation>/<entity>/<record id>``, see ``list_event_id``: no host event
        can take it). In multiple-owner accounts the bot is added beside
        the current owners; otherwise it replaces them. Unknown records are an
        ``EventError`` before anything is changed.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        ids = list(record_ids)
        missing = _retrying(
            lambda: [rid for rid in ids if self.store.get_record(account, entity, rid) is None]
        )
        if missing:
            raise EventError(
                f"list operation {operation!r}: no {entity} record "
                f"{', '.join(map(repr, missing))} in account {account!r}"
            )
        multiple = self.rules.account_settings(account).multiple_owners
        outcomes: list[Outcome] = []
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            batch = _retrying(
                partial(self._assign_batch, account, entity, chunk, bot_id, operation, multiple)
            )
            self._observe(batch)
            outcomes += batch
        return outcomes

    def _assign_batch(
        self,
        account: str,
        entity: EntityType,
        ids: list[str],
        bot_id: str,
        operation: str,
        multiple: bool,
        without: str | None = None,
    ) -> list[Outcome]:
        """One batch of a list operation, in one transaction; ``without`` is taken off the
        records' owners (an offboarded user)."""
        outcomes: list[Outcome] = []
        with self.store.transaction() as tx:
            for record_id in ids:
                # Read inside the event's transaction (and, on PostgreSQL, under its record
                # lock): a change another worker committed since the check in assign_list
                # is built on, never overwritten by a stale copy.
                stored = tx.get_record(account, entity, record_id)
                if stored is None:  # records are never deleted; a guard, not a path
                    raise EventError(f"list operation {operation!r}: {entity} {record_id!r} vanished")
                kept = [o for o in stored["owners"] if o != without]
                owners = [*kept, BOT_PREFIX + bot_id] if multiple else [BOT_PREFIX + bot_id]
                event = {
                    "id": list_event_id(operation, entity, record_id),
                    "kind": "list",
                    "account": account,
                    "record": {**record_from_dict(stored).model_dump(mode="json"), "owners": owners},
                }
                valid = self._validate(event, list_operation=True)
                outcomes.append(self._handle_in(tx, valid, False, stored))
        return outcomes

    def set_user_active(self, account: str, user_id: str, active: bool, by: str | None = None) -> None:
        """Switch a user on or off, overriding the ruleset's ``active`` until switched again:
        a user switched off gets no new record (``salesbot user activate``/``offboard``).
        ``by`` names who did it (``cli``, ``api``): the store keeps it with the time."""
        if self.rules.user(account, user_id) is None:
            raise SalesbotError(f"no user {user_id!r} in account {account!r}")
        self.store.set_switch(account, USER_PREFIX + user_id, active, by)

    def users(self, account: str) -> list[UserState]:
        """Each user of an account, in file order: active now, and who switched them when."""
        switches = self.store.switches(account)
        return [
            UserState(user, switch.active if switch else user.active, switch)
            for (acc, user_id), user in self.rules.users.items()
            if acc == account
            for switch in (switches.get(USER_PREFIX + user_id),)
        ]

    def offboard(
        self,
        account: str,
        user_id: str,
        operation: str,
        *,
        to_bot: str | None = None,
        batch_size: int = 500,
        progress: Callable[[int, int], None] | None = None,
        limit: int | None = None,
        by: str | None = None,
    ) -> Offboarded:
        """Switch a user off and redistribute every open record they own.

        Each record goes through the bot that assigned it to the user if that bot is
        active, else through ``to_bot``; each is a pick of its own (audit, note,
        notification), the user skipped as deactivated, so a bot spreads the records as its
        strategy does (round robin: evenly). Records are committed ``batch_size`` at a time
        as a list operation ``operation``: a rerun (after a crash) finishes what is left and
        moves nothing twice. ``progress(done, total)`` is called after each batch. With
        ``limit``, at most that many records move in this run (``remaining`` says how many
        are left for the next). ``by`` names who switched the user off. An operation id
        names one offboarding (like a list operation's): take a new one for each.
        """
        if to_bot is not None and self.rules.bot(account, to_bot) is None:
            raise SalesbotError(f"--to-bot: no bot {to_bot!r} in account {account!r}")
        if batch_size < 1 or (limit is not None and limit < 0):
            raise ValueError("batch_size must be at least 1 and limit at least 0")
        for entity, record_id in _retrying(lambda: self.store.open_records(account, user_id)):
            # An operation id too long for a record's event id: EventError before any write.
            list_event_id(operation, cast(EntityType, entity), record_id)
        self.set_user_active(account, user_id, False, by)
        earlier = _retrying(lambda: self.store.operation_outcomes(account, operation))
        active = {bot.id: on for bot, on in self.bots(account)}
        plan: dict[str, list[str]] = {}
        left: list[tuple[str, str]] = []
        # Read again now the user is off: a record an event gave them meanwhile moves too.
        for entity, record_id in _retrying(lambda: self.store.open_records(account, user_id)):
            bot_id = self._assigned_by(account, entity, record_id, user_id)
            for choice in (bot_id, to_bot):
                bot = self.rules.bot(account, choice) if choice else None
                if bot is not None and active.get(bot.id) and bot.entity == entity:
                    plan.setdefault(bot.id, []).append(record_id)
                    break
            else:
                left.append((entity, record_id))
        multiple = self.rules.account_settings(account).multiple_owners
        planned = sum(map(len, plan.values()))
        if limit is not None:  # the first ``limit`` records, bot by bot
            budget, capped = limit, {}
            for bot_id, ids in plan.items():
                capped[bot_id] = ids[:budget]
                budget -= len(capped[bot_id])
            plan = capped
        total, done = sum(map(len, plan.values())), 0
        outcomes: list[Outcome] = []
        for bot_id, ids in plan.items():
            entity = self.rules.bots[(account, bot_id)].entity
            for start in range(0, len(ids), batch_size):
                chunk = ids[start : start + batch_size]
                batch = _retrying(
                    partial(self._assign_batch, account, entity, chunk, bot_id, operation, multiple, user_id)
                )
                self._observe(batch)
                outcomes += [o for o in batch if not o.duplicate]
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        return Offboarded(outcomes, left, planned - total, earlier)

    def _assigned_by(self, account: str, entity: str, record_id: str, user_id: str) -> str | None:
        """The bot that last gave the record itself to the user, or None."""
        for outcome in reversed(list(self.store.outcomes(account, entity, record_id))):
            if (outcome.entity, outcome.record_id) != (entity, record_id):
                continue  # the owner was passed on from a linked record: not this record's bot
            for decision in outcome.assigned:
                if decision.owner == user_id:
                    return decision.bot
        return None

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

        return _retrying(attempt)

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

    def close(self) -> None:
        """Close the store, and free the compiled conditions of rules the engine loaded
        (rules handed in belong to the caller, who may share them between engines)."""
        if self._folder is not None:
            self.rules.conditions.close()
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _file_names(folder: Path) -> tuple[str, ...]:
    """The names of the ruleset files of ``folder`` (as just loaded), in load order."""
    return tuple(path.name for path in scan_folder(folder)[0])


def _usage(
    tx: Transaction,
    account: str,
    user: User,
    counted: list[FieldSpec[Any]],
    now: datetime,
    stored: dict[str, Any] | None,
) -> dict[str, int]:
    """The counts the user's ``counts_usage`` fields ask for: assignments per period and
    window, and the open records they own (the record being routed left out, as in the
    load: routing it again must not count it against its owner)."""
    kinds: set[str] = set()
    for spec in counted:
        value = user.plugin_fields.get(spec.key)
        if value is not None:
            kinds.update(spec.usage_kinds(value) if spec.usage_kinds else CALENDAR)
    usage = {
        kind: tx.count_assigned(account, user.id, start, end)
        for kind, (start, end) in usage_bounds(now, user.zone, sorted(kinds)).items()
    }
    if OPEN_OWNED in kinds:
        usage[OPEN_OWNED] = _without({user.id: tx.count_open_owned(account, user.id)}, stored)[user.id]
    return usage


def _aware_utc(moment: datetime) -> datetime:
    """An aware instant; a naive one is taken as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _without(load: dict[str, int], stored: dict[str, Any] | None) -> dict[str, int]:
    """The load not counting the record being decided, which its stored owners still hold."""
    if stored is None or not stored.get("open", True):
        return load
    return {user: count - (user in stored["owners"]) for user, count in load.items()}


def _describe(event_id: object, exc: ValidationError) -> str:
    # The id and the field path come from the event: quoted bounded and escaped, so a
    # megabyte-long key is not echoed back.
    label = f"event {excerpt(event_id, MAX_EVENT_ID)}" if isinstance(event_id, str) else "event"
    return "; ".join(
        f"{label}: field {excerpt('.'.join(str(p) for p in err['loc']), MAX_EVENT_ID)}: {err['msg']}"
        for err in exc.errors()
    )
