"""The embedded default store: one SQLite file in WAL mode, stdlib ``sqlite3`` only.

Each event is one ``BEGIN IMMEDIATE`` transaction: the write lock is taken before the
strategy state is read, so processes sharing the file never both read the same rotation
position (no lost update), and a busy timeout makes them queue instead of failing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from salesbot_core import Outcome, StoreError, hookimpl, page_queries
from salesbot_core.errors import TransientStoreError
from salesbot_core.models import ENTITIES, Delivery, DueItem, Note, Notification, Token, Webhook, utc_iso
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

from .due_sql import CLAIM_DUE, CLEAR_DUE, DUE_SCHEMA, GET_DUE, LIST_DUE, PUT_DUE, due_item, due_params, qmark

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS records (
    account TEXT NOT NULL, entity TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (account, entity, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS strategy_state (
    account TEXT NOT NULL, bot TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (account, bot)
) WITHOUT ROWID;
-- One row per processed event: the idempotency key and the audit of what was decided.
CREATE TABLE IF NOT EXISTS outcomes (
    seq INTEGER PRIMARY KEY,
    account TEXT NOT NULL, event_id TEXT NOT NULL,
    entity TEXT NOT NULL, record_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- SHA-256 of the event's canonical payload: the same id with another payload is a conflict.
    fingerprint TEXT,
    UNIQUE (account, event_id)
);
CREATE INDEX IF NOT EXISTS outcomes_record ON outcomes (account, entity, record_id);
-- Every record an outcome changed (the record and its linked records), for explain.
CREATE TABLE IF NOT EXISTS outcome_records (
    account TEXT NOT NULL, entity TEXT NOT NULL, record_id TEXT NOT NULL,
    seq INTEGER NOT NULL REFERENCES outcomes (seq),
    PRIMARY KEY (account, entity, record_id, seq)
) WITHOUT ROWID;
-- One row per assignment, for per-bot, per-user counts and capacity caps.
CREATE TABLE IF NOT EXISTS assignments (
    seq INTEGER NOT NULL REFERENCES outcomes (seq),
    account TEXT NOT NULL, bot TEXT NOT NULL, user TEXT NOT NULL,
    at TEXT NOT NULL  -- when the record was saved, UTC ISO 8601
);
CREATE INDEX IF NOT EXISTS assignments_bot ON assignments (account, bot, user);
CREATE INDEX IF NOT EXISTS assignments_user ON assignments (account, user, at);
-- Who owns which record, for the load of least-loaded routing.
CREATE TABLE IF NOT EXISTS record_owners (
    account TEXT NOT NULL, entity TEXT NOT NULL, record_id TEXT NOT NULL,
    user TEXT NOT NULL, open INTEGER NOT NULL,
    PRIMARY KEY (account, entity, record_id, user)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS record_owners_user ON record_owners (account, entity, user, open);
CREATE TABLE IF NOT EXISTS notes (
    seq INTEGER PRIMARY KEY,
    account TEXT NOT NULL, entity TEXT NOT NULL, record_id TEXT NOT NULL,
    text TEXT NOT NULL, bot TEXT NOT NULL, event_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS notes_record ON notes (account, entity, record_id);
-- The outbox: a host delivers pending rows and marks them delivered.
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL, user TEXT NOT NULL, text TEXT NOT NULL,
    event_id TEXT NOT NULL, entity TEXT NOT NULL, record_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS notifications_pending ON notifications (id) WHERE delivered_at IS NULL;
CREATE TABLE IF NOT EXISTS bot_switches (
    account TEXT NOT NULL, bot TEXT NOT NULL, active INTEGER NOT NULL,
    -- Version 6: who switched the bot (a token, the CLI) and when, for the admin page.
    changed_by TEXT, changed_at TEXT,
    PRIMARY KEY (account, bot)
) WITHOUT ROWID;
-- API tokens of `salesbot serve` (version 4): only the SHA-256 of each secret is kept.
CREATE TABLE IF NOT EXISTS tokens (
    account TEXT NOT NULL, name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,  -- a JSON array of scope names
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    revoked_at TEXT,
    PRIMARY KEY (account, name)
);
-- Version 5: signed webhooks. Signing secrets are kept as they are (a signature can only
-- be checked with the secret itself), several per account while one is rotated.
CREATE TABLE IF NOT EXISTS signing_secrets (
    seq INTEGER PRIMARY KEY,
    account TEXT NOT NULL, secret TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS signing_secrets_account ON signing_secrets (account);
CREATE TABLE IF NOT EXISTS webhooks (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE, account TEXT NOT NULL, url TEXT NOT NULL,
    events TEXT NOT NULL,  -- a JSON array: assignment, notification
    secret TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS webhooks_account ON webhooks (account);
-- The webhook outbox: one row per message and endpoint, written with its event.
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE, account TEXT NOT NULL, webhook_id TEXT NOT NULL,
    kind TEXT NOT NULL, payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',  -- pending, delivered, dead
    next_at TEXT NOT NULL, last_error TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_account ON deliveries (account, status, seq);
-- Version 7: the payload of each processed event, for `salesbot replay`, while it is
-- within the retention (SALESBOT_EVENT_RETENTION_DAYS). Its outcome is in outcomes.
CREATE TABLE IF NOT EXISTS event_payloads (
    seq INTEGER PRIMARY KEY,
    account TEXT NOT NULL, event_id TEXT NOT NULL,
    at TEXT NOT NULL,  -- when the event was decided, UTC ISO 8601
    routed INTEGER NOT NULL,
    size INTEGER NOT NULL,  -- bytes of the payload (UTF-8)
    payload TEXT NOT NULL  -- the event as canonical JSON
);
CREATE INDEX IF NOT EXISTS event_payloads_account ON event_payloads (account, at);
CREATE INDEX IF NOT EXISTS event_payloads_at ON event_payloads (at);
"""
    + DUE_SCHEMA
)
# Version 6: the indexes of what the admin page reads (salesbot_core.page_queries).
SCHEMA += page_queries.INDEXES

