"""The storage contract. Store plugins (SQLite built in) implement it; the engine uses only this.

One event is one transaction: the record, the strategy state, the outcome and the
processed event id are written together or not at all.

A dry run (``Store.dry_run``, used by ``Engine.simulate`` and ``salesbot simulate``) is a
transaction that is always rolled back: events are decided on the real rotation state,
switches, open records and caps usage, each sees what the ones before it wrote, and at
the end nothing of it is kept.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, TypeVar, runtime_checkable

from pydantic import TypeAdapter

from .errors import EventError, StoreError
from .limits import canonical_json
from .models import (
    Delivery,
    DueItem,
    Event,
    Note,
    Notification,
    Outcome,
    RecordT,
    Token,
    Webhook,
    utc_iso,
)

#: Days the payload of each processed event is kept, for ``salesbot replay``: the
#: environment variable, its default, and its largest value (0 keeps no payloads).
RETENTION_VARIABLE = "SALESBOT_EVENT_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 90
MAX_RETENTION_DAYS = 3660
#: Expired payloads are pruned inside the transaction of about every ``PRUNE_EVERY``-th
#: kept event (its row id a multiple of it), at most ``PRUNE_BATCH`` rows at a time: the
#: work is spread over the events, and each prune removes far more than the events kept
#: since the last one, so the backlog of an older database drains too.
PRUNE_EVERY = 100
PRUNE_BATCH = 1000
#: Writes an instant as an event's JSON form does.
_INSTANT: TypeAdapter[datetime] = TypeAdapter(datetime)


class Switch(NamedTuple):
    """A bot's switch as the store keeps it: on or off, who set it and when (``None``
    for switches set before who and when were kept, or by a caller that gave no name)."""

    active: bool
    by: str | None
    at: str | None


class Activity(NamedTuple):
    """What happened in an account since a moment, and what waits to be delivered."""

    #: Events processed (outcomes logged) since the moment.
    events: int
    #: Records assigned (picked or fallback) since the moment, by the events' times.
    assignments: int
    #: Notifications in the outbox not yet delivered.
    outbox_pending: int
    #: Webhook deliveries still to be sent, and those given up on (dead letters).
    deliveries_pending: int
    deliveries_dead: int


#: The fields of an account's rate limit (``AccountRow``), which ``update_account`` sets,
#: or empties to serve's defaults.
LIMIT_FIELDS = ("rate_limit", "rate_burst")


class AccountRow(NamedTuple):
    """An account whose rules are kept in the store, as ``Store.accounts`` reads it."""

    account: str
    #: ``active`` or ``suspended`` (its tokens are refused, its events too).
    status: str
    #: The Sales Bot add-on is switched on for the account (set by the operator).
    enabled: bool
    #: The plan the operator set: ``automation``, ``growth`` or ``professional``.
    plan: str
    #: The current version of its rules; 0 before the first publish.
    version: int
    created_at: str
    changed_at: str
    #: The account's own rate limit, in requests per second (0: none), and burst, set
    #: by the operator; None: ``salesbot serve``'s defaults (``--rate-limit``, ``--rate-burst``).
    rate_limit: float | None = None
    rate_burst: int | None = None

    @property
    def standing(self) -> dict[str, Any]:
        """The settings the operator sets for the account, by their names in a ruleset."""
        return {"plan": self.plan, "enabled": self.enabled}


class RulesVersion(NamedTuple):
    """One numbered version of an account's rules (``salesbot_core.rulebook``)."""

    account: str
    version: int
    #: The rules document as canonical JSON text.
    content: str
    author: str | None
    message: str | None
    #: The version this one restored, when it is a restore.
    restored_from: int | None
    created_at: str

    def summary(self) -> dict[str, Any]:
        """Who made the version, when and why: what a list of versions shows of each."""
        return {key: value for key, value in self._asdict().items() if key not in ("account", "content")}


class Draft(NamedTuple):
    """Edits to an account's rules gathered before they are published."""

    account: str
    draft: str
    #: The version the draft was started from: publishing it needs that to be current.
    base_version: int
    content: str
    author: str | None
    changed_at: str


class Logged(NamedTuple):
    """A processed event as the log holds it: its outcome and its payload's fingerprint
    (``None`` for events logged before fingerprints were kept)."""

    outcome: Outcome
    fingerprint: str | None


