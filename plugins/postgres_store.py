"""The PostgreSQL store: many worker processes, on many hosts, sharing one database.

Chosen by a ``postgresql://`` URL wherever a SQLite path is accepted. It uses psycopg 3
with a connection pool and creates (or upgrades) its schema on first use.

What makes concurrent workers exact:

- the event id is locked first (a transaction-scoped advisory lock) and then looked up, so
  two workers handed the same event never both process it; the ``UNIQUE`` constraint on
  ``(account, event_id)`` is the backstop;
- a bot's rotation state is read with ``SELECT ... FOR UPDATE``: the row stays locked
  until the event commits, so no two workers ever read the same position (no lost update);
- the record and its linked records are locked, always the record first: an advisory lock
  on the record's key (so a record not stored yet is locked too), then the row itself;
- a capped user's usage is locked (an advisory lock per account and user) before it is
  counted, and held until commit: workers routing through different bots (different
  rotation locks) never both give a user their last slot;
- locks are taken in one order: the event id, the record, its linked records, the
  rotation states in bot-id order, then the usage of each capped pool user in user-id
  order. Two events thus rarely wait for each other in a cycle;
- every driver error becomes a ``StoreError``; a deadlock, a serialization failure, a lost
  connection or a server shutting down or starting up becomes a ``TransientStoreError``,
  and the engine runs the event again (with backoff, see ``salesbot_core.engine``); the
  pool checks each connection it hands out, so the dead ones of a restart are replaced.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from salesbot_core import Outcome, StoreError, hookimpl, page_queries
from salesbot_core.errors import TransientStoreError
from salesbot_core.models import ENTITIES, Delivery, DueItem, Note, Notification, Token, Webhook, utc_iso
from salesbot_core.page_queries import postgres
from salesbot_core.store import (
    PRUNE_BATCH,
    PRUNE_EVERY,
    Activity,
    KeptEvent,
    Logged,
    Switch,
    read_kept,
    retention_days,
    touched,
)

from .due_sql import CLAIM_DUE, CLEAR_DUE, DUE_SCHEMA, GET_DUE, LIST_DUE, PUT_DUE, due_item, due_params

SCHEMA_VERSION = 7
NOW = "to_char(now() AT TIME ZONE 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
SCHEMA = (
    f"""
