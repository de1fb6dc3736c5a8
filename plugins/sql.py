"""The one SQL layer of the SQLite and PostgreSQL stores: every statement written once.

The two stores differ only in what a small ``Dialect`` says: the driver's placeholder,
the column types of the schema (``salesbot_plugins.migrations``), and how concurrent
writers are kept apart. SQLite serialises whole transactions (``BEGIN IMMEDIATE``), so
it takes no lock of its own; PostgreSQL locks the event id, the record keys, the rotation
rows and a capped user's usage as the store contract asks.

One event is one ``SqlTransaction``. It writes only what changed: a record written as it
was read is not written again, its owners are updated by difference, a state written as
it was read is skipped. On PostgreSQL the transaction runs in psycopg's pipeline mode:
writes are queued and sent with the ``COMMIT``; a read waits for its answer, and the
reads the event will surely make (the switches, the webhook endpoints, the record the
event names) are sent with the first one, so an event takes a few round trips, not one
per statement (see docs/postgresql.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from salesbot_core import Outcome
from salesbot_core.models import (
    ENTITIES,
    LIST_PREFIX,
    Delivery,
    DueItem,
    Note,
    Notification,
    Ownership,
    RecordT,
    Token,
    Webhook,
    ownership,
    utc_iso,
)
from salesbot_core.store import (
    PRUNE_BATCH,
    PRUNE_EVERY,
    Activity,
    KeptEvent,
    Logged,
    Switch,
    read_kept,
    touched,
)

from . import page_queries
from .kept_rules import SELECT_GENERATION, KeptRules

#: Cursor-like results of both drivers: ``fetchone``, ``fetchall``, ``rowcount``, ``description``.
Cursor = Any

#: At most this many ids in one ``IN (...)`` list (SQLite allows 32,766 parameters).
CHUNK = 1000


@dataclass(frozen=True)
class Dialect:
    """What differs between the stores; everything else is shared."""

    name: str
    #: The driver's parameter marker; statements are written with ``?``.
    param: str
    #: Column types of the schema: an auto-numbered key, a reference to one, a boolean.
    serial: str
    serial_ref: str
    boolean: str
    #: The current UTC time as the stores keep it: ISO 8601 with microseconds and a Z.
    now: str
    #: Appended to tables whose key is their natural key (SQLite keeps no rowid for them).
    keyed: str
    #: Whether reads lock what they read (PostgreSQL: advisory locks and ``FOR UPDATE``);
    #: SQLite holds the whole database from ``BEGIN IMMEDIATE`` on.
    locks: bool
    #: Whether queued statements cost no round trip until a result is read (pipeline
    #: mode): then the reads an event surely makes are sent together.
    pipelined: bool
    #: The expression of the outcome ``seq`` just inserted, or None to pass it as a value.
    last_seq: str | None

    def sql(self, statement: str) -> str:
        return statement if self.param == "?" else statement.replace("?", self.param)


def marks(n: int) -> str:
    """``?, ?, ?`` for an ``IN`` list of ``n`` values."""
    return ", ".join("?" * n)


def columns(s: Session, table: str) -> list[str]:
    """The column names of ``table`` (none when it does not exist)."""
    if s.dialect.name == "SQLite":
        return [name for (name,) in s.execute("SELECT name FROM pragma_table_info(?)", (table,)).fetchall()]
    return [
        name
        for (name,) in s.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        ).fetchall()
    ]


class Session:
    """One connection, with statements written once (``?``) and rendered per dialect."""

    def __init__(self, conn: Any, dialect: Dialect):
        self.conn = conn
        self.dialect = dialect
        self._writer: Cursor = None
        # The driver's own marker is ``?`` (SQLite): statements go as written.
        self._as_written = dialect.param == "?"

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Cursor:
        return self.conn.execute(sql if self._as_written else self.dialect.sql(sql), params)

    def write(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Cursor:
        """A statement whose rows nobody reads: one cursor serves them all, as a cursor
        per statement costs the driver more than the statement (psycopg, pipelined)."""
        if self._writer is None:
            self._writer = self.conn.cursor()
        return self._writer.execute(sql if self._as_written else self.dialect.sql(sql), params)

    def one(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        """The first column of the first row, or None."""
        row = self.execute(sql, params).fetchone()
        return row[0] if row else None

    def dicts(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.execute(sql, params)
        names = [column[0] for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


#: Advisory lock spaces on PostgreSQL (the first key of the two-int form): a user's cap
#: usage, a record. Event ids use the one-bigint form, so the spaces never collide.
USAGE_LOCKS = 1
RECORD_LOCKS = 2
LOCK_EVENT = "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))"
LOCK_KEY = "SELECT pg_advisory_xact_lock(?, hashtext(?))"

SELECT_RECORD = "SELECT data FROM records WHERE account = ? AND entity = ? AND id = ?"
SELECT_SWITCHES = "SELECT bot, active FROM bot_switches WHERE account = ?"
#: An event's switches and webhook endpoints in one statement (a statement less per
#: event): switch rows have no ``events``, endpoint rows come after them by ``seq`` (from 1).
SELECT_SWITCHES_ENDPOINTS = (
    "SELECT bot, active, NULL, 0 FROM bot_switches WHERE account = ? "
    "UNION ALL SELECT id, NULL, events, seq FROM webhooks WHERE account = ? ORDER BY 4"
)

#: The columns of a due item of an SLA, in ``DueItem``'s names.
DUE_COLUMNS = "key, account, entity, record_id, bot, owner, assigned_at, due_at, reassignments"
#: One item per record: a new assignment replaces the one before.
PUT_DUE = (
    f"INSERT INTO due_items ({DUE_COLUMNS}) VALUES ({', '.join('?' * 9)}) "
    "ON CONFLICT (account, entity, record_id) DO UPDATE SET key = excluded.key, bot = excluded.bot, "
    "owner = excluded.owner, assigned_at = excluded.assigned_at, due_at = excluded.due_at, "
    "reassignments = excluded.reassignments"
)
DUE_OF_RECORD = "WHERE account = ? AND entity = ? AND record_id = ?"


def _due_item(row: Any) -> DueItem:
    return DueItem(**dict(zip(DUE_COLUMNS.split(", "), row, strict=True)))


class SqlTransaction:
    """The reads and writes of one event (``salesbot_core.store.Transaction``)."""

    def __init__(self, session: Session, retention_days: int = 0):
        self._s = session
        self._d = session.dialect
        self._retention_days = retention_days
        # What this transaction read or wrote, as stored: the base of "write only what
        # changed". Valid until it ends: the rows are locked (PostgreSQL) or the whole
        # database is (SQLite), so nothing else changes them meanwhile.
        self._records: dict[tuple[str, str, str], str | Cursor | None] = {}
        self._states: dict[tuple[str, str], str] = {}
        # The switches and webhook endpoints of an account, read together
        # (``_account_reads``): the cursor until its rows are taken.
        self._switches: dict[str, dict[str, bool]] = {}
        self._endpoints: dict[str, list[tuple[str, list[str]]]] = {}
        self._account_cursors: dict[str, Cursor] = {}
        # The due item of the event's record, read in the first round trip (PostgreSQL).
        self._dues: dict[tuple[str, str, str], Cursor] = {}
        # The rules generation, when the engine asked for it with the event id's lookup.
        self._generation: Cursor | None = None

    def _lock(self, space: int, key: str) -> None:
        if self._d.locks:
            self._s.execute(LOCK_KEY, (space, key))

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        # Queued like the writes (no round trip of its own when pipelined). The reads
        # and writes this transaction remembers may be undone by a rollback to it: they
        # are forgotten then, and read again from what the database holds.
        self._s.write("SAVEPOINT salesbot_event")
        try:
            yield
        except BaseException:
            self._s.write("ROLLBACK TO SAVEPOINT salesbot_event")
            self._records.clear()
            self._states.clear()
            self._switches.clear()
            self._endpoints.clear()
            self._account_cursors.clear()
            self._dues.clear()
            self._generation = None
            raise
        self._s.write("RELEASE SAVEPOINT salesbot_event")

    def _queue_record(self, account: str, entity: str, record_id: str) -> None:
        """Lock a record's key and send its read; the answer is taken when needed.

        ``FOR UPDATE`` locks nothing when the row does not exist yet: two events creating
        the same linked record would both read "absent" and the second would overwrite
        the first one's owners. So the key itself is locked first, present or not."""
        self._lock(RECORD_LOCKS, f"{account}:{entity}:{record_id}")
        suffix = " FOR UPDATE" if self._d.locks else ""
        self._records[(account, entity, record_id)] = self._s.execute(
            SELECT_RECORD + suffix, (account, entity, record_id)
        )

    def outcome(
        self, account: str, event_id: str, record: tuple[str, str] | None = None, rules: bool = False
    ) -> Logged | None:
        if rules:
            # Sent first, so that it rides in the lookup's round trip when pipelined.
            self._generation = self._s.execute(SELECT_GENERATION)
        if self._d.locks:
            # Workers handed the same event queue here instead of racing to the unique index.
            self._s.execute(LOCK_EVENT, (f"{account}:{event_id}",))  # account ids have no ":"
        found = self._s.execute(
            "SELECT outcome, fingerprint FROM outcomes WHERE account = ? AND event_id = ?",
            (account, event_id),
        )
        if self._d.pipelined:
            # Sent with the lookup, answered in its round trip: every event reads these.
            if account not in self._switches and account not in self._account_cursors:
                self._account_cursors[account] = self._s.execute(
                    SELECT_SWITCHES_ENDPOINTS, (account, account)
                )
            if record is not None and (account, *record) not in self._records:
                # Locked after the event id: the lock order stays event, record, links, states.
                self._queue_record(account, *record)
            if record is not None:
                # An SLA's due item of the record, read with it (the engine asks for it
                # when a plugin can meet a deadline): no round trip of its own.
                self._dues[(account, *record)] = self._s.execute(
                    f"SELECT {DUE_COLUMNS} FROM due_items {DUE_OF_RECORD}", (account, *record)
                )
        row = found.fetchone()
        return Logged(Outcome.model_validate_json(row[0]), row[1]) if row else None

    def rules_generation(self) -> int:
        cursor = self._generation if self._generation is not None else self._s.execute(SELECT_GENERATION)
        self._generation = None
        row = cursor.fetchone()
        return int(row[0]) if row else 0

    def get_record(self, account: str, entity: str, record_id: str) -> str | None:
        key = (account, entity, record_id)
        if key not in self._records:
            self._queue_record(account, entity, record_id)
        data = self._records[key]
        if data is not None and not isinstance(data, str):
            row = data.fetchone()
            data = self._records[key] = row[0] if row else None
        return data

    def put_record(self, account: str, record: RecordT, data: str) -> None:
        key = (account, record.entity, record.id)
        before = self._records.get(key, False)
        if before is not False and before is not None and not isinstance(before, str):
            self.get_record(*key)  # a prefetched read never taken: take it now
            before = self._records[key]
        if before == data:
            return  # unchanged: neither the record nor its owners are written
        self._records[key] = data
        self._s.write(
            "INSERT INTO records (account, entity, id, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (account, entity, id) DO UPDATE SET data = excluded.data",
            (*key, data),
        )
        owners = list(dict.fromkeys(record.owners))
        is_open = record.open
        if before is False:  # not read in this transaction: replace the owners wholesale
            self._s.write("DELETE FROM record_owners WHERE account = ? AND entity = ? AND record_id = ?", key)
            gone, added = [], owners
        else:
            old = ownership(before) if before is not None else Ownership(owners=[])
            old_owners = list(dict.fromkeys(old["owners"]))
            gone = [u for u in old_owners if u not in owners]
            added = [u for u in owners if u not in old_owners]
            if before is not None and old.get("open", True) != is_open:
                self._s.write(
                    "UPDATE record_owners SET open = ? WHERE account = ? AND entity = ? AND record_id = ?",
                    (is_open, *key),
                )
        if gone:
            self._s.write(
                "DELETE FROM record_owners WHERE account = ? AND entity = ? AND record_id = ? "
                f'AND "user" IN ({marks(len(gone))})',
                (*key, *gone),
            )
        if added:
            self._s.write(
                'INSERT INTO record_owners (account, entity, record_id, "user", open) VALUES '
                + ", ".join(["(?, ?, ?, ?, ?)"] * len(added)),
                [value for user in added for value in (*key, user, is_open)],
            )

    def get_state(self, account: str, bot: str) -> dict[str, Any]:
        known = self._states.get((account, bot))
        if known is not None:
            # Read or written before in this transaction (the records of a list operation's
            # batch): the row is still locked, or the whole database is, so it is current.
            return dict(json.loads(known))
        if self._d.locks:
            # The row must exist to be locked: one statement creates it empty or, when it
            # exists, "updates" it to itself, which locks it until commit (as FOR UPDATE
            # would) and returns the state as the last commit left it.
            state = self._s.one(
                "INSERT INTO strategy_state (account, bot, state) VALUES (?, ?, '{}') "
                "ON CONFLICT (account, bot) DO UPDATE SET state = strategy_state.state RETURNING state",
                (account, bot),
            )
        else:
            state = self._s.one(
                "SELECT state FROM strategy_state WHERE account = ? AND bot = ?", (account, bot)
            )
        self._states[(account, bot)] = state or "{}"
        return json.loads(state) if state else {}

    def put_state(self, account: str, bot: str, state: dict[str, Any]) -> None:
        data = json.dumps(state)
        if self._states.get((account, bot)) == data:
            return
        self._states[(account, bot)] = data
        self._s.write(
            "INSERT INTO strategy_state (account, bot, state) VALUES (?, ?, ?) "
            "ON CONFLICT (account, bot) DO UPDATE SET state = excluded.state",
            (account, bot, data),
        )

    def put_outcome(
        self, outcome: Outcome, fingerprint: str | None, at: datetime, payload: str, routed: bool
    ) -> None:
        account = outcome.account
        at_text = utc_iso(at)
        # The payload rides in the outcome row: one b-tree written, not a row and two
        # indexes of its own (schema version 11).
        kept = (
            (payload, int(routed), at_text, len(payload.encode("utf-8")))
            if self._retention_days
            else (None, None, None, None)
        )
        insert = (
            "INSERT INTO outcomes (account, event_id, entity, record_id, outcome, fingerprint, "
            "payload, routed, kept_at, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        values = (
            account,
            outcome.event_id,
            outcome.entity,
            outcome.record_id,
            outcome.model_dump_json(),
            fingerprint,
            *kept,
        )
        if self._d.last_seq is None:  # SQLite: the new seq is known at once
            seq_sql, seq = "?", (self._s.write(insert, values).lastrowid,)
            if self._retention_days and seq[0] % PRUNE_EVERY == 0:
                prune(self._s, self._expired(), PRUNE_BATCH)
        else:
            seq_sql, seq = self._d.last_seq, ()
            if self._retention_days:
                # PostgreSQL: the seq is not waited for (a round trip); the server decides
                # whether this is about the PRUNE_EVERY-th event and prunes in the same
                # statement (a data-modifying WITH: the pruning sees the table as it was).
                when = WHEN_PRUNING.format(every=PRUNE_EVERY)
                self._s.write(
                    f"WITH new AS ({insert} RETURNING seq), "
                    f"kept AS ({PRUNE_KEPT.format(when=when, limit=PRUNE_BATCH, skip=SKIP)}) "
                    + PRUNE_LEGACY.format(when=when, limit=PRUNE_BATCH, skip=SKIP),
                    (*values, self._expired(), self._expired()),
                )
            else:
                self._s.write(insert, values)
        refs = touched(outcome)
        self._s.write(
            "INSERT INTO outcome_records (account, entity, record_id, seq) VALUES "
            + ", ".join([f"(?, ?, ?, {seq_sql})"] * len(refs)),
            [value for entity, record_id in refs for value in (account, entity, record_id, *seq)],
        )
        assigned = outcome.assigned
        if assigned:
            self._s.write(
                'INSERT INTO assignments (seq, account, bot, "user", at) VALUES '
                + ", ".join([f"({seq_sql}, ?, ?, ?, ?)"] * len(assigned)),
                [value for d in assigned for value in (*seq, account, d.bot, d.owner, at_text)],
            )

    def _expired(self) -> str:
        """Payloads kept for events decided before this moment are pruned."""
        return utc_iso(datetime.now(UTC) - timedelta(days=self._retention_days))

    def _account_reads(self, account: str) -> None:
        """Read the switches and webhook endpoints of ``account`` in one statement, once
        per transaction: a switch or endpoint set meanwhile commits before or after it
        (the rows are read inside the transaction, so a switch another process turned
        off before it is honoured at once)."""
        cursor = self._account_cursors.pop(account, None)
        if cursor is None:
            cursor = self._s.execute(SELECT_SWITCHES_ENDPOINTS, (account, account))
        switches, endpoints = {}, []
        for name, active, events, _ in cursor.fetchall():
            if events is None:
                switches[name] = bool(active)
            else:
                endpoints.append((name, json.loads(events)))
        self._switches[account] = switches
        self._endpoints[account] = endpoints

    def get_switches(self, account: str) -> dict[str, bool]:
        if account not in self._switches:
            self._account_reads(account)
        return dict(self._switches[account])

    def open_load(self, account: str, entity: str, users: list[str]) -> dict[str, int]:
        if not users:
            return {}
        rows = self._s.execute(
            f'SELECT "user", COUNT(*) FROM record_owners WHERE account = ? AND entity = ? '
            f'AND open AND "user" IN ({marks(len(users))}) GROUP BY "user"',
            (account, entity, *users),
        ).fetchall()
        return {user: 0 for user in users} | {user: int(n) for user, n in rows}

    def count_assigned(self, account: str, user: str, since: datetime, until: datetime) -> int:
        # Workers routing through different bots hold different rotation locks: without
        # this lock two of them could both count a user's last free slot and both take it.
        self._lock(USAGE_LOCKS, f"{account}:{user}")
        return int(
            self._s.one(
                'SELECT COUNT(*) FROM assignments WHERE account = ? AND "user" = ? AND at >= ? AND at < ?',
                (account, user, utc_iso(since), utc_iso(until)),
            )
        )

    def count_open_owned(self, account: str, user: str) -> int:
        # The lock of count_assigned: a user's open slots are taken one event at a time.
        self._lock(USAGE_LOCKS, f"{account}:{user}")
        return int(
            self._s.one(
                # Every entity named, so the (account, entity, user, open) index answers it.
                "SELECT COUNT(*) FROM record_owners WHERE account = ? "
                f'AND entity IN ({marks(len(ENTITIES))}) AND "user" = ? AND open',
                (account, *ENTITIES, user),
            )
        )

    def put_note(self, account: str, entity: str, record_id: str, text: str, bot: str, event_id: str) -> None:
        self._s.write(
            "INSERT INTO notes (account, entity, record_id, text, bot, event_id) VALUES (?, ?, ?, ?, ?, ?)",
            (account, entity, record_id, text, bot, event_id),
        )

    def put_notification(
        self, account: str, user: str, text: str, event_id: str, entity: str, record_id: str
    ) -> None:
        self._s.write(
            'INSERT INTO notifications (account, "user", text, event_id, entity, record_id) '
            "VALUES (?, ?, ?, ?, ?, ?)",
            (account, user, text, event_id, entity, record_id),
        )

    def webhook_endpoints(self, account: str) -> list[tuple[str, list[str]]]:
        if account not in self._endpoints:
            self._account_reads(account)
        return list(self._endpoints[account])

    def put_delivery(
        self, id: str, account: str, webhook_id: str, kind: str, payload: str, next_at: str
    ) -> None:
        self._s.write(
            "INSERT INTO deliveries (id, account, webhook_id, kind, payload, next_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (id, account, webhook_id, kind, payload, next_at),
        )

    # -- Due items of SLAs (salesbot_core.models.DueItem) --------------------------------

    def put_due(self, item: DueItem) -> None:
        values = item.model_dump()
        self._s.write(PUT_DUE, tuple(values[name] for name in DUE_COLUMNS.split(", ")))

    def get_due(self, account: str, entity: str, record_id: str) -> DueItem | None:
        sent = self._dues.pop((account, entity, record_id), None)
        if sent is None:
            sent = self._s.execute(
                f"SELECT {DUE_COLUMNS} FROM due_items {DUE_OF_RECORD}", (account, entity, record_id)
            )
        row = sent.fetchone()
        return _due_item(row) if row else None

    def clear_due(self, account: str, entity: str, record_id: str) -> None:
        self._s.write(f"DELETE FROM due_items {DUE_OF_RECORD}", (account, entity, record_id))

    def claim_due(self, now: str, limit: int) -> list[DueItem]:
        """Oldest due first; the caller clears each item it takes in this transaction.
        PostgreSQL: workers ticking at once each take other items (SKIP LOCKED), none
        waits on another; SQLite: the write lock lets one worker in at a time."""
        skip = " FOR UPDATE SKIP LOCKED" if self._d.locks else ""
        rows = self._s.execute(
            f"SELECT {DUE_COLUMNS} FROM due_items WHERE due_at <= ? "
            f"ORDER BY due_at, account, entity, record_id LIMIT ?{skip}",
            (now, limit),
        ).fetchall()
        return [_due_item(row) for row in rows]