class KeptEvent(NamedTuple):
    """A processed event whose payload is kept (``Store.kept_events``): the event as it
    was decided, its outcome as logged, and whether it was routed (``Engine.route``)."""

    #: The validated event as canonical JSON, with ``at`` set to the time it was decided at.
    payload: Mapping[str, Any]
    routed: bool
    outcome: Outcome
    #: Bytes of the payload's JSON (UTF-8), for bounding what a replay holds.
    size: int


T = TypeVar("T")
R = TypeVar("R")


def last_within(sizes: Iterable[tuple[int, int]], max_bytes: int) -> tuple[int, int] | None:
    """``(seq, count)`` of the last of ``(seq, size)`` rows, in order, that
    ``Store.kept_events`` returns under ``max_bytes`` (the one reaching it included), and
    how many that is; None for no rows."""
    total, last = 0, None
    for count, (seq, size) in enumerate(sizes, 1):
        last = (seq, count)
        total += size
        if total >= max_bytes:
            break
    return last


def read_kept(
    query: Callable[[str, tuple[Any, ...]], list[Any]],
    reads: tuple[str, str],
    account: str,
    since: datetime,
    until: datetime,
    limit: int,
    max_bytes: int,
) -> list[KeptEvent]:
    """``Store.kept_events`` through ``query(sql, params)``, which runs one read on the
    store's connection and returns its rows. ``reads`` are the store's two queries: the
    ``(seq, size)`` of the kept events in a window, in order, then ``(payload, routed,
    outcome, size)`` of those up to a seq. Each names the window (account, since, until)
    once per part of a ``UNION ALL``, the second one the last seq after each window; both
    end with the ``LIMIT``."""
    sizes_sql, events_sql = reads
    window = (account, utc_iso(since), utc_iso(until))
    parts = sizes_sql.count("UNION ALL") + 1
    last = last_within(query(sizes_sql, (*window * parts, limit)), max_bytes)
    if last is None:
        return []
    seq, count = last
    return [
        KeptEvent(json.loads(payload), bool(routed), Outcome.model_validate_json(outcome), size)
        for payload, routed, outcome, size in query(events_sql, (*(*window, seq) * parts, count))
    ]


def retention_days(environ: Mapping[str, str] = os.environ) -> int:
    """The days payloads are kept, from ``SALESBOT_EVENT_RETENTION_DAYS`` (default 90);
    ``StoreError`` naming the variable if it is not a whole number of days in range."""
    text = environ.get(RETENTION_VARIABLE, "").strip()
    if not text:
        return DEFAULT_RETENTION_DAYS
    if not text.isdigit() or int(text) > MAX_RETENTION_DAYS:
        raise StoreError(
            f"{RETENTION_VARIABLE} must be a whole number of days from 0 (keep no event payloads) "
            f"to {MAX_RETENTION_DAYS}: {text[:40]!r}"
        )
    return int(text)


def kept_payload(event: Event, at: datetime) -> str:
    """What a store keeps of an event: its validated JSON form, compact and canonical,
    with ``at`` the time it was decided at (an event that gave none was decided at the
    engine's clock, and a replay must decide it at that same time).

    Made from the canonical JSON the event's fingerprint already took, not serialised
    again: the same text when the event gave its ``at``, else with ``at`` written into
    it (the second key: keys are sorted, and an account id needs no escaping)."""
    canonical = event.canonical  # read once: a private attribute of a model is slow to read
    if event.at == at:
        return canonical
    missing = '{"account":' + json.dumps(event.account) + ',"at":null,'
    if event.at is None and canonical.startswith(missing):
        written = json.dumps(_INSTANT.dump_python(at, mode="json"))
        return missing[: -len("null,")] + written + "," + canonical[len(missing) :]
    return canonical_json(event.model_copy(update={"at": at}).json_form())


def touched(outcome: Outcome) -> list[tuple[str, str]]:
    """Every record an outcome changed, as ``(entity, id)``: the record itself first, then
    the linked records its bots passed the owner on to. ``explain`` finds an outcome
    through any of them."""
    refs: list[tuple[str, str]] = [(outcome.entity, outcome.record_id)]
    for decision in outcome.decisions:
        refs += [(c.entity, c.record_id) for c in decision.related if (c.entity, c.record_id) not in refs]
    return refs