BUSY_TIMEOUT_MS = 30_000
#: Stored as SQLite's ``user_version``; ``_migrate`` brings older files up to it.
SCHEMA_VERSION = 8

#: Index every logged outcome under the records it changed (version 3 added the index).
BACKFILL_OUTCOME_RECORDS = """
INSERT OR IGNORE INTO outcome_records (account, entity, record_id, seq)
SELECT account, entity, record_id, seq FROM outcomes
UNION ALL
SELECT o.account, json_extract(c.value, '$.entity'), json_extract(c.value, '$.record_id'), o.seq
FROM outcomes o, json_each(o.outcome, '$.decisions') d, json_each(d.value, '$.related') c
"""


def _backfill(conn: sqlite3.Connection, version: int) -> None:
    """Fill tables an older file lacked from what it already has."""
    if version < 2:
        conn.execute(
            "INSERT OR IGNORE INTO record_owners (account, entity, record_id, user, open) "
            "SELECT r.account, r.entity, r.id, o.value, COALESCE(json_extract(r.data, '$.open'), 1) "
            "FROM records r, json_each(r.data, '$.owners') o"
        )
    if version < 3:
        conn.execute(BACKFILL_OUTCOME_RECORDS)
    # Version 4 added the tokens table (created empty by SCHEMA): no older data to carry.
    # Version 5 added signing secrets, webhooks and deliveries (created empty by SCHEMA):
    # nothing older is delivered, so no data to carry either.
    # Version 6 added who/when columns to switches (_migrate) and indexes (SCHEMA).
    # Version 7 added event payloads (created empty by SCHEMA): older ones were not kept.
    # Version 8 added the due items of SLAs (created empty): older assignments have none.