#: Pruning, in two statements: the payloads kept in outcome rows (their columns emptied,
#: the outcomes stay) and those of ``event_payloads`` (kept before version 11, or by a
#: version-10 salesbot since), oldest first. ``when`` is an extra condition; workers
#: pruning at once take different rows (``skip``: SKIP LOCKED) instead of waiting.
PRUNE_KEPT = (
    "UPDATE outcomes SET payload = NULL, routed = NULL, kept_at = NULL, size = NULL WHERE seq IN "
    "(SELECT seq FROM outcomes WHERE payload IS NOT NULL AND kept_at < ?{when} "
    "ORDER BY kept_at LIMIT {limit}{skip})"
)
PRUNE_LEGACY = (
    "DELETE FROM event_payloads WHERE seq IN "
    "(SELECT seq FROM event_payloads WHERE at < ?{when} ORDER BY at LIMIT {limit}{skip})"
)
#: PostgreSQL's pruning inside the outcome's insert: only when its seq is a multiple of
#: ``PRUNE_EVERY``, about every ``PRUNE_EVERY``-th event.
WHEN_PRUNING = " AND mod((SELECT seq FROM new), {every}) = 0"
SKIP = " FOR UPDATE SKIP LOCKED"


def prune(s: Session, before: str, limit: int) -> int:
    """Remove up to ``limit`` kept payloads older than ``before``, oldest first: those in
    outcome rows, then those of ``event_payloads``."""
    skip = SKIP if s.dialect.locks else ""
    done = int(s.execute(PRUNE_KEPT.format(when="", limit="?", skip=skip), (before, limit)).rowcount)
    if done < limit:
        sql = PRUNE_LEGACY.format(when="", limit="?", skip=skip)
        done += int(s.execute(sql, (before, limit - done)).rowcount)
    return done