class Transaction(Protocol):
    """The reads and writes of one event, all inside one database transaction."""

    def outcome(
        self, account: str, event_id: str, record: tuple[str, str] | None = None, rules: bool = False
    ) -> Logged | None:
        """The logged outcome of an event id with its payload fingerprint, or None if it
        was never processed. Stores with concurrent writers lock the id first, so two
        workers handed the same event never both process it. ``record`` is the
        ``(entity, id)`` of the event's record: a store may lock and read it in the same
        round trip, after the id (``get_record`` of it then answers from that read).
        With ``rules``, the rules generation is read in that round trip too (then
        ``rules_generation`` answers from it)."""

    def rules_generation(self) -> int:
        """The store's rules generation (see ``Store.rules_generation``), as this
        transaction reads it."""

    def savepoint(self) -> AbstractContextManager[None]:
        """A savepoint around one event of a group sharing this transaction (group
        commit): leaving its block with an exception undoes that event's writes only, and
        the transaction goes on; leaving it normally keeps them."""

    def get_record(self, account: str, entity: str, record_id: str) -> str | None:
        """The stored record's JSON text as it was written, or None. The engine decodes
        it (``models.record_from_json``, ``models.ownership``): a store neither parses
        nor re-encodes it."""

    def put_record(self, account: str, record: RecordT, data: str) -> None:
        """Insert or replace ``record``, keeping ``data`` (its JSON, ``models.stored_json``)
        as it is; its key, owners and open state are read from ``record``. A record as
        this transaction read it, unchanged (the same text), may be left unwritten."""

    def get_state(self, account: str, bot: str) -> dict[str, Any]:
        """A bot's strategy state, ``{}`` when it has none yet."""

    def put_state(self, account: str, bot: str, state: dict[str, Any]) -> None:
        """Replace a bot's strategy state."""

    def put_outcome(
        self, outcome: Outcome, fingerprint: str | None, at: datetime, payload: str, routed: bool
    ) -> None:
        """Log an outcome with the fingerprint of its event's payload, mark its event id
        processed, index it under every record it changed (``touched``), and log its
        assignments at ``at``, the time the event was decided at. Keep ``payload``
        (``kept_payload``), and whether the event was ``routed``, for replays, unless the
        store keeps none (a retention of 0 days); about every ``PRUNE_EVERY``-th call
        also prunes up to ``PRUNE_BATCH`` payloads older than the retention."""

    def get_switches(self, account: str) -> dict[str, bool]:
        """Bots switched on or off (by id) since their ruleset said otherwise; a store may
        read them once per transaction."""

    def open_load(self, account: str, entity: str, users: list[str]) -> dict[str, int]:
        """How many open records of ``entity`` each of ``users`` owns (0 included)."""

    def count_assigned(self, account: str, user: str, since: datetime, until: datetime) -> int:
        """How many records were assigned to ``user`` at or after ``since`` and before
        ``until`` (by the time of their events). Stores with concurrent writers lock the
        user's usage first, until the transaction ends, so two events never both take a
        user's last slot."""

    def count_open_owned(self, account: str, user: str) -> int:
        """How many open records (of any entity) ``user`` owns now, however they got them:
        a bot's pick or a person's hand. Takes the same lock as ``count_assigned``, so two
        events never both give a user their last open slot."""

    def put_note(self, account: str, entity: str, record_id: str, text: str, bot: str, event_id: str) -> None:
        """Add a note to a record's wall."""

    def put_notification(
        self, account: str, user: str, text: str, event_id: str, entity: str, record_id: str
    ) -> None:
        """Queue a notification in the outbox."""

    def webhook_endpoints(self, account: str) -> list[tuple[str, list[str]]]:
        """``(id, events)`` of each webhook endpoint of ``account``: asked for only for an
        event that has something to deliver; a store may read them with the switches
        (``get_switches``), in the same statement, once per transaction."""

    def put_delivery(
        self, id: str, account: str, webhook_id: str, kind: str, payload: str, next_at: str
    ) -> None:
        """Queue a delivery of ``payload`` to an endpoint, due at ``next_at`` (UTC ISO 8601),
        in the event's transaction: it is committed with the event or not at all."""

    # -- Due items of SLAs (see ``salesbot_due``): one per record at most.

    def put_due(self, item: DueItem) -> None:
        """Keep the due item of a record, replacing the one it had."""

    def get_due(self, account: str, entity: str, record_id: str) -> DueItem | None:
        """The due item of a record, or None."""

    def clear_due(self, account: str, entity: str, record_id: str) -> None:
        """Remove the due item of a record (none is fine)."""

    def claim_due(self, now: str, limit: int) -> list[DueItem]:
        """Up to ``limit`` items due at ``now`` (UTC ISO 8601), oldest due first, held for
        this transaction: workers claiming at once never take the same item (``FOR UPDATE
        SKIP LOCKED``, SQLite's write lock). The caller clears each one it handles, in this
        transaction: a worker that dies leaves them due."""


