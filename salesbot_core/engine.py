"""The Engine: what a host app embeds. It owns a plugin manager, the loaded rules and a store.

``Engine.handle`` validates an event, then in ONE store transaction: answers a repeated
event id from the log, reads the strategy state, lets the decider decide, and writes
the record, the new state and the outcome together.

This module is the event's path, read through in one file; the rest of ``Engine`` comes
from mixins of their own: ``deadlines`` (SLA ticks), ``offboarding`` (users switched off,
their records moved) and ``reading`` (what a host reads back, the bots' switches).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .conditions import ConditionSet, choose_evaluator
from .deadlines import Deadlines
from .decision import Decider, Reads, Reassign
from .entities import LinkRef
from .errors import (
    EventError,
    IdempotencyConflict,
    RulesetError,
    StoreError,
)
from .fields import FieldSpec
from .limits import MAX_EVENT_ID
from .managing import IN_STORE, Managing
from .models import (
    BOT_PREFIX,
    FROM_STORE,
    LIST_PREFIX,
    Bot,
    DueItem,
    EntityType,
    Event,
    Outcome,
    Ownership,
    User,
    given_by,
    list_event_id,
    ownership,
    record_from_json,
    stored_json,
    utc_iso,
)
from .offboarding import Offboarded as Offboarded
from .offboarding import Offboarding
from .offboarding import UserState as UserState
from .periods import CALENDAR, OPEN_OWNED, usage_bounds
from .reading import Delivered as Delivered
from .reading import Reading
from .reading import check_outbox_limit as check_outbox_limit
from .reading import mark_delivered as mark_delivered
from .registry import Registry, make_plugin_manager
from .reloading import RulesStatus
from .retrying import retrying
from .rulesets import Rules, folder_fingerprint, folder_stats, load_rulesets, scan_folder
from .safetext import excerpt
from .store import Store, Transaction, each_in, kept_payload, queue_deliveries
from .strategy import Context, RecordT
from .vocabulary import DEFAULT_RULESETS as DEFAULT_RULESETS
from .vocabulary import DEFAULT_STORE as DEFAULT_STORE
from .vocabulary import MAX_OUTBOX_LIMIT as MAX_OUTBOX_LIMIT


def open_store(registry: Registry, url: str, readonly: bool = False, dry_run: bool = False) -> Store:
    """Ask the store plugins for a store that handles ``url`` (a path or a URL); with
    ``readonly``, one that exists, opened for reading only; with ``dry_run``, one opened
    for ``Store.dry_run`` only, creating nothing (see ``salesbot_open_store``). A store
    that fails to open in a way that passes (``TransientStoreError``: a PostgreSQL server
    restarting) is tried again as every transaction is (``retrying``): a worker started
    during a restart waits it out instead of exiting."""
    hook = registry.pm.hook.salesbot_open_store
    store = retrying(lambda: hook(url=url, readonly=readonly, dry_run=dry_run))
    if store is None:
        raise StoreError(f"no store plugin handles {url!r}")
    return store


class Engine(Reading, Offboarding, Deadlines, Managing):
    """Routes CRM records to owners by the bots of a rulesets folder, or of the rules
    kept in the store (``rulesets=None``).

    >>> engine = Engine("rulesets", "salesbot.db")            # doctest: +SKIP
    >>> engine.handle({"id": "e1", "kind": "created",
    ...                "record": {"entity": "deal", "id": "d1", "owners": ["bot:inbound"]}})
    """

    def __init__(
        self,
        rulesets: str | Path | Rules | None = DEFAULT_RULESETS,
        store: str | Path | Store = DEFAULT_STORE,
        *,
        plugins: Iterable[object] = (),
        block: Iterable[str] = (),
        autoload: bool | None = None,
        readonly: bool = False,
        dry_run: bool = False,
        conditions: str | None = None,
        untrusted: bool = False,
    ):
        """Build the plugin registry, load the rules, open the store.

        ``rulesets`` is a folder of ruleset files, loaded ``Rules``, or None: the rules
        are kept in the store, published over the API or with ``salesbot rules push``
        (see ``salesbot_core.managing``).

        ``plugins`` are extra plugin objects or modules from the host; ``block`` names
        plugins not to load; ``autoload`` controls the ``salesbot`` entry points.
        ``readonly`` opens an existing store for reading only (nothing is created or
        upgraded; handling events then fails with ``StoreError``). ``dry_run`` opens the
        store for ``simulate`` only: nothing is created or upgraded (a store that does not
        exist is an empty one) and every other write fails.
        ``conditions`` picks the ``trigger.where`` evaluator, ``"durable"`` (durable-rules,
        the default where it runs: Python 3.11 and 3.12) or ``"python"`` (the only one on
        3.13+); by default the ``SALESBOT_CONDITIONS`` environment variable decides.
        ``untrusted``: the rules came from outside (over HTTP), so durable-rules compiles
        their conditions in a child process first, and one that crashes it is a
        ``RulesetError`` naming it instead of the end of this process.
        Raises ``RulesetError``, ``PluginError`` or ``StoreError`` with a readable message.
        """
        self.registry = make_plugin_manager(plugins, block=block, autoload=autoload)
        self.catalog = self.registry.catalog()
        self._folder: Path | None = None
        self._conditions = choose_evaluator(conditions)
        self._untrusted = untrusted
        now = datetime.now(UTC)
        self._in_store = rulesets is None
        self._generation = -1
        self._accounts = {}
        if rulesets is None:
            self.store = self._open(store, readonly, dry_run)
            self.rules_status = RulesStatus(IN_STORE, now, (), now)
            self.rules = Rules(bots={}, users={}, conditions=ConditionSet({}, self._conditions))
            self._decider = Decider(self.rules, self.catalog, self.registry.pm.hook)
            self.refresh_rules()
            return
        if isinstance(rulesets, Rules):
            self.rules = rulesets
            #: The running rules: when loaded, from which files, the last reload's errors.
            self.rules_status = RulesStatus(None, now, (), now)
        else:
            self._folder = Path(rulesets)
            self._stats = folder_stats(self._folder, time.time())
            self._fingerprint = folder_fingerprint(self._folder)
            self._failed: str | None = None
            self.rules = load_rulesets(
                self._folder, self.catalog, conditions=self._conditions, isolated=self._untrusted
            )
            self.rules_status = RulesStatus(str(self._folder), now, _file_names(self._folder), now)
        self.store = self._open(store, readonly, dry_run)
        self._decider = Decider(self.rules, self.catalog, self.registry.pm.hook)

    def _open(self, store: str | Path | Store, readonly: bool, dry_run: bool) -> Store:
        return store if isinstance(store, Store) else open_store(self.registry, str(store), readonly, dry_run)

    def reload(self, force: bool = False) -> bool:
        """Reload the rulesets folder if its files changed (or always, with ``force``);
        rules kept in the store are read again if another process published since.

        Returns whether new rules were loaded. If the folder is now invalid, raises
        ``RulesetError`` and the engine keeps running on the last good rules; the error is
        raised once per broken version of the folder (until its files change again, a call
        returns False) and stays in ``rules_status.errors``. Bot switches and rotation
        state live in the store and carry over. Cheap when nothing changed: the files'
        stats are compared (``folder_stats``), their contents only when the stats differ
        or are too recent to tell.
        """
        if self._in_store:
            return self.refresh_rules(force=force)
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
            self.rules_status = replace(status, checked_at=now, errors=(), accounts={})
            return False
        if not force and fingerprint == self._failed:
            self.rules_status = replace(status, checked_at=now)
            return False
        try:
            rules = load_rulesets(
                self._folder, self.catalog, conditions=self._conditions, isolated=self._untrusted
            )
        except RulesetError as exc:
            self._failed = fingerprint
            self.rules_status = replace(
                status, checked_at=now, errors=tuple(exc.problems), accounts=exc.accounts
            )
            raise
        self._fingerprint, self._failed = fingerprint, None
        self._swap_rules(rules)
        self.rules_status = RulesStatus(str(self._folder), now, _file_names(self._folder), now)
        return True

    def _swap_rules(self, rules: Rules) -> None:
        """Run on ``rules`` from now on; the evaluator's state for the old ones is freed."""
        old_rules, self.rules = self.rules, rules
        self._decider = Decider(rules, self.catalog, self.registry.pm.hook)
        old_rules.conditions.close()

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
        try:
            self._check_owners(event)
        except EventError:
            # Rules kept in the store may have changed in another process since this
            # engine read them (a bot just added): read again before refusing.
            if not self.refresh_rules():
                raise
            self._check_owners(event)
        return event

    def _check_owners(self, event: Event) -> None:
        """The event's owners must be bots and users of its account, as the rules say."""
        account = event.account
        if self.suspended(account):
            raise EventError(f"event {event.id!r}: field 'account': account {account!r} is suspended")
        if event.leaving is not None and (
            event.kind != "list" or self.rules.user(account, event.leaving) is None
        ):
            raise EventError(
                f"event {event.id!r}: field 'leaving': only a list event may name a user leaving, "
                f"and it must be a user of account {account!r}"
            )
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

        outcome = retrying(attempt)
        self._observe([outcome])
        return outcome

    def handle_group(self, events: Sequence[Event | Mapping[str, Any]]) -> list[Outcome | EventError]:
        """Process events that arrived together (the service's concurrent requests) in
        ONE transaction, each under a savepoint of its own: group commit, one commit and
        one fsync for all of them.

        Returns, for each event in order, its outcome or the ``EventError`` that rejects
        it; a rejected event undoes only its own writes. Every event is exactly once as
        with ``handle``: a transient failure retries the whole group, a store error fails
        it whole (nothing of it committed). A group of one is ``handle``.
        """
        checked = self._checked(events)
        valid = [item for item in checked if isinstance(item, Event)]
        if len(valid) <= 1:
            return [item if isinstance(item, EventError) else self._handle_or_error(item) for item in checked]

        results = retrying(partial(self._handle_batch, checked))
        self._observe([r for r in results if isinstance(r, Outcome)])
        return results

    def _checked(self, events: Iterable[Event | Mapping[str, Any]]) -> list[Event | EventError]:
        """Each event validated, or the ``EventError`` that refuses it, in order."""
        checked: list[Event | EventError] = []
        for event in events:
            try:
                checked.append(self.validate(event))
            except EventError as exc:
                checked.append(exc)
        return checked

    def _handle_or_error(self, event: Event) -> Outcome | EventError:
        try:
            return self.handle(event)
        except EventError as exc:
            return exc

    def _handle_in(
        self,
        tx: Transaction,
        event: Event,
        route: bool,
        stored: Ownership | None = None,
        reassign: Reassign | None = None,
        reassignments: int = 0,
    ) -> Outcome:
        """Decide a valid event and write what it changes, inside an open transaction.

        ``stored`` is the record as the transaction read it already (a list operation's),
        else it is read here. ``reassign`` hands on a record whose owner missed a deadline
        (``tick``), for the ``reassignments``-th time."""
        record, account = event.record, event.account
        seen = tx.outcome(account, event.id, (record.entity, record.id), rules=self._in_store)
        if self._in_store and self.refresh_rules(tx.rules_generation()):
            # Published in another process since: decided under the new version, which
            # must still take the event (its bot may be gone).
            self._check_owners(event)
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
        reads = self._read(tx, event, self._decider.bots_that_may_fire(event, route), stored, reassign)
        decided = self._decider.decide(event, reads, route)
        if decided.reroute and not route:
            # A bot took back the owner it gave and sends the record back to the pool: it
            # is routed, so the routing bots' state is read (and locked) too.
            reads = self._read(tx, event, self._decider.bots_that_may_fire(event, True), stored, reassign)
            decided = self._decider.decide(event, reads, True)
        for bot_id, state in decided.states.items():
            tx.put_state(account, bot_id, state)
        for changed in (decided.record, *decided.linked):
            given = decided.given.get((changed.entity, changed.id))
            tx.put_record(account, changed, stored_json(changed, given))
        for note in decided.notes:
            tx.put_note(account, *note.ref, note.text, note.bot, event.id)
        for user, text in decided.notifications:
            tx.put_notification(account, user, text, event.id, record.entity, record.id)
        # The time the event was decided at: a replay decides it again then, and deadlines
        # are counted from it.
        at = decided.outcome.at or datetime.now(UTC)
        tx.put_outcome(decided.outcome, event.fingerprint or None, at, kept_payload(event, at), route)
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
        due = self._decider.firsts("salesbot_due", "bot", "record", "owner", "at", "reassignments")
        if not due.impls:
            return
        for decision in outcome.assigned:
            bot = self.rules.bot(outcome.account, decision.bot)
            owner = self.rules.user(outcome.account, str(decision.owner))
            if bot is None or owner is None:
                continue
            due_at = due.call(bot, record, owner, at, reassignments)
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

    def route(self, event: Event | Mapping[str, Any]) -> Outcome:
        """Route a record that has no bot set: the account's bots for its entity are tried
        in ascending ``priority`` (then file order) and the first that applies picks the
        owner, as CRM assignment rules do. Exactly once, like ``handle``."""
        return self.handle(event, route=True)

    def _read(
        self,
        tx: Transaction,
        event: Event,
        bots: list[Bot],
        stored: Ownership | None = None,
        reassign: Reassign | None = None,
    ) -> Reads:
        """Everything the decision needs from the store, read inside the transaction
        (``reassign``: what ``tick`` hands on, passed through to the decision)."""
        account, record = event.account, event.record
        now = event.at or datetime.now(UTC)
        now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
        if stored is None:
            text = tx.get_record(account, record.entity, record.id)
            stored = ownership(text) if text is not None else None
        previous = stored["owners"] if stored else None
        given = {(record.entity, record.id): given_by(stored)}
        if not bots:
            # Owners a bot gave may be taken back: whether the bot is switched on counts.
            switches = tx.get_switches(account) if given_by(stored) else {}
            return Reads(
                Context(now=now),
                bots,
                previous_owners=previous,
                switches=switches,
                given=given,
                reassign=reassign,
            )
        handler = self.catalog.entities[record.entity]
        linked: dict[LinkRef, RecordT] = {}
        for entity, record_id in handler.links(record, dict.fromkeys(handler.related, True)):
            data = tx.get_record(account, entity, record_id)
            if data is not None:
                linked[(entity, record_id)] = record_from_json(data)
                given[(entity, record_id)] = given_by(ownership(data))
        # Rotation states are locked (on PostgreSQL) in one order, bot id, then each capped
        # user's usage in user-id order, so two events never wait for each other in a cycle.
        states = {bot.id: tx.get_state(account, bot.id) for bot in sorted(bots, key=lambda b: b.id)}
        # What depends on the rules alone is in each bot's plan, made once.
        plans = [self._decider.plan(account, bot) for bot in bots]
        loaded = [u for plan in plans if plan.loads for u in plan.bot.users]
        counted = [spec for spec in self.catalog.fields_of("user").values() if spec.counts_usage]
        capped = sorted({user.id: user for plan in plans for user in plan.capped}.items())
        context = Context(
            now=now,
            linked=linked,
            load=_without(tx.open_load(account, record.entity, sorted(set(loaded))), stored)
            if loaded
            else {},
            usage={uid: _usage(tx, account, user, counted, now, stored) for uid, user in capped},
        )
        return Reads(
            context,
            bots,
            previous_owners=previous,
            states=states,
            switches=tx.get_switches(account),
            given=given,
            reassign=reassign,
        )

    def handle_many(
        self, events: Iterable[Event | Mapping[str, Any]], *, batch_size: int = 1
    ) -> list[Outcome | EventError]:
        """Process several events (a list operation, a batch of webhooks) in one call.

        All events are validated first: if any is invalid, ``EventError`` lists every bad
        one and nothing is processed. Each record still gets its own pick, in order.
        ``batch_size`` events share one transaction (group commit): 1 (the default)
        commits each event on its own, so a crash loses at most the event in flight; a
        larger batch (a list operation over 100,000 records) commits far less often, and a
        crash or a store error then rolls back the whole batch in flight, never part of an
        event. Each event of a batch runs under a savepoint of its own: one refused inside
        the transaction (an ``IdempotencyConflict``, an owner gone from rules published
        since) undoes only itself. Returns, for each event in order, its outcome or the
        ``EventError`` that refused it.
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
        results: list[Outcome | EventError] = []
        for start in range(0, len(valid), batch_size):
            batch = retrying(partial(self._handle_batch, valid[start : start + batch_size]))
            self._observe([r for r in batch if isinstance(r, Outcome)])
            results += batch
        return results

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
        checked = self._checked(events)

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

        return retrying(attempt)

    def _handle_batch(self, events: Sequence[Event | EventError]) -> list[Outcome | EventError]:
        """Events in one transaction, each under its savepoint (``each_in``); an
        ``EventError`` given in place of an event (refused when validated) is its result."""
        with self.store.transaction() as tx:
            return each_in(
                tx,
                events,
                lambda event: event if isinstance(event, EventError) else self._handle_in(tx, event, False),
            )

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
        missing = retrying(
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
            batch = retrying(partial(self._assign_batch, account, entity, chunk, bot_id, operation, multiple))
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
        """One batch of a list operation, in one transaction; ``without`` is the user
        leaving (an offboarding): taken off the records' owners, and a record they no
        longer own (passed on from a linked record earlier in the operation, or changed by
        hand since) is left as it is."""
        with self.store.transaction() as tx:
            return self._assign_in(tx, account, entity, ids, bot_id, operation, multiple, without)

    def _assign_in(
        self,
        tx: Transaction,
        account: str,
        entity: EntityType,
        ids: list[str],
        bot_id: str,
        operation: str,
        multiple: bool,
        without: str | None = None,
    ) -> list[Outcome]:
        """``_assign_batch`` in ``tx``: a transaction, or a dry run (an offboarding's preview)."""
        outcomes: list[Outcome] = []
        for record_id in ids:
            # Read inside the event's transaction (and, on PostgreSQL, under its record
            # lock): a change another worker committed since the check in assign_list
            # is built on, never overwritten by a stale copy.
            text = tx.get_record(account, entity, record_id)
            if text is None:  # records are never deleted; a guard, not a path
                raise EventError(f"list operation {operation!r}: {entity} {record_id!r} vanished")
            stored = ownership(text)
            if without is not None and without not in stored["owners"]:
                continue
            kept = [o for o in stored["owners"] if o != without]
            owners = [*kept, BOT_PREFIX + bot_id] if multiple else [BOT_PREFIX + bot_id]
            event = {
                "id": list_event_id(operation, entity, record_id),
                "kind": "list",
                "account": account,
                "record": {**record_from_json(text).model_dump(mode="json"), "owners": owners},
                **({"leaving": without} if without is not None else {}),
            }
            valid = self._validate(event, list_operation=True)
            outcomes.append(self._handle_in(tx, valid, False, stored))
        return outcomes

    def close(self) -> None:
        """Close the store, and free the compiled conditions of rules the engine loaded
        (rules handed in belong to the caller, who may share them between engines)."""
        if self._folder is not None or self._in_store:
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
    stored: Ownership | None,
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


def _without(load: dict[str, int], stored: Ownership | None) -> dict[str, int]:
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