def _migrate(conn: sqlite3.Connection) -> int:
    """Upgrade the tables of a database made by an older salesbot, inside the opening
    transaction; returns the version it had (0 for a new file)."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    columns = [row[1] for row in conn.execute("PRAGMA table_info(assignments)")]
    if version < 2 and columns and "at" not in columns:
        # Version 1 had no assignment times (caps) and no owner index (least loaded).
        conn.execute("ALTER TABLE assignments ADD COLUMN at TEXT NOT NULL DEFAULT ''")
        conn.execute(
            "UPDATE assignments SET at = (SELECT o.created_at FROM outcomes o WHERE o.seq = assignments.seq)"
        )
    outcome_columns = [row[1] for row in conn.execute("PRAGMA table_info(outcomes)")]
    if version < 3 and outcome_columns and "fingerprint" not in outcome_columns:
        # Version 2 kept no payload fingerprints: its events are answered as before.
        conn.execute("ALTER TABLE outcomes ADD COLUMN fingerprint TEXT")
    switch_columns = [row[1] for row in conn.execute("PRAGMA table_info(bot_switches)")]
    if switch_columns and "changed_by" not in switch_columns:
        # Version 5 kept no who and when of a switch: older switches show neither.
        conn.execute("ALTER TABLE bot_switches ADD COLUMN changed_by TEXT")
        conn.execute("ALTER TABLE bot_switches ADD COLUMN changed_at TEXT")
    return int(version)


class SQLiteTransaction:
    """The reads and writes of one event on an open SQLite transaction."""

    def __init__(self, conn: sqlite3.Connection, retention_days: int):
        self._conn = conn
        self._retention_days = retention_days

    def outcome(self, account: str, event_id: str) -> Logged | None:
        row = self._conn.execute(
            "SELECT outcome, fingerprint FROM outcomes WHERE account = ? AND event_id = ?",
            (account, event_id),
        ).fetchone()
        return Logged(Outcome.model_validate_json(row[0]), row[1]) if row else None

    def get_record(self, account: str, entity: str, record_id: str) -> dict[str, Any] | None:
        return _get_record(self._conn, account, entity, record_id)

    def put_record(self, account: str, record: dict[str, Any]) -> None:
        key = (account, record["entity"], record["id"])
        self._conn.execute(
            "INSERT OR REPLACE INTO records (account, entity, id, data) VALUES (?, ?, ?, ?)",
            (*key, json.dumps(record)),
        )
        self._conn.execute(
            "DELETE FROM record_owners WHERE account = ? AND entity = ? AND record_id = ?", key
        )
        self._conn.executemany(
            "INSERT INTO record_owners (account, entity, record_id, user, open) VALUES (?, ?, ?, ?, ?)",
            [(*key, owner, int(record.get("open", True))) for owner in record["owners"]],
        )

    def open_load(self, account: str, entity: str, users: list[str]) -> dict[str, int]:
        marks = ", ".join("?" * len(users))
        rows = self._conn.execute(
            f"SELECT user, COUNT(*) FROM record_owners WHERE account = ? AND entity = ? "
            f"AND open = 1 AND user IN ({marks}) GROUP BY user",
            (account, entity, *users),
        )
        return {user: 0 for user in users} | dict(rows.fetchall())

    def count_assigned(self, account: str, user: str, since: datetime, until: datetime) -> int:
        # No lock of its own: BEGIN IMMEDIATE already serialises every event.
        (count,) = self._conn.execute(
            "SELECT COUNT(*) FROM assignments WHERE account = ? AND user = ? AND at >= ? AND at < ?",
            (account, user, _iso(since), _iso(until)),
        ).fetchone()
        return int(count)

    def count_open_owned(self, account: str, user: str) -> int:
        # No lock of its own: BEGIN IMMEDIATE already serialises every event. Every entity
        # named, so the (account, entity, user, open) index answers it.
        marks = ", ".join("?" * len(ENTITIES))
        (count,) = self._conn.execute(
            f"SELECT COUNT(*) FROM record_owners WHERE account = ? AND entity IN ({marks}) "
            "AND user = ? AND open = 1",
            (account, *ENTITIES, user),
        ).fetchone()
        return int(count)

    def get_state(self, account: str, bot: str) -> dict[str, Any]:
        row = self._conn.execute(
            "SELECT state FROM strategy_state WHERE account = ? AND bot = ?", (account, bot)
        ).fetchone()
        return json.loads(row[0]) if row else {}

    def put_state(self, account: str, bot: str, state: dict[str, Any]) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO strategy_state (account, bot, state) VALUES (?, ?, ?)",
            (account, bot, json.dumps(state)),
        )

    def put_outcome(self, outcome: Outcome, fingerprint: str | None) -> None:
        seq = self._conn.execute(
            "INSERT INTO outcomes (account, event_id, entity, record_id, outcome, fingerprint) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                outcome.account,
                outcome.event_id,
                outcome.entity,
                outcome.record_id,
                outcome.model_dump_json(),
                fingerprint,
            ),
        ).lastrowid
        self._conn.executemany(
            "INSERT INTO outcome_records (account, entity, record_id, seq) VALUES (?, ?, ?, ?)",
            [(outcome.account, entity, record_id, seq) for entity, record_id in touched(outcome)],
        )
        at = _iso(outcome.at or datetime.now(UTC))
        self._conn.executemany(
            "INSERT INTO assignments (seq, account, bot, user, at) VALUES (?, ?, ?, ?, ?)",
            [(seq, outcome.account, d.bot, d.owner, at) for d in outcome.assigned],
        )

    def put_event(self, account: str, event_id: str, at: datetime, payload: str, routed: bool) -> None:
        if not self._retention_days:
            return
        seq = self._conn.execute(
            "INSERT INTO event_payloads (account, event_id, at, routed, size, payload) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (account, event_id, _iso(at), int(routed), len(payload.encode("utf-8")), payload),
        ).lastrowid
        if seq is not None and seq % PRUNE_EVERY == 0:
            _prune(self._conn, datetime.now(UTC) - timedelta(days=self._retention_days), PRUNE_BATCH)

    def get_switches(self, account: str) -> dict[str, bool]:
        return _get_switches(self._conn, account)

    def put_note(self, account: str, entity: str, record_id: str, text: str, bot: str, event_id: str) -> None:
        self._conn.execute(
            "INSERT INTO notes (account, entity, record_id, text, bot, event_id) VALUES (?, ?, ?, ?, ?, ?)",
            (account, entity, record_id, text, bot, event_id),
        )

    def put_notification(
        self, account: str, user: str, text: str, event_id: str, entity: str, record_id: str
    ) -> None:
        self._conn.execute(
            "INSERT INTO notifications (account, user, text, event_id, entity, record_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (account, user, text, event_id, entity, record_id),
        )

    def webhook_endpoints(self, account: str) -> list[tuple[str, list[str]]]:
        rows = self._conn.execute(
            "SELECT id, events FROM webhooks WHERE account = ? ORDER BY seq", (account,)
        )
        return [(id, json.loads(events)) for id, events in rows]

    def put_delivery(
        self, id: str, account: str, webhook_id: str, kind: str, payload: str, next_at: str
    ) -> None:
        self._conn.execute(
            "INSERT INTO deliveries (id, account, webhook_id, kind, payload, next_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (id, account, webhook_id, kind, payload, next_at),
        )

    # -- Due items of SLAs (salesbot_core.models.DueItem): the SQL of plugins/due_sql.py.

    def put_due(self, item: DueItem) -> None:
        self._conn.execute(qmark(PUT_DUE), due_params(item))

    def get_due(self, account: str, entity: str, record_id: str) -> DueItem | None:
        row = self._conn.execute(qmark(GET_DUE), (account, entity, record_id)).fetchone()
        return due_item(row) if row else None

    def clear_due(self, account: str, entity: str, record_id: str) -> None:
        self._conn.execute(qmark(CLEAR_DUE), (account, entity, record_id))

    def claim_due(self, now: str, limit: int) -> list[DueItem]:
        # BEGIN IMMEDIATE holds the write lock: no other worker reads these until this
        # transaction, which clears them, ends.
        return [due_item(row) for row in self._conn.execute(qmark(CLAIM_DUE), (now, limit))]


#: SQLite's result codes of a lock held too long by another process: waiting longer may do.
TRANSIENT_CODES = ("SQLITE_BUSY", "SQLITE_LOCKED")


def _store_error(path: str, exc: sqlite3.Error) -> StoreError:
    """A driver error as salesbot reports it: what went wrong with which file."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    kind = TransientStoreError if name.startswith(TRANSIENT_CODES) else StoreError
    hint = ""
    if name.startswith("SQLITE_FULL"):
        hint = " (free disk space, then run again: nothing of the failed event was written)"
    elif name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        hint = " (the file is damaged: restore it from a backup)"
    return kind(f"SQLite store {path!r}: {exc}{hint}")