#: The reads of ``Store.kept_events`` (``read_kept``): the kept payloads of an account
#: whose events were decided in a window, by outcome seq, as ``(seq, size)`` rows and as
#: ``(seq, payload, routed, outcome, size)`` rows. Those in outcome rows (version 11 on)
#: and those of ``event_payloads`` (before, or kept by a version-10 salesbot since) alike.
KEPT_IN_OUTCOMES = (
    "SELECT seq, payload, routed, outcome, size FROM outcomes "
    "WHERE account = ? AND kept_at >= ? AND kept_at < ? AND payload IS NOT NULL"
)
#: ``o.payload IS NULL``: a payload copied into its outcome row by version 11 is read once.
KEPT_IN_TABLE = (
    "SELECT o.seq, e.payload, e.routed, o.outcome, e.size FROM event_payloads e "
    "JOIN outcomes o ON o.account = e.account AND o.event_id = e.event_id "
    "WHERE e.account = ? AND e.at >= ? AND e.at < ?"
)
KEPT_SIZES = (
    f"SELECT seq, size FROM ({KEPT_IN_OUTCOMES} UNION ALL {KEPT_IN_TABLE} AND o.payload IS NULL) "
    "AS kept ORDER BY seq LIMIT ?"
)
KEPT_EVENTS = (
    f"SELECT payload, routed, outcome, size FROM ({KEPT_IN_OUTCOMES} AND seq <= ? UNION ALL "
    f"{KEPT_IN_TABLE} AND o.payload IS NULL AND o.seq <= ?) AS kept ORDER BY seq LIMIT ?"
)
LEGACY_SIZES = f"SELECT seq, size FROM ({KEPT_IN_TABLE}) AS kept ORDER BY seq LIMIT ?"
LEGACY_EVENTS = (
    f"SELECT payload, routed, outcome, size FROM ({KEPT_IN_TABLE} AND o.seq <= ?) AS kept "
    "ORDER BY seq LIMIT ?"
)