CREATE TABLE IF NOT EXISTS salesbot_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    account TEXT NOT NULL, entity TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (account, entity, id)
);
CREATE TABLE IF NOT EXISTS record_owners (
    account TEXT NOT NULL, entity TEXT NOT NULL, record_id TEXT NOT NULL,
    "user" TEXT NOT NULL, open BOOLEAN NOT NULL,
    PRIMARY KEY (account, entity, record_id, "user")
);
CREATE INDEX IF NOT EXISTS record_owners_user ON record_owners (account, entity, "user", open);
CREATE TABLE IF NOT EXISTS strategy_state (
    account TEXT NOT NULL, bot TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (account, bot)
);
CREATE TABLE IF NOT EXISTS outcomes (
    seq BIGSERIAL PRIMARY KEY,
    account TEXT NOT NULL, event_id TEXT NOT NULL,
    entity TEXT NOT NULL, record_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT {NOW},
    UNIQUE (account, event_id)
);
CREATE INDEX IF NOT EXISTS outcomes_record ON outcomes (account, entity, record_id);
-- Version 2: the payload fingerprint (same id, other payload: a conflict), and every
-- record an outcome changed (the record and its linked records), for explain.
ALTER TABLE outcomes ADD COLUMN IF NOT EXISTS fingerprint TEXT;
CREATE TABLE IF NOT EXISTS outcome_records (
    account TEXT NOT NULL, entity TEXT NOT NULL, record_id TEXT NOT NULL,
    seq BIGINT NOT NULL REFERENCES outcomes (seq),
    PRIMARY KEY (account, entity, record_id, seq)
);
CREATE TABLE IF NOT EXISTS assignments (
    seq BIGINT NOT NULL REFERENCES outcomes (seq),
    account TEXT NOT NULL, bot TEXT NOT NULL, "user" TEXT NOT NULL, at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS assignments_bot ON assignments (account, bot, "user");
CREATE INDEX IF NOT EXISTS assignments_user ON assignments (account, "user", at);
CREATE TABLE IF NOT EXISTS notes (
    seq BIGSERIAL PRIMARY KEY,
    account TEXT NOT NULL, entity TEXT NOT NULL, record_id TEXT NOT NULL,
    text TEXT NOT NULL, bot TEXT NOT NULL, event_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT {NOW}
);
CREATE INDEX IF NOT EXISTS notes_record ON notes (account, entity, record_id);
CREATE TABLE IF NOT EXISTS notifications (
    id BIGSERIAL PRIMARY KEY,
    account TEXT NOT NULL, "user" TEXT NOT NULL, text TEXT NOT NULL,
    event_id TEXT NOT NULL, entity TEXT NOT NULL, record_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT {NOW},
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS notifications_pending ON notifications (id) WHERE delivered_at IS NULL;
CREATE TABLE IF NOT EXISTS bot_switches (
    account TEXT NOT NULL, bot TEXT NOT NULL, active BOOLEAN NOT NULL,
    PRIMARY KEY (account, bot)
);
-- Version 3: API tokens of `salesbot serve`; only the SHA-256 of each secret is kept.
CREATE TABLE IF NOT EXISTS tokens (
    account TEXT NOT NULL, name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT {NOW},
    revoked_at TEXT,
    PRIMARY KEY (account, name)
);
-- Version 4: signed webhooks. Signing secrets are kept as they are (a signature can only
-- be checked with the secret itself), several per account while one is rotated.
CREATE TABLE IF NOT EXISTS signing_secrets (
    seq BIGSERIAL PRIMARY KEY,
    account TEXT NOT NULL, secret TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT {NOW}
);
CREATE INDEX IF NOT EXISTS signing_secrets_account ON signing_secrets (account);
CREATE TABLE IF NOT EXISTS webhooks (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE, account TEXT NOT NULL, url TEXT NOT NULL,
    events TEXT NOT NULL, secret TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT {NOW}
);
CREATE INDEX IF NOT EXISTS webhooks_account ON webhooks (account);
CREATE TABLE IF NOT EXISTS deliveries (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE, account TEXT NOT NULL, webhook_id TEXT NOT NULL,
    kind TEXT NOT NULL, payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',
    next_at TEXT NOT NULL, last_error TEXT,
    created_at TEXT NOT NULL DEFAULT {NOW},
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_account ON deliveries (account, status, seq);
-- Version 5: who switched a bot (a token, the CLI) and when, for the admin page.
ALTER TABLE bot_switches ADD COLUMN IF NOT EXISTS changed_by TEXT;
ALTER TABLE bot_switches ADD COLUMN IF NOT EXISTS changed_at TEXT;
-- Version 6: the payload of each processed event, for `salesbot replay`, while it is
-- within the retention (SALESBOT_EVENT_RETENTION_DAYS). Its outcome is in outcomes.
CREATE TABLE IF NOT EXISTS event_payloads (
    seq BIGSERIAL PRIMARY KEY,
    account TEXT NOT NULL, event_id TEXT NOT NULL,
    at TEXT NOT NULL,
    routed INTEGER NOT NULL,
    size INTEGER NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS event_payloads_account ON event_payloads (account, at);
CREATE INDEX IF NOT EXISTS event_payloads_at ON event_payloads (at);
"""
    + DUE_SCHEMA
)
# Version 5: the indexes of what the admin page reads (salesbot_core.page_queries).
SCHEMA += page_queries.INDEXES
#: Index the outcomes a version-1 database logged under the records they changed.
BACKFILL_OUTCOME_RECORDS = """
INSERT INTO outcome_records (account, entity, record_id, seq)
SELECT account, entity, record_id, seq FROM outcomes
UNION
SELECT o.account, c ->> 'entity', c ->> 'record_id', o.seq
FROM outcomes o,
     jsonb_array_elements(o.outcome::jsonb -> 'decisions') d,
     jsonb_array_elements(d -> 'related') c
ON CONFLICT DO NOTHING
"""
#: Advisory lock spaces (the first key of the two-int form): a user's cap usage, a record.
USAGE_LOCKS = 1
RECORD_LOCKS = 2
#: Seconds to wait for a pooled connection, and to keep trying to reconnect after the
#: server went away, before giving up (then the engine's retries take over).
POOL_TIMEOUT = 30
RECONNECT_TIMEOUT = 300
#: Any constant: the advisory lock that serialises schema creation between workers.
SCHEMA_LOCK = 7_264_011


def _iso(moment: datetime) -> str:
    """UTC ISO 8601 with microseconds, as the SQLite store writes it: sorts as time does."""
    return utc_iso(moment)


class PostgresTransaction:
    """The reads and writes of one event on an open PostgreSQL transaction."""

    def __init__(self, conn: Any, retention_days: int):
        self._conn = conn
        self._retention_days = retention_days

    def _lock(self, space: int, key: str) -> None:
        """Take a transaction-scoped advisory lock on ``key`` in a lock space of its own
        (the two-int form: it never collides with the event-id locks, which use one bigint)."""
        self._conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (space, key))

    def _one(self, sql: str, params: tuple[Any, ...]) -> Any:
        row = self._conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def outcome(self, account: str, event_id: str) -> Logged | None:
        # Workers handed the same event queue here instead of racing to the unique index.
        self._conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (f"{account}:{event_id}",),  # account ids have no ":"
        )
        row = self._conn.execute(
            "SELECT outcome, fingerprint FROM outcomes WHERE account = %s AND event_id = %s",
            (account, event_id),
        ).fetchone()
        return Logged(Outcome.model_validate_json(row[0]), row[1]) if row else None

    def get_record(self, account: str, entity: str, record_id: str) -> dict[str, Any] | None:
        # FOR UPDATE locks nothing when the row does not exist yet: two events creating
        # the same linked record would both read "absent" and the second would overwrite
        # the first one's owners. The key itself is locked, present or not.
        self._lock(RECORD_LOCKS, f"{account}:{entity}:{record_id}")
        data = self._one(
            "SELECT data FROM records WHERE account = %s AND entity = %s AND id = %s FOR UPDATE",
            (account, entity, record_id),
        )
        return json.loads(data) if data else None

    def put_record(self, account: str, record: dict[str, Any]) -> None:
        key = (account, record["entity"], record["id"])
        self._conn.execute(
            "INSERT INTO records (account, entity, id, data) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (account, entity, id) DO UPDATE SET data = EXCLUDED.data",
            (*key, json.dumps(record)),
        )
        self._conn.execute(
            "DELETE FROM record_owners WHERE account = %s AND entity = %s AND record_id = %s", key
        )
        with self._conn.cursor() as cursor:
            cursor.executemany(
                'INSERT INTO record_owners (account, entity, record_id, "user", open) '
                "VALUES (%s, %s, %s, %s, %s)",
                [(*key, owner, bool(record.get("open", True))) for owner in record["owners"]],
            )

    def get_state(self, account: str, bot: str) -> dict[str, Any]:
        # The row must exist to be locked: create it empty, then hold it until commit.
        self._conn.execute(
            "INSERT INTO strategy_state (account, bot, state) VALUES (%s, %s, '{}') ON CONFLICT DO NOTHING",
            (account, bot),
        )
        data = self._one(
            "SELECT state FROM strategy_state WHERE account = %s AND bot = %s FOR UPDATE", (account, bot)
        )
        return json.loads(data) if data else {}

    def put_state(self, account: str, bot: str, state: dict[str, Any]) -> None:
        self._conn.execute(
            "UPDATE strategy_state SET state = %s WHERE account = %s AND bot = %s",
            (json.dumps(state), account, bot),
        )

    def put_outcome(self, outcome: Outcome, fingerprint: str | None) -> None:
        seq = self._one(
            "INSERT INTO outcomes (account, event_id, entity, record_id, outcome, fingerprint) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING seq",
            (
                outcome.account,
                outcome.event_id,
                outcome.entity,
                outcome.record_id,
                outcome.model_dump_json(),
                fingerprint,
            ),
        )
        at = _iso(outcome.at or datetime.now(UTC))
        with self._conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO outcome_records (account, entity, record_id, seq) VALUES (%s, %s, %s, %s)",
                [(outcome.account, entity, record_id, seq) for entity, record_id in touched(outcome)],
            )
            cursor.executemany(
                'INSERT INTO assignments (seq, account, bot, "user", at) VALUES (%s, %s, %s, %s, %s)',
                [(seq, outcome.account, d.bot, d.owner, at) for d in outcome.assigned],
            )

    def put_event(self, account: str, event_id: str, at: datetime, payload: str, routed: bool) -> None:
        if not self._retention_days:
            return
        seq = self._one(
            "INSERT INTO event_payloads (account, event_id, at, routed, size, payload) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING seq",
            (account, event_id, _iso(at), int(routed), len(payload.encode("utf-8")), payload),
        )
        if seq % PRUNE_EVERY == 0:
            _prune(self._conn, datetime.now(UTC) - timedelta(days=self._retention_days), PRUNE_BATCH)

    def get_switches(self, account: str) -> dict[str, bool]:
        return _switches(self._conn, account)

    def open_load(self, account: str, entity: str, users: list[str]) -> dict[str, int]:
        rows = self._conn.execute(
            'SELECT "user", COUNT(*) FROM record_owners WHERE account = %s AND entity = %s '
            'AND open AND "user" = ANY(%s) GROUP BY "user"',
            (account, entity, users),
        ).fetchall()
        return {user: 0 for user in users} | {user: int(n) for user, n in rows}

    def count_assigned(self, account: str, user: str, since: datetime, until: datetime) -> int:
        # Workers routing through different bots hold different rotation locks: without
        # this lock two of them could both count a user's last free slot and both take it.
        self._lock(USAGE_LOCKS, f"{account}:{user}")
        return int(
            self._one(
                'SELECT COUNT(*) FROM assignments WHERE account = %s AND "user" = %s '
                "AND at >= %s AND at < %s",
                (account, user, _iso(since), _iso(until)),
            )
        )

    def count_open_owned(self, account: str, user: str) -> int:
        # The lock of count_assigned: a user's open slots are taken one event at a time.
        self._lock(USAGE_LOCKS, f"{account}:{user}")
        return int(
            self._one(
                # Every entity named, so the (account, entity, user, open) index answers it.
                "SELECT COUNT(*) FROM record_owners "
                'WHERE account = %s AND entity = ANY(%s) AND "user" = %s AND open',
                (account, list(ENTITIES), user),
            )
        )

    def put_note(self, account: str, entity: str, record_id: str, text: str, bot: str, event_id: str) -> None:
        self._conn.execute(
            "INSERT INTO notes (account, entity, record_id, text, bot, event_id) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (account, entity, record_id, text, bot, event_id),
        )

    def put_notification(
        self, account: str, user: str, text: str, event_id: str, entity: str, record_id: str
    ) -> None:
        self._conn.execute(
            'INSERT INTO notifications (account, "user", text, event_id, entity, record_id) '
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (account, user, text, event_id, entity, record_id),
        )

    def webhook_endpoints(self, account: str) -> list[tuple[str, list[str]]]:
        rows = self._conn.execute(
            "SELECT id, events FROM webhooks WHERE account = %s ORDER BY seq", (account,)
        ).fetchall()
        return [(id, json.loads(events)) for id, events in rows]

    def put_delivery(
        self, id: str, account: str, webhook_id: str, kind: str, payload: str, next_at: str
    ) -> None:
        self._conn.execute(
            "INSERT INTO deliveries (id, account, webhook_id, kind, payload, next_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (id, account, webhook_id, kind, payload, next_at),
        )

    # -- Due items of SLAs (salesbot_core.models.DueItem): the SQL of plugins/due_sql.py.

    def put_due(self, item: DueItem) -> None:
        self._conn.execute(PUT_DUE, due_params(item))

    def get_due(self, account: str, entity: str, record_id: str) -> DueItem | None:
        row = self._conn.execute(GET_DUE, (account, entity, record_id)).fetchone()
        return due_item(row) if row else None

    def clear_due(self, account: str, entity: str, record_id: str) -> None:
        self._conn.execute(CLEAR_DUE, (account, entity, record_id))

    def claim_due(self, now: str, limit: int) -> list[DueItem]:
        # SKIP LOCKED: workers ticking at once each take other items, none waits on
        # another; the rows stay locked until this transaction, which clears them, ends.
        rows = self._conn.execute(CLAIM_DUE + " FOR UPDATE SKIP LOCKED", (now, limit)).fetchall()
        return [due_item(row) for row in rows]


def _schema_version(conn: Any) -> int | None:
    """The schema version of the database, None when it has no salesbot tables yet."""
    exists = conn.execute("SELECT to_regclass('salesbot_schema') IS NOT NULL").fetchone()[0]
    row = conn.execute("SELECT MAX(version) FROM salesbot_schema").fetchone() if exists else None
    return int(row[0]) if row and row[0] is not None else None


def _create_schema(conn: Any) -> None:
    """Create or upgrade the tables, under the schema lock."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
    version = _schema_version(conn)
    if version is not None and version >= SCHEMA_VERSION:
        # Nothing to do, and the DDL below would lock tables that workers already
        # started are writing to (an ALTER TABLE waiting on them, them on an index
        # build: a deadlock).
        return
    conn.execute(SCHEMA)
    if version is None:
        conn.execute("INSERT INTO salesbot_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
    elif version < SCHEMA_VERSION:
        if version < 2:
            conn.execute(BACKFILL_OUTCOME_RECORDS)
        conn.execute("UPDATE salesbot_schema SET version = %s", (SCHEMA_VERSION,))


def _check_readable(conn: Any, url: str) -> None:
    """A read-only store needs the current tables: it must not create or upgrade them."""
    version = _schema_version(conn)
    if version is None:
        raise StoreError(f"no salesbot database at {_safe(url)!r}: it has no salesbot tables")
    if version < SCHEMA_VERSION:
        raise StoreError(
            f"the database at {_safe(url)!r} is from an older salesbot (schema version {version}, "
            f"now {SCHEMA_VERSION}): open it once for writing to upgrade it"
        )


def _read_only(conn: Any) -> None:
    """Make a new pooled session read-only: any write in it fails."""
    conn.execute("SET default_transaction_read_only = on")
    conn.commit()


def _read(conn: Any, sql: str, params: tuple[Any, ...]) -> list[Any]:
    """One read written with ``?`` placeholders (the stores' shared SQL, see ``salesbot_core.store``)."""
    return conn.execute(sql.replace("?", "%s"), params).fetchall()


def _prune(conn: Any, before: datetime, limit: int) -> int:
    # SKIP LOCKED: workers pruning at once take different rows instead of waiting.
    return int(
        conn.execute(
            "DELETE FROM event_payloads WHERE seq IN (SELECT seq FROM event_payloads "
            "WHERE at < %s ORDER BY at LIMIT %s FOR UPDATE SKIP LOCKED)",
            (_iso(before), limit),
        ).rowcount
    )


def _switches(conn: Any, account: str) -> dict[str, bool]:
    rows = conn.execute("SELECT bot, active FROM bot_switches WHERE account = %s", (account,)).fetchall()
    return {bot: bool(active) for bot, active in rows}


class PostgresStore:
    """A salesbot store in a PostgreSQL database, shared by any number of workers."""

    def __init__(self, url: str, max_connections: int = 4, readonly: bool = False, dry_run: bool = False):
        """Connect to ``url`` and create or upgrade the schema.

        ``readonly`` creates and upgrades nothing, and makes every session read-only
        (``default_transaction_read_only``), so any write fails. ``dry_run`` creates and
        upgrades nothing either and makes every session read-only but ``dry_run``
        transactions; a database without the current tables gets them inside each dry
        run (rolled back with it). Raises ``StoreError`` when psycopg is not installed or
        the server can't be reached.
        """
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError:
            raise StoreError(
                "the PostgreSQL store needs psycopg 3: pip install 'salesbot[postgresql]'"
            ) from None
        self._psycopg = psycopg
        self.url = url
        self._retention_days = retention_days()
        self._dry_run_schema = False
        try:
            # One direct connection first: an unreachable server fails at once, not after
            # the pool's retries; it also creates the schema, once, under an advisory lock.
            with psycopg.connect(url) as conn:
                if readonly:
                    _check_readable(conn, url)
                elif dry_run:
                    version = _schema_version(conn)
                    self._dry_run_schema = version is None or version < SCHEMA_VERSION
                else:
                    _create_schema(conn)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open PostgreSQL store {_safe(url)!r}: {exc}") from None
        # check: a connection killed by a server restart is found dead when taken from
        # the pool, dropped and replaced, instead of failing the next event.
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            open=True,
            timeout=POOL_TIMEOUT,
            check=ConnectionPool.check_connection,
            reconnect_timeout=RECONNECT_TIMEOUT,
            configure=_read_only if readonly or dry_run else None,
        )

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A pooled connection, its block one transaction (committed at the end, rolled
        back on error); any driver error leaves as a ``StoreError``, a passing one (a lost
        connection, a server restarting, a deadlock) as a ``TransientStoreError``."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except self._psycopg.Error as exc:
            kind = TransientStoreError if _transient(exc, self._psycopg) else StoreError
            message = str(exc).strip() or type(exc).__name__
            raise kind(f"PostgreSQL store {_safe(self.url)!r}: {message}") from exc

    @contextmanager
    def transaction(self) -> Iterator[PostgresTransaction]:
        with self._connection() as conn:
            yield PostgresTransaction(conn, self._retention_days)

    @contextmanager
    def dry_run(self) -> Iterator[PostgresTransaction]:
        with self._connection() as conn:
            # Writable even in a read-only session: it is never committed.
            conn.execute("SET TRANSACTION READ WRITE")
            try:
                if self._dry_run_schema:
                    _create_schema(conn)
                yield PostgresTransaction(conn, self._retention_days)
            finally:
                conn.rollback()

    def get_record(self, account: str, entity: str, record_id: str) -> dict[str, Any] | None:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT data FROM records WHERE account = %s AND entity = %s AND id = %s",
                (account, entity, record_id),
            ).fetchone()
        return json.loads(row[0]) if row else None

    def outcomes(self, account: str, entity: str, record_id: str) -> Iterator[Outcome]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT o.outcome FROM outcome_records r JOIN outcomes o ON o.seq = r.seq "
                "WHERE r.account = %s AND r.entity = %s AND r.record_id = %s ORDER BY r.seq",
                (account, entity, record_id),
            ).fetchall()
        return (Outcome.model_validate_json(row[0]) for row in rows)

    def kept_events(
        self, account: str, since: datetime, until: datetime, limit: int, max_bytes: int
    ) -> list[KeptEvent]:
        with self._connection() as conn:
            return read_kept(partial(_read, conn), account, since, until, limit, max_bytes)

    def prune_events(self, before: datetime, limit: int = PRUNE_BATCH) -> int:
        with self._connection() as conn:
            return _prune(conn, before, limit)

    def assignment_counts(self) -> list[tuple[str, str, str, int]]:
        with self._connection() as conn:
            rows = conn.execute(
                'SELECT account, bot, "user", COUNT(*) FROM assignments '
                'GROUP BY account, bot, "user" ORDER BY account, bot, "user"'
            ).fetchall()
        return [(a, b, u, int(n)) for a, b, u, n in rows]

    def notes(self, account: str, entity: str, record_id: str) -> list[Note]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT text, bot, event_id, created_at FROM notes "
                "WHERE account = %s AND entity = %s AND record_id = %s ORDER BY seq",
                (account, entity, record_id),
            ).fetchall()
        return [Note(text=t, bot=b, event_id=e, created_at=c) for t, b, e, c in rows]

    def pending_notifications(
        self, account: str | None = None, limit: int = 100, after: int | None = None
    ) -> list[Notification]:
        with self._connection() as conn:
            cursor = conn.execute(
                'SELECT id, account, "user", text, event_id, entity, record_id, created_at, delivered_at '
                "FROM notifications WHERE delivered_at IS NULL AND (%s::text IS NULL OR account = %s) "
                "AND id > %s ORDER BY id LIMIT %s",
                (account, account, after or 0, limit),
            )
            names = [column.name for column in cursor.description or ()]
            rows = cursor.fetchall()
        return [Notification(**dict(zip(names, row, strict=True))) for row in rows]

    def mark_delivered(self, account: str, ids: list[int]) -> list[int]:
        with self._connection() as conn:
            marked = conn.execute(
                f"UPDATE notifications SET delivered_at = {NOW} "
                "WHERE account = %s AND id = ANY(%s) AND delivered_at IS NULL RETURNING id",
                (account, sorted(set(ids))),
            ).fetchall()
        done = {int(i) for (i,) in marked}
        return [i for i in dict.fromkeys(ids) if i in done]

    def set_switch(self, account: str, bot: str, active: bool, by: str | None = None) -> None:
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO bot_switches (account, bot, active, changed_by, changed_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (account, bot) DO UPDATE SET active = "
                "EXCLUDED.active, changed_by = EXCLUDED.changed_by, changed_at = EXCLUDED.changed_at",
                (account, bot, active, by, _iso(datetime.now(UTC))),
            )

    def switches(self, account: str) -> dict[str, Switch]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT bot, active, changed_by, changed_at FROM bot_switches WHERE account = %s", (account,)
            ).fetchall()
        return {bot: Switch(bool(active), by, at) for bot, active, by, at in rows}

    def distribution(self, account: str, bot: str, since: str | None = None) -> dict[str, int]:
        with self._connection() as conn:
            rows = conn.execute(postgres(page_queries.DISTRIBUTION), (account, bot, since or "")).fetchall()
        return {user: int(n) for user, n in rows}

    def recent_outcomes(
        self, account: str, limit: int = 50, before: int | None = None, bot: str | None = None
    ) -> list[tuple[int, Outcome]]:
        sql, params = page_queries.recent_params(account, limit, before, bot)
        with self._connection() as conn:
            rows = conn.execute(postgres(sql), params).fetchall()
        return [(int(seq), Outcome.model_validate_json(text)) for seq, text in rows]

    def activity(self, account: str, since: str) -> Activity:
        with self._connection() as conn:
            row = conn.execute(
                postgres(page_queries.ACTIVITY), page_queries.activity_params(account, since)
            ).fetchone()
        return Activity(*map(int, row))

    def get_switches(self, account: str) -> dict[str, bool]:
        with self._connection() as conn:
            return _switches(conn, account)

    def add_token(self, account: str, name: str, hash: str, scopes: list[str]) -> bool:
        with self._connection() as conn:
            added = conn.execute(
                "INSERT INTO tokens (account, name, hash, scopes) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (account, name) DO NOTHING RETURNING 1",
                (account, name, hash, json.dumps(scopes)),
            ).fetchone()
        return added is not None

    def token(self, hash: str) -> Token | None:
        with self._connection() as conn:
            row = conn.execute(f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = %s", (hash,)).fetchone()
        return _token(row) if row else None

    def tokens(self, account: str | None = None) -> list[Token]:
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE %s::text IS NULL OR account = %s "
                "ORDER BY account, name",
                (account, account),
            ).fetchall()
        return [_token(row) for row in rows]

    def revoke_token(self, account: str, name: str) -> bool:
        with self._connection() as conn:
            revoked = conn.execute(
                f"UPDATE tokens SET revoked_at = {NOW} "
                "WHERE account = %s AND name = %s AND revoked_at IS NULL RETURNING 1",
                (account, name),
            ).fetchone()
        return revoked is not None

    def add_signing_secret(self, account: str, secret: str) -> None:
        with self._connection() as conn:
            conn.execute("INSERT INTO signing_secrets (account, secret) VALUES (%s, %s)", (account, secret))

    def signing_secrets(self, account: str) -> list[str]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT secret FROM signing_secrets WHERE account = %s ORDER BY seq DESC", (account,)
            ).fetchall()
        return [secret for (secret,) in rows]

    def remove_signing_secrets(self, account: str, keep_newest: bool = False) -> int:
        with self._connection() as conn:
            cursor = conn.execute(
                "DELETE FROM signing_secrets WHERE account = %s AND (NOT %s OR seq < "
                "(SELECT MAX(seq) FROM signing_secrets WHERE account = %s))",
                (account, keep_newest, account),
            )
            return int(cursor.rowcount)

    def add_webhook(self, webhook: Webhook) -> None:
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO webhooks (id, account, url, events, secret) VALUES (%s, %s, %s, %s, %s)",
                (webhook.id, webhook.account, webhook.url, json.dumps(webhook.events), webhook.secret),
            )

    def webhooks(self, account: str | None = None) -> list[Webhook]:
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE %s::text IS NULL OR account = %s ORDER BY seq",
                (account, account),
            ).fetchall()
        return [_webhook(row) for row in rows]

    def remove_webhook(self, account: str, id: str) -> bool:
        with self._connection() as conn:
            gone = conn.execute("DELETE FROM webhooks WHERE account = %s AND id = %s", (account, id)).rowcount
            if gone:
                conn.execute("DELETE FROM deliveries WHERE webhook_id = %s", (id,))
        return bool(gone)

    def claim_deliveries(self, now: str, lease_until: str, limit: int) -> list[Delivery]:
        # SKIP LOCKED: workers claiming at once each take other rows, none waits on another.
        with self._connection() as conn:
            cursor = conn.execute(
                "WITH due AS (SELECT seq FROM deliveries WHERE status = 'pending' AND next_at <= %s "
                "ORDER BY next_at, seq LIMIT %s FOR UPDATE SKIP LOCKED) "
                "UPDATE deliveries d SET attempts = d.attempts + 1, next_at = %s FROM due, webhooks w "
                "WHERE d.seq = due.seq AND w.id = d.webhook_id "
                f"RETURNING {DELIVERY_COLUMNS}, w.url, w.secret",
                (now, limit, lease_until),
            )
            names = [column.name for column in cursor.description or ()]
            rows = cursor.fetchall()
        claimed = [Delivery(**dict(zip(names, row, strict=True))) for row in rows]
        return sorted(claimed, key=lambda d: d.created_at)

    def finish_delivery(self, id: str, attempts: int, status: str, next_at: str, error: str | None) -> bool:
        with self._connection() as conn:
            cursor = conn.execute(
                "UPDATE deliveries SET status = %s, next_at = %s, last_error = %s, delivered_at = "
                f"CASE WHEN %s = 'delivered' THEN {NOW} END "
                "WHERE id = %s AND attempts = %s AND status = 'pending'",
                (status, next_at, error, status, id, attempts),
            )
            return bool(cursor.rowcount)

    def deliveries(self, account: str, status: str | None = None, limit: int = 100) -> list[Delivery]:
        with self._connection() as conn:
            cursor = conn.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.account = %s "
                "AND (%s::text IS NULL OR d.status = %s) ORDER BY d.seq DESC LIMIT %s",
                (account, status, status, limit),
            )
            names = [column.name for column in cursor.description or ()]
            rows = cursor.fetchall()
        return [Delivery(**dict(zip(names, row, strict=True))) for row in rows]

    def replay_delivery(self, account: str, id: str, now: str) -> bool:
        with self._connection() as conn:
            cursor = conn.execute(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_at = %s, "
                "last_error = NULL, delivered_at = NULL "
                "WHERE account = %s AND id = %s AND status <> 'pending'",
                (now, account, id),
            )
            return bool(cursor.rowcount)

    def open_records(self, account: str, user: str) -> list[tuple[str, str]]:
        with self._connection() as conn:
            rows = conn.execute(
                'SELECT entity, record_id FROM record_owners WHERE account = %s AND "user" = %s AND open '
                "ORDER BY entity, record_id",
                (account, user),
            ).fetchall()
        return [(entity, record_id) for entity, record_id in rows]

    def due_items(self, account: str) -> list[DueItem]:
        with self._connection() as conn:
            return [due_item(row) for row in conn.execute(LIST_DUE, (account,)).fetchall()]

    def close(self) -> None:
        self._pool.close()