def each_in(tx: Transaction, items: Iterable[T], decide: Callable[[T], R]) -> list[R | EventError]:
    """Group commit: ``decide(item)`` for each of ``items`` in the one transaction ``tx``,
    each under a savepoint of its own, in order. An item its ``decide`` refuses with an
    ``EventError`` undoes only its own writes, and the error is its result; the others
    keep theirs, committed together with one commit (one fsync) when ``tx`` ends. Any
    other exception (a store error, a crashed plugin) fails the whole transaction.

    The one mechanism behind every path that decides several events together: the
    service's concurrent requests and ``events:batch`` (``Engine.handle_group``),
    ``handle_many``'s batches and ``tick``'s."""
    results: list[R | EventError] = []
    for item in items:
        try:
            with tx.savepoint():
                results.append(decide(item))
        except EventError as exc:
            results.append(exc)
    return results


def new_delivery_id() -> str:
    """A delivery's id: the receiver's idempotency key, the same on every attempt."""
    return "dlv_" + secrets.token_hex(12)


def changed_owners(outcome: Outcome) -> bool:
    """Whether a committed outcome is an ``assignment``: it changed the record's owners."""
    return not outcome.duplicate and outcome.owners_after != outcome.owners_before


def queue_deliveries(
    tx: Transaction, outcome: Outcome, notifications: list[tuple[str, str]], now: datetime | None = None
) -> None:
    """Queue the webhook deliveries of one event inside its transaction (the outbox
    pattern): its outcome when it changed owners, and each notification, to each endpoint
    subscribed to that kind. Written here, through the contract, so that the engine
    queues them without knowing who sends them (``salesbot_core.http.delivery``'s
    workers); the bodies are the models that module publishes."""
    assignment = changed_owners(outcome)
    if not assignment and not notifications:
        return  # nothing to deliver: not even the endpoints are read
    endpoints = tx.webhook_endpoints(outcome.account)
    if not endpoints:
        return
    at = utc_iso(now or datetime.now(UTC))
    messages: list[tuple[str, dict[str, Any]]] = []
    if assignment:
        messages.append(("assignment", outcome.model_dump(mode="json")))
    for user, text in notifications:
        data = {
            "user": user,
            "text": text,
            "event_id": outcome.event_id,
            "entity": outcome.entity,
            "record_id": outcome.record_id,
        }
        messages.append(("notification", data))
    for kind, data in messages:
        for webhook_id, kinds in endpoints:
            if kind in kinds:
                delivery = new_delivery_id()
                body = {
                    "id": delivery,
                    "type": kind,
                    "account": outcome.account,
                    "created_at": at,
                    "data": data,
                }
                payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
                tx.put_delivery(delivery, outcome.account, webhook_id, kind, payload, at)