WEBHOOK_COLUMNS = "id, account, url, events, secret, created_at"
TOKEN_COLUMNS = "account, name, hash, scopes, created_at, revoked_at"
DELIVERY_COLUMNS = (
    "id, account, webhook_id, kind, payload, attempts, status, next_at, last_error, created_at, delivered_at"
)
NOTIFICATION_COLUMNS = 'id, account, "user", text, event_id, entity, record_id, created_at, delivered_at'


def _webhook(row: Any) -> Webhook:
    id, account, url, events, secret, created_at = row
    return Webhook(
        id=id, account=account, url=url, events=json.loads(events), secret=secret, created_at=created_at
    )


def _token(row: Any) -> Token:
    account, name, hash, scopes, created_at, revoked_at = row
    return Token(
        account=account,
        name=name,
        hash=hash,
        scopes=json.loads(scopes),
        created_at=created_at,
        revoked_at=revoked_at,
    )


class SqlStore(KeptRules):
    """The store methods outside an event, written once over a dialect.

    A store supplies ``_read`` (a session for reads, driver errors mapped) and ``_write``
    (a session in a write transaction, committed at the end), and its ``transaction``."""

    dialect: Dialect

    def _read(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def check(self) -> None:
        with self._read() as s:
            s.execute("SELECT 1")

    def kept_events(
        self, account: str, since: datetime, until: datetime, limit: int, max_bytes: int
    ) -> list[KeptEvent]:
        with self._read() as s:
            # A database a read-only command opens as it is (before version 11) keeps
            # its payloads in event_payloads only.
            current = "payload" in columns(s, "outcomes")
            return read_kept(
                lambda sql, params: list(s.execute(sql, params).fetchall()),
                (KEPT_SIZES, KEPT_EVENTS) if current else (LEGACY_SIZES, LEGACY_EVENTS),
                account,
                since,
                until,
                limit,
                max_bytes,
            )

    def prune_events(self, before: datetime, limit: int = PRUNE_BATCH) -> int:
        with self._write() as s:
            return prune(s, utc_iso(before), limit)

    def get_record(self, account: str, entity: str, record_id: str) -> dict[str, Any] | None:
        with self._read() as s:
            data = s.one(SELECT_RECORD, (account, entity, record_id))
        return json.loads(data) if data is not None else None

    def outcomes(self, account: str, entity: str, record_id: str) -> Iterator[Outcome]:
        with self._read() as s:
            rows = s.execute(
                "SELECT o.outcome FROM outcome_records r JOIN outcomes o ON o.seq = r.seq "
                "WHERE r.account = ? AND r.entity = ? AND r.record_id = ? ORDER BY r.seq",
                (account, entity, record_id),
            ).fetchall()
        return (Outcome.model_validate_json(row[0]) for row in rows)

    def assignment_counts(self) -> list[tuple[str, str, str, int]]:
        with self._read() as s:
            rows = s.execute(
                'SELECT account, bot, "user", COUNT(*) FROM assignments '
                'GROUP BY account, bot, "user" ORDER BY account, bot, "user"'
            ).fetchall()
        return [(a, b, u, int(n)) for a, b, u, n in rows]

    def notes(self, account: str, entity: str, record_id: str) -> list[Note]:
        with self._read() as s:
            rows = s.execute(
                "SELECT text, bot, event_id, created_at FROM notes "
                "WHERE account = ? AND entity = ? AND record_id = ? ORDER BY seq",
                (account, entity, record_id),
            ).fetchall()
        return [Note(text=t, bot=b, event_id=e, created_at=c) for t, b, e, c in rows]

    def pending_notifications(
        self, account: str | None = None, limit: int = 100, after: int | None = None
    ) -> list[Notification]:
        with self._read() as s:
            rows = s.dicts(
                f"SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE delivered_at IS NULL "
                "AND (CAST(? AS TEXT) IS NULL OR account = ?) AND id > ? ORDER BY id LIMIT ?",
                (account, account, after or 0, limit),
            )
        return [Notification(**row) for row in rows]

    def mark_delivered(self, account: str, ids: list[int]) -> list[int]:
        wanted = list(dict.fromkeys(ids))
        done: set[int] = set()
        with self._write() as s:
            for start in range(0, len(wanted), CHUNK):
                chunk = wanted[start : start + CHUNK]
                done |= {
                    int(i)
                    for (i,) in s.execute(
                        f"UPDATE notifications SET delivered_at = {s.dialect.now} WHERE account = ? "
                        f"AND id IN ({marks(len(chunk))}) AND delivered_at IS NULL RETURNING id",
                        (account, *chunk),
                    ).fetchall()
                }
        return [i for i in wanted if i in done]

    def set_switch(self, account: str, bot: str, active: bool, by: str | None = None) -> None:
        with self._write() as s:
            s.execute(
                "INSERT INTO bot_switches (account, bot, active, changed_by, changed_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (account, bot) DO UPDATE SET active = excluded.active, "
                "changed_by = excluded.changed_by, changed_at = excluded.changed_at",
                (account, bot, active, by, utc_iso(datetime.now(UTC))),
            )

    def switches(self, account: str) -> dict[str, Switch]:
        with self._read() as s:
            rows = s.execute(
                "SELECT bot, active, changed_by, changed_at FROM bot_switches WHERE account = ?", (account,)
            ).fetchall()
        return {bot: Switch(bool(active), by, at) for bot, active, by, at in rows}

    def distribution(self, account: str, bot: str, since: str | None = None) -> dict[str, int]:
        with self._read() as s:
            rows = s.execute(page_queries.DISTRIBUTION, (account, bot, since or "")).fetchall()
        return {user: int(n) for user, n in rows}

    def assigned_since(self, account: str, user: str, since: str) -> int:
        with self._read() as s:
            return int(s.one(page_queries.ASSIGNED_SINCE, (account, user, since)))

    def recent_outcomes(
        self, account: str, limit: int = 50, before: int | None = None, bot: str | None = None
    ) -> list[tuple[int, Outcome]]:
        with self._read() as s:
            rows = s.execute(*page_queries.recent_params(account, limit, before, bot)).fetchall()
        return [(int(seq), Outcome.model_validate_json(text)) for seq, text in rows]

    def activity(self, account: str, since: str) -> Activity:
        with self._read() as s:
            row = s.execute(page_queries.ACTIVITY, page_queries.activity_params(account, since)).fetchone()
        return Activity(*map(int, row))

    def get_switches(self, account: str) -> dict[str, bool]:
        with self._read() as s:
            return {bot: bool(active) for bot, active in s.execute(SELECT_SWITCHES, (account,)).fetchall()}

    def add_token(self, account: str, name: str, hash: str, scopes: list[str]) -> bool:
        with self._write() as s:
            added = s.execute(
                "INSERT INTO tokens (account, name, hash, scopes) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (account, name) DO NOTHING RETURNING 1",
                (account, name, hash, json.dumps(scopes)),
            ).fetchone()
        return added is not None

    def token(self, hash: str) -> Token | None:
        with self._read() as s:
            row = s.execute(f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?", (hash,)).fetchone()
        return _token(row) if row else None

    def _of(self, columns: str, table: str, account: str | None, order: str) -> list[Any]:
        """The rows of ``account`` (every account's when None)."""
        with self._read() as s:
            return list(
                s.execute(
                    f"SELECT {columns} FROM {table} "
                    f"WHERE CAST(? AS TEXT) IS NULL OR account = ? ORDER BY {order}",
                    (account, account),
                ).fetchall()
            )

    def tokens(self, account: str | None = None) -> list[Token]:
        return [_token(row) for row in self._of(TOKEN_COLUMNS, "tokens", account, "account, name")]

    def revoke_token(self, account: str, name: str) -> bool:
        with self._write() as s:
            return bool(
                s.execute(
                    f"UPDATE tokens SET revoked_at = {s.dialect.now} "
                    "WHERE account = ? AND name = ? AND revoked_at IS NULL",
                    (account, name),
                ).rowcount
            )

    def end_session(self, nonce: str, expires_at: str, now: str) -> None:
        with self._write() as s:
            s.execute("DELETE FROM ended_sessions WHERE expires_at < ?", (now,))
            s.execute(
                "INSERT INTO ended_sessions (nonce, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (nonce, expires_at),
            )

    def session_ended(self, nonce: str) -> bool:
        with self._read() as s:
            return s.execute("SELECT 1 FROM ended_sessions WHERE nonce = ?", (nonce,)).fetchone() is not None

    def add_signing_secret(self, account: str, secret: str) -> None:
        with self._write() as s:
            s.execute("INSERT INTO signing_secrets (account, secret) VALUES (?, ?)", (account, secret))

    def signing_secrets(self, account: str) -> list[str]:
        with self._read() as s:
            rows = s.execute(
                "SELECT secret FROM signing_secrets WHERE account = ? ORDER BY seq DESC", (account,)
            ).fetchall()
        return [secret for (secret,) in rows]

    def remove_signing_secrets(self, account: str, keep_newest: bool = False) -> int:
        with self._write() as s:
            return int(
                s.execute(
                    "DELETE FROM signing_secrets WHERE account = ? AND (NOT ? OR seq < "
                    "(SELECT MAX(seq) FROM signing_secrets WHERE account = ?))",
                    (account, keep_newest, account),
                ).rowcount
            )

    def add_webhook(self, webhook: Webhook) -> None:
        with self._write() as s:
            s.execute(
                "INSERT INTO webhooks (id, account, url, events, secret) VALUES (?, ?, ?, ?, ?)",
                (webhook.id, webhook.account, webhook.url, json.dumps(webhook.events), webhook.secret),
            )

    def webhooks(self, account: str | None = None) -> list[Webhook]:
        return [_webhook(row) for row in self._of(WEBHOOK_COLUMNS, "webhooks", account, "seq")]

    def remove_webhook(self, account: str, id: str) -> bool:
        with self._write() as s:
            gone = s.execute("DELETE FROM webhooks WHERE account = ? AND id = ?", (account, id)).rowcount
            if gone:
                s.execute("DELETE FROM deliveries WHERE account = ? AND webhook_id = ?", (account, id))
        return bool(gone)

    def claim_deliveries(self, now: str, lease_until: str, limit: int) -> list[Delivery]:
        # One statement picks and leases: on PostgreSQL workers claiming at once skip each
        # other's rows (SKIP LOCKED); SQLite's write lock lets one claim at a time.
        skip = " FOR UPDATE SKIP LOCKED" if self.dialect.locks else ""
        with self._write() as s:
            rows = s.dicts(
                "UPDATE deliveries SET attempts = attempts + 1, next_at = ? WHERE seq IN "
                "(SELECT seq FROM deliveries WHERE status = 'pending' AND next_at <= ? "
                f"ORDER BY next_at, seq LIMIT ?{skip}) RETURNING seq, {DELIVERY_COLUMNS}",
                (lease_until, now, limit),
            )
            if not rows:
                return []
            ids = sorted({row["webhook_id"] for row in rows})
            endpoints = {
                id: (url, secret)
                for id, url, secret in s.execute(
                    f"SELECT id, url, secret FROM webhooks WHERE id IN ({marks(len(ids))})", ids
                ).fetchall()
            }
        claimed = []
        for row in sorted(rows, key=lambda row: row.pop("seq")):
            if row["webhook_id"] in endpoints:  # an endpoint removed meanwhile takes nothing
                url, secret = endpoints[row["webhook_id"]]
                claimed.append(Delivery(**row, url=url, secret=secret))
        return claimed

    def finish_delivery(self, id: str, attempts: int, status: str, next_at: str, error: str | None) -> bool:
        with self._write() as s:
            return bool(
                s.execute(
                    "UPDATE deliveries SET status = ?, next_at = ?, last_error = ?, delivered_at = "
                    f"CASE WHEN ? = 'delivered' THEN {s.dialect.now} END "
                    "WHERE id = ? AND attempts = ? AND status = 'pending'",
                    (status, next_at, error, status, id, attempts),
                ).rowcount
            )

    def deliveries(self, account: str, status: str | None = None, limit: int = 100) -> list[Delivery]:
        with self._read() as s:
            rows = s.dicts(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE account = ? "
                "AND (CAST(? AS TEXT) IS NULL OR status = ?) ORDER BY seq DESC LIMIT ?",
                (account, status, status, limit),
            )
        return [Delivery(**row) for row in rows]

    def open_records(self, account: str, user: str) -> list[tuple[str, str]]:
        with self._read() as s:
            rows = s.execute(
                'SELECT entity, record_id FROM record_owners WHERE account = ? AND "user" = ? AND open '
                "ORDER BY entity, record_id",
                (account, user),
            ).fetchall()
        return [(entity, record_id) for entity, record_id in rows]

    def due_items(self, account: str) -> list[DueItem]:
        with self._read() as s:
            rows = s.execute(
                f"SELECT {DUE_COLUMNS} FROM due_items WHERE account = ? ORDER BY due_at, entity, record_id",
                (account,),
            ).fetchall()
        return [_due_item(row) for row in rows]

    def operation_outcomes(self, account: str, operation: str) -> list[Outcome]:
        # substr, not a range on event_id: under a PostgreSQL locale's collation "/" may
        # sort anywhere, so a range could miss ids; this reads the account's outcomes once.
        prefix = f"{LIST_PREFIX}{operation}/"
        with self._read() as s:
            rows = s.execute(
                "SELECT outcome FROM outcomes WHERE account = ? AND substr(event_id, 1, ?) = ? ORDER BY seq",
                (account, len(prefix), prefix),
            ).fetchall()
        return [Outcome.model_validate_json(text) for (text,) in rows]

    def replay_delivery(self, account: str, id: str, now: str) -> bool:
        with self._write() as s:
            return bool(
                s.execute(
                    "UPDATE deliveries SET status = 'pending', attempts = 0, next_at = ?, "
                    "last_error = NULL, delivered_at = NULL "
                    "WHERE account = ? AND id = ? AND status <> 'pending'",
                    (now, account, id),
                ).rowcount
            )