def _iso(moment: datetime) -> str:
    """UTC ISO 8601 with microseconds: such strings sort as the moments do."""
    return utc_iso(moment)


def _read(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    return conn.execute(sql, params).fetchall()


def _prune(conn: sqlite3.Connection, before: datetime, limit: int) -> int:
    return int(
        conn.execute(
            "DELETE FROM event_payloads WHERE seq IN "
            "(SELECT seq FROM event_payloads WHERE at < ? ORDER BY at LIMIT ?)",
            (_iso(before), limit),
        ).rowcount
    )


def _get_switches(conn: sqlite3.Connection, account: str) -> dict[str, bool]:
    rows = conn.execute("SELECT bot, active FROM bot_switches WHERE account = ?", (account,))
    return {bot: bool(active) for bot, active in rows}


def _get_record(conn: sqlite3.Connection, account: str, entity: str, record_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT data FROM records WHERE account = ? AND entity = ? AND id = ?",
        (account, entity, record_id),
    ).fetchone()
    return json.loads(row[0]) if row else None


class SQLiteStore:
    """A salesbot store in one SQLite file."""

    def __init__(
        self,
        path: str | Path,
        synchronous: str = "FULL",
        readonly: bool = False,
        dry_run: bool = False,
        busy_timeout: int = BUSY_TIMEOUT_MS,
    ):
        """Open (creating if needed) the database at ``path``.

        ``synchronous`` is SQLite's pragma: FULL (the default) survives power loss;
        NORMAL in WAL mode survives a crashed process but may lose the last commits on
        power loss, for more speed. ``readonly`` opens an existing file for reading only
        (SQLite's ``mode=ro``): nothing is created or migrated, and every write fails.
        ``dry_run`` opens an existing file for ``dry_run`` transactions (``mode=rw``:
        nothing is created or migrated, and the ``-wal`` and ``-shm`` files are removed
        again on close), and a missing one as an empty in-memory store. ``busy_timeout``
        is how many milliseconds a statement waits for another process's lock before the
        attempt fails (and the engine tries again).
        """
        self.path = str(path)
        self._busy_timeout = busy_timeout
        self._dry_run_only = dry_run
        self._retention_days = retention_days()
        if readonly:
            self._conn = self._open_readonly()
            return
        if dry_run and self.path != ":memory:":
            if Path(self.path).exists():
                self._conn = self._open_existing("rw")
                return
            path = ":memory:"  # not created: the dry run starts from an empty store
        # isolation_level=None: transactions are begun explicitly (BEGIN IMMEDIATE),
        # never implicitly by the sqlite3 module.
        try:
            self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute(f"PRAGMA synchronous = {synchronous}")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                version = _migrate(self._conn)
                # Idempotent DDL: processes opening the same new file at once all succeed.
                for statement in SCHEMA.split(";"):
                    self._conn.execute(statement)
                _backfill(self._conn, version)
                self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {self.path!r}: {exc}") from None

    def _open_readonly(self) -> sqlite3.Connection:
        """A read-only connection to an existing, current salesbot database."""
        if self.path == ":memory:" or not Path(self.path).is_file():
            raise StoreError(f"no database at {self.path!r}")
        return self._open_existing("ro")

    def _open_existing(self, mode: str) -> sqlite3.Connection:
        """A connection to an existing, current salesbot database, neither created nor
        migrated: SQLite's ``mode=ro`` (every write fails) or ``mode=rw``."""
        how = "read-only" if mode == "ro" else "for a dry run"
        try:
            conn = sqlite3.connect(
                f"{Path(self.path).resolve().as_uri()}?mode={mode}",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout}")
            (version,) = conn.execute("PRAGMA user_version").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {self.path!r} {how}: {exc}") from None
        if version == 0:
            conn.close()
            raise StoreError(f"no salesbot database at {self.path!r}: the file has no salesbot tables")
        if version < SCHEMA_VERSION:
            # Its tables lack what this salesbot reads (the outcome index of explain);
            # upgrading is a write, which a read-only command must not do.
            conn.close()
            raise StoreError(
                f"the database at {self.path!r} is from an older salesbot (schema version "
                f"{version}, now {SCHEMA_VERSION}): open it once for writing to upgrade it, "
                "e.g. with `salesbot run` on an empty events file"
            )
        return conn

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        """Driver errors leave as ``StoreError`` naming the file (a full disk, a damaged
        file), or ``TransientStoreError`` when another process held the lock too long."""
        try:
            yield
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from exc

    @contextmanager
    def transaction(self, rollback: bool = False) -> Iterator[SQLiteTransaction]:
        """``Store.transaction``; with ``rollback``, ``Store.dry_run``."""
        if self._dry_run_only and not rollback:
            raise StoreError(f"SQLite store {self.path!r} is opened for dry runs only: it takes no writes")
        with self._mapped():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield SQLiteTransaction(self._conn, self._retention_days)
            except BaseException:
                # SQLite has already rolled back on some errors (a full disk): only roll
                # back what is still open, so the original error is the one reported.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("ROLLBACK" if rollback else "COMMIT")

    def dry_run(self) -> AbstractContextManager[SQLiteTransaction]:
        return self.transaction(rollback=True)

    def get_record(self, account: str, entity: str, record_id: str) -> dict[str, Any] | None:
        with self._mapped():
            return _get_record(self._conn, account, entity, record_id)

    def outcomes(self, account: str, entity: str, record_id: str) -> Iterator[Outcome]:
        with self._mapped():
            rows = self._conn.execute(
                "SELECT o.outcome FROM outcome_records r JOIN outcomes o ON o.seq = r.seq "
                "WHERE r.account = ? AND r.entity = ? AND r.record_id = ? ORDER BY r.seq",
                (account, entity, record_id),
            ).fetchall()
        return (Outcome.model_validate_json(row[0]) for row in rows)

    def kept_events(
        self, account: str, since: datetime, until: datetime, limit: int, max_bytes: int
    ) -> list[KeptEvent]:
        with self._mapped():
            return read_kept(partial(_read, self._conn), account, since, until, limit, max_bytes)

    def prune_events(self, before: datetime, limit: int = PRUNE_BATCH) -> int:
        with self.transaction():
            return _prune(self._conn, before, limit)

    def assignment_counts(self) -> list[tuple[str, str, str, int]]:
        with self._mapped():
            return self._conn.execute(
                "SELECT account, bot, user, COUNT(*) FROM assignments "
                "GROUP BY account, bot, user ORDER BY account, bot, user"
            ).fetchall()

    def notes(self, account: str, entity: str, record_id: str) -> list[Note]:
        with self._mapped():
            rows = self._conn.execute(
                "SELECT text, bot, event_id, created_at FROM notes "
                "WHERE account = ? AND entity = ? AND record_id = ? ORDER BY seq",
                (account, entity, record_id),
            ).fetchall()
        return [Note(text=t, bot=b, event_id=e, created_at=c) for t, b, e, c in rows]

    def pending_notifications(
        self, account: str | None = None, limit: int = 100, after: int | None = None
    ) -> list[Notification]:
        with self._mapped():
            cursor = self._conn.cursor()
            cursor.row_factory = sqlite3.Row
            rows = cursor.execute(
                "SELECT * FROM notifications WHERE delivered_at IS NULL "
                "AND (? IS NULL OR account = ?) AND id > ? ORDER BY id LIMIT ?",
                (account, account, after or 0, limit),
            ).fetchall()
        return [Notification(**dict(row)) for row in rows]

    def mark_delivered(self, account: str, ids: list[int]) -> list[int]:
        with self.transaction():
            return [
                i
                for i in dict.fromkeys(ids)
                if self._conn.execute(
                    "UPDATE notifications SET delivered_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                    "WHERE id = ? AND account = ? AND delivered_at IS NULL",
                    (i, account),
                ).rowcount
            ]

    def set_switch(self, account: str, bot: str, active: bool, by: str | None = None) -> None:
        with self.transaction():
            self._conn.execute(
                "INSERT OR REPLACE INTO bot_switches (account, bot, active, changed_by, changed_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (account, bot, int(active), by, _iso(datetime.now(UTC))),
            )

    def switches(self, account: str) -> dict[str, Switch]:
        with self._mapped():
            rows = self._conn.execute(
                "SELECT bot, active, changed_by, changed_at FROM bot_switches WHERE account = ?", (account,)
            ).fetchall()
        return {bot: Switch(bool(active), by, at) for bot, active, by, at in rows}

    def distribution(self, account: str, bot: str, since: str | None = None) -> dict[str, int]:
        with self._mapped():
            rows = self._conn.execute(page_queries.DISTRIBUTION, (account, bot, since or "")).fetchall()
        return {user: int(n) for user, n in rows}

    def recent_outcomes(
        self, account: str, limit: int = 50, before: int | None = None, bot: str | None = None
    ) -> list[tuple[int, Outcome]]:
        with self._mapped():
            rows = self._conn.execute(*page_queries.recent_params(account, limit, before, bot)).fetchall()
        return [(int(seq), Outcome.model_validate_json(text)) for seq, text in rows]

    def activity(self, account: str, since: str) -> Activity:
        with self._mapped():
            row = self._conn.execute(
                page_queries.ACTIVITY, page_queries.activity_params(account, since)
            ).fetchone()
        return Activity(*map(int, row))

    def get_switches(self, account: str) -> dict[str, bool]:
        with self._mapped():
            return _get_switches(self._conn, account)

    def add_token(self, account: str, name: str, hash: str, scopes: list[str]) -> bool:
        with self.transaction():
            if self._conn.execute(
                "SELECT 1 FROM tokens WHERE account = ? AND name = ?", (account, name)
            ).fetchone():
                return False
            self._conn.execute(
                "INSERT INTO tokens (account, name, hash, scopes) VALUES (?, ?, ?, ?)",
                (account, name, hash, json.dumps(scopes)),
            )
            return True

    def token(self, hash: str) -> Token | None:
        with self._mapped():
            row = self._conn.execute(f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?", (hash,)).fetchone()
        return _token(row) if row else None

    def tokens(self, account: str | None = None) -> list[Token]:
        with self._mapped():
            rows = self._conn.execute(
                f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE ? IS NULL OR account = ? ORDER BY account, name",
                (account, account),
            ).fetchall()
        return [_token(row) for row in rows]

    def revoke_token(self, account: str, name: str) -> bool:
        with self.transaction():
            return bool(
                self._conn.execute(
                    "UPDATE tokens SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                    "WHERE account = ? AND name = ? AND revoked_at IS NULL",
                    (account, name),
                ).rowcount
            )

    def add_signing_secret(self, account: str, secret: str) -> None:
        with self.transaction():
            self._conn.execute(
                "INSERT INTO signing_secrets (account, secret) VALUES (?, ?)", (account, secret)
            )

    def signing_secrets(self, account: str) -> list[str]:
        with self._mapped():
            rows = self._conn.execute(
                "SELECT secret FROM signing_secrets WHERE account = ? ORDER BY seq DESC", (account,)
            ).fetchall()
        return [secret for (secret,) in rows]

    def remove_signing_secrets(self, account: str, keep_newest: bool = False) -> int:
        with self.transaction():
            return int(
                self._conn.execute(
                    "DELETE FROM signing_secrets WHERE account = ? AND (? = 0 OR seq < "
                    "(SELECT MAX(seq) FROM signing_secrets WHERE account = ?))",
                    (account, int(keep_newest), account),
                ).rowcount
            )

    def add_webhook(self, webhook: Webhook) -> None:
        with self.transaction():
            self._conn.execute(
                "INSERT INTO webhooks (id, account, url, events, secret) VALUES (?, ?, ?, ?, ?)",
                (webhook.id, webhook.account, webhook.url, json.dumps(webhook.events), webhook.secret),
            )

    def webhooks(self, account: str | None = None) -> list[Webhook]:
        with self._mapped():
            rows = self._conn.execute(
                f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE ? IS NULL OR account = ? ORDER BY seq",
                (account, account),
            ).fetchall()
        return [_webhook(row) for row in rows]

    def remove_webhook(self, account: str, id: str) -> bool:
        with self.transaction():
            gone = self._conn.execute(
                "DELETE FROM webhooks WHERE account = ? AND id = ?", (account, id)
            ).rowcount
            if gone:
                self._conn.execute("DELETE FROM deliveries WHERE webhook_id = ?", (id,))
            return bool(gone)

    def claim_deliveries(self, now: str, lease_until: str, limit: int) -> list[Delivery]:
        # BEGIN IMMEDIATE holds the write lock from the read to the update: no other
        # worker (thread or process) claims between them.
        with self.transaction():
            cursor = self._conn.cursor()
            cursor.row_factory = sqlite3.Row
            rows = cursor.execute(
                f"SELECT {DELIVERY_COLUMNS}, w.url, w.secret FROM deliveries d "
                "JOIN webhooks w ON w.id = d.webhook_id "
                "WHERE d.status = 'pending' AND d.next_at <= ? ORDER BY d.next_at, d.seq LIMIT ?",
                (now, limit),
            ).fetchall()
            claimed = []
            for row in rows:
                self._conn.execute(
                    "UPDATE deliveries SET attempts = attempts + 1, next_at = ? WHERE id = ?",
                    (lease_until, row["id"]),
                )
                claimed.append(
                    Delivery(**(dict(row) | {"attempts": row["attempts"] + 1, "next_at": lease_until}))
                )
            return claimed

    def finish_delivery(self, id: str, attempts: int, status: str, next_at: str, error: str | None) -> bool:
        with self.transaction():
            return bool(
                self._conn.execute(
                    "UPDATE deliveries SET status = ?, next_at = ?, last_error = ?, delivered_at = "
                    "CASE WHEN ? = 'delivered' THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now') END "
                    "WHERE id = ? AND attempts = ? AND status = 'pending'",
                    (status, next_at, error, status, id, attempts),
                ).rowcount
            )

    def deliveries(self, account: str, status: str | None = None, limit: int = 100) -> list[Delivery]:
        with self._mapped():
            cursor = self._conn.cursor()
            cursor.row_factory = sqlite3.Row
            rows = cursor.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.account = ? "
                "AND (? IS NULL OR d.status = ?) ORDER BY d.seq DESC LIMIT ?",
                (account, status, status, limit),
            ).fetchall()
        return [Delivery(**dict(row)) for row in rows]

    def replay_delivery(self, account: str, id: str, now: str) -> bool:
        with self.transaction():
            return bool(
                self._conn.execute(
                    "UPDATE deliveries SET status = 'pending', attempts = 0, next_at = ?, "
                    "last_error = NULL, delivered_at = NULL "
                    "WHERE account = ? AND id = ? AND status <> 'pending'",
                    (now, account, id),
                ).rowcount
            )

    def open_records(self, account: str, user: str) -> list[tuple[str, str]]:
        with self._mapped():
            rows = self._conn.execute(
                "SELECT entity, record_id FROM record_owners WHERE account = ? AND user = ? AND open = 1 "
                "ORDER BY entity, record_id",
                (account, user),
            )
            return [(entity, record_id) for entity, record_id in rows]

    def due_items(self, account: str) -> list[DueItem]:
        with self._mapped():
            return [due_item(row) for row in self._conn.execute(qmark(LIST_DUE), (account,))]

    def close(self) -> None:
        self._conn.close()


WEBHOOK_COLUMNS = "id, account, url, events, secret, created_at"
DELIVERY_COLUMNS = (
    "d.id, d.account, d.webhook_id, d.kind, d.payload, d.attempts, d.status, d.next_at, "
    "d.last_error, d.created_at, d.delivered_at"
)


def _webhook(row: tuple[Any, ...]) -> Webhook:
    id, account, url, events, secret, created_at = row
    return Webhook(
        id=id, account=account, url=url, events=json.loads(events), secret=secret, created_at=created_at
    )


TOKEN_COLUMNS = "account, name, hash, scopes, created_at, revoked_at"


def _token(row: tuple[Any, ...]) -> Token:
    account, name, hash, scopes, created_at, revoked_at = row
    return Token(
        account=account,
        name=name,
        hash=hash,
        scopes=json.loads(scopes),
        created_at=created_at,
        revoked_at=revoked_at,
    )


SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA", "OFF")


@hookimpl(trylast=True)
def salesbot_open_store(url: str, readonly: bool, dry_run: bool = False) -> SQLiteStore | None:
    """Handle plain paths and ``sqlite:///path[?synchronous=NORMAL][&busy_timeout=MS]`` URLs.

    Other URLs are left to other store plugins.
    """
    if not url.startswith("sqlite:///"):
        return None if "://" in url else SQLiteStore(url, readonly=readonly, dry_run=dry_run)
    path, _, query = url[len("sqlite:///") :].partition("?")
    options = parse_qs(query)
    unknown = set(options) - {"synchronous", "busy_timeout"}
    if unknown:
        raise StoreError(f"{url!r}: unknown option {sorted(unknown)[0]!r}; known: synchronous, busy_timeout")
    synchronous = options.get("synchronous", ["FULL"])[-1].upper()
    if synchronous not in SYNCHRONOUS:
        raise StoreError(f"{url!r}: synchronous must be one of {', '.join(SYNCHRONOUS)}")
    busy = options.get("busy_timeout", [str(BUSY_TIMEOUT_MS)])[-1]
    if not busy.isdigit() or len(busy) > 9:
        raise StoreError(f"{url!r}: busy_timeout must be a whole number of milliseconds")
    return SQLiteStore(path, synchronous, readonly=readonly, dry_run=dry_run, busy_timeout=int(busy))