@runtime_checkable
class Store(Protocol):
    """A database the engine keeps its records, state and log in."""

    def transaction(self) -> AbstractContextManager[Transaction]:
        """Open a write transaction, taking the write lock at once; commit on success."""

    def dry_run(self) -> AbstractContextManager[Transaction]:
        """Open a transaction like ``transaction`` that is always rolled back, whether
        its block succeeds or fails: its reads see the store and its own writes, and
        nothing of it is ever committed (no row of any table is added, changed or
        removed; a PostgreSQL sequence may still advance). It holds the locks a
        transaction takes until it ends, so keep it short.

        On a store opened for dry runs (``salesbot_open_store(dry_run=True)``) it is the
        only way to write; a store that did not exist there is an empty one (its tables
        exist inside the dry run only)."""

    def get_record(self, account: str, entity: str, record_id: str) -> dict[str, Any] | None:
        """Read a record outside a transaction."""

    def outcomes(self, account: str, entity: str, record_id: str) -> Iterator[Outcome]:
        """Every outcome that changed a record, oldest first: the record's own events and
        those of records that passed their owner on to it."""

    def kept_events(
        self, account: str, since: datetime, until: datetime, limit: int, max_bytes: int
    ) -> list[KeptEvent]:
        """The kept events of ``account`` whose ``at`` is at or after ``since`` and before
        ``until``, in the order they were processed: at most ``limit``, and no more after
        the one that brings their payloads' ``size`` to ``max_bytes`` or over (that one is
        included, so a caller can tell the bytes ran out)."""

    def prune_events(self, before: datetime, limit: int = PRUNE_BATCH) -> int:
        """Remove up to ``limit`` kept payloads (of any account) whose ``at`` is before
        ``before``, oldest first; returns how many it removed. The outcomes stay."""

    def assignment_counts(self) -> list[tuple[str, str, str, int]]:
        """``(account, bot, user, count)`` of every assignment ever logged."""

    def assigned_since(self, account: str, user: str, since: str) -> int:
        """How many records of ``account`` any bot gave ``user`` at or after ``since``
        (ISO UTC): what the caps count (``Transaction.count_assigned``), read without
        their lock."""

    def notes(self, account: str, entity: str, record_id: str) -> list[Note]:
        """A record's wall, oldest first."""

    def distribution(self, account: str, bot: str, since: str | None = None) -> dict[str, int]:
        """Records ``bot`` assigned to each user (users with none left out), counting
        assignments whose event time is at or after ``since`` (UTC ISO 8601; all when None)."""

    def recent_outcomes(
        self, account: str, limit: int = 50, before: int | None = None, bot: str | None = None
    ) -> list[tuple[int, Outcome]]:
        """``(seq, outcome)`` of the account's latest outcomes, newest first (by the time
        each was logged, then by seq), at most ``limit``; with ``before``, only those
        logged before the outcome of that seq (a cursor: the last seq of a page; an
        unknown one ends the list); with ``bot``, only outcomes in which ``bot`` assigned
        the record, by seq."""

    def activity(self, account: str, since: str) -> Activity:
        """The account's events and assignments since ``since`` (UTC ISO 8601), its
        outbox backlog and its webhook delivery backlog."""

    def pending_notifications(
        self, account: str | None = None, limit: int = 100, after: int | None = None
    ) -> list[Notification]:
        """Undelivered notifications, oldest first (all accounts when ``account`` is None);
        with ``after``, only those with a larger id (a cursor: the last id of a page)."""

    def mark_delivered(self, account: str, ids: list[int]) -> list[int]:
        """Mark the pending outbox entries of ``account`` among ``ids`` delivered; returns
        the ids it marked. Another account's entries are left alone."""

    def set_switch(self, account: str, bot: str, active: bool, by: str | None = None) -> None:
        """Switch a bot on or off, overriding its ruleset's ``active``; ``by`` names who
        did it (kept with the time, see ``switches``)."""

    def switches(self, account: str) -> dict[str, Switch]:
        """Bots switched on or off (by id) in an account, with who did it and when."""

    def get_switches(self, account: str) -> dict[str, bool]:
        """Bots switched on or off (by id) in an account."""

    def add_token(self, account: str, name: str, hash: str, scopes: list[str]) -> bool:
        """Keep an API token (the SHA-256 ``hash`` of its secret, never the secret) under
        ``name`` in ``account`` (``*`` for an admin token); False, adding nothing, when the
        account already has a token of that name (revoked ones included)."""

    def token(self, hash: str) -> Token | None:
        """The token whose secret hashes to ``hash`` (revoked or not), or None."""

    def tokens(self, account: str | None = None) -> list[Token]:
        """The tokens of ``account`` (every account's when None), by account and name."""

    def revoke_token(self, account: str, name: str) -> bool:
        """Revoke a token of ``account``; False when it has no such token not yet revoked."""

    def end_session(self, nonce: str, expires_at: str, now: str) -> None:
        """Keep that the admin page's session with ``nonce`` was signed out, until
        ``expires_at`` (when its cookie expires anyway); those expired by ``now`` are
        forgotten."""

    def session_ended(self, nonce: str) -> bool:
        """Whether the admin page's session with ``nonce`` was signed out."""

    def add_signing_secret(self, account: str, secret: str) -> None:
        """Keep a signing secret of ``account`` (as it is: it must be recoverable to verify);
        the ones it already has stay valid (rotation)."""

    def signing_secrets(self, account: str) -> list[str]:
        """The signing secrets of ``account``, newest first; ``[]`` when it signs nothing."""

    def remove_signing_secrets(self, account: str, keep_newest: bool = False) -> int:
        """Remove the signing secrets of ``account`` (all but the newest with
        ``keep_newest``); returns how many it removed."""

    def add_webhook(self, webhook: Webhook) -> None:
        """Register a webhook endpoint."""

    def webhooks(self, account: str | None = None) -> list[Webhook]:
        """The webhook endpoints of ``account`` (every account's when None), oldest first."""

    def remove_webhook(self, account: str, id: str) -> bool:
        """Remove an endpoint of ``account`` and its deliveries; False when it has none ``id``."""

    def claim_deliveries(self, now: str, lease_until: str, limit: int) -> list[Delivery]:
        """Take up to ``limit`` pending deliveries due at ``now``, oldest due first, with
        their endpoint's url and secret: each one's ``attempts`` is counted up and its
        ``next_at`` set to ``lease_until``, so no other worker takes it while this one
        sends it (or before the lease ends, if this one dies). Workers claiming at once
        never take the same delivery (``FOR UPDATE SKIP LOCKED``, SQLite's write lock)."""

    def finish_delivery(self, id: str, attempts: int, status: str, next_at: str, error: str | None) -> bool:
        """Record how the claimed attempt ``attempts`` of a delivery ended: ``delivered``,
        ``pending`` again (retried at ``next_at``) or ``dead``. False, changing nothing,
        when the delivery was claimed again meanwhile (its lease ran out)."""

    def deliveries(self, account: str, status: str | None = None, limit: int = 100) -> list[Delivery]:
        """Deliveries of ``account`` (of one ``status`` if given), newest first."""

    def replay_delivery(self, account: str, id: str, now: str) -> bool:
        """Queue a dead (or delivered) delivery of ``account`` again, due at ``now``, with
        its attempts reset; False when it has no such delivery not pending."""

    def open_records(self, account: str, user: str) -> list[tuple[str, str]]:
        """``(entity, id)`` of every open record ``user`` owns, by entity and id."""

    def due_items(self, account: str) -> list[DueItem]:
        """The due items of ``account``, soonest due first."""

    def operation_outcomes(self, account: str, operation: str) -> list[Outcome]:
        """The outcomes of list operation ``operation`` of ``account`` (event ids
        ``list/<operation>/...``, see ``models.list_event_id``), in the order they were
        logged. Reads the account's outcomes: for answering an operation again, not per event."""

    # -- Rules kept in the store (``salesbot_core.rulebook``): accounts, versions, drafts.

    def rules_generation(self) -> int:
        """A number every change to any account's rules or standing counts up: an engine
        that read the rules at one generation reads them again when it moves."""

    def accounts(self, account: str | None = None) -> list[AccountRow]:
        """The accounts whose rules the store keeps (one, or all by id)."""

    def create_account(self, account: str, plan: str, enabled: bool) -> bool:
        """Add an account with no rules yet (version 0); False when it exists."""

    def update_account(
        self,
        account: str,
        *,
        status: str | None = None,
        plan: str | None = None,
        enabled: bool | None = None,
        limits: Mapping[str, float | None] | None = None,
    ) -> bool:
        """Change an account's standing (the fields given; ``limits``: ``rate_limit`` and
        ``rate_burst`` to set, None for serve's defaults); False when it does not exist."""

    def delete_account(self, account: str) -> bool:
        """Remove an account and everything the store keeps of it (rules, versions, drafts,
        records, log, tokens, webhooks), in one transaction; False when it does not exist."""

    def publish_rules(
        self,
        account: str,
        expected: int,
        content: str,
        author: str | None,
        message: str | None,
        restored_from: int | None = None,
    ) -> int:
        """Make ``content`` the account's rules as version ``expected + 1`` and return it,
        if ``expected`` is still its current version (else ``StaleVersion``, writing
        nothing); the account is created (Professional plan, enabled) if it has no row."""

    def current_rules(self) -> Iterator[tuple[AccountRow, str | None]]:
        """Every account with the content of its current version (None before the first)."""

    def rules_versions(self, account: str, limit: int = 50, before: int | None = None) -> list[RulesVersion]:
        """The account's versions, newest first, at most ``limit`` (``before``: only older
        ones than that version, a cursor)."""

    def rules_version(self, account: str, version: int) -> RulesVersion | None:
        """One version of the account's rules, or None."""

    def save_draft(
        self, account: str, draft: str, base_version: int, content: str, author: str | None
    ) -> None:
        """Keep a draft (replacing the one of that id)."""

    def drafts(self, account: str) -> list[Draft]:
        """The account's drafts, by id."""

    def delete_draft(self, account: str, draft: str) -> bool:
        """Remove a draft; False when it does not exist."""

    def check(self) -> None:
        """Raise ``StoreError`` when the store cannot serve now: its server does not
        answer, or its file is gone from its path. One cheap round trip: ``/readyz``
        calls it for a load balancer's health checks."""

    def close(self) -> None:
        """Release connections."""