WEBHOOK_COLUMNS = "id, account, url, events, secret, created_at"
DELIVERY_COLUMNS = (
    "d.id, d.account, d.webhook_id, d.kind, d.payload, d.attempts, d.status, d.next_at, "
    "d.last_error, d.created_at, d.delivered_at"
)


def _webhook(row: Any) -> Webhook:
    id, account, url, events, secret, created_at = row
    return Webhook(
        id=id, account=account, url=url, events=json.loads(events), secret=secret, created_at=created_at
    )


TOKEN_COLUMNS = "account, name, hash, scopes, created_at, revoked_at"


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


def _transient(exc: Exception, psycopg: Any) -> bool:
    """Whether running the transaction again may succeed: the server aborted it to resolve
    a race (class 40: deadlock, serialization failure), the connection broke (class 08,
    or no SQLSTATE at all: the client lost the server, the pool timed out waiting), or
    the server is shutting down or starting up (57P01-57P03)."""
    state = getattr(exc, "sqlstate", None)
    if state is None:
        return isinstance(exc, psycopg.OperationalError)
    return state[:2] in ("08", "40") or state in ("57P01", "57P02", "57P03")


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    return f"{scheme}{sep}{credentials.split(':')[0]}:***@{host}" if ":" in credentials else url


@hookimpl
def salesbot_open_store(url: str, readonly: bool, dry_run: bool = False) -> PostgresStore | None:
    """Handle ``postgresql://`` and ``postgres://`` URLs."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url, readonly=readonly, dry_run=dry_run)
    return None
