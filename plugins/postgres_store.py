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
  connection, a server shutting down or starting up, or a write that reached a standby
  becomes a ``TransientStoreError``, and the engine runs the event again (with backoff,
  see ``salesbot_core.retrying``); the pool is checked then, so the dead connections of
  a restart are replaced, and those on a standby dropped.

Failover: the URL may name several hosts, libpq's way
(``postgresql://h1:5432,h2:5432/crm?target_session_attrs=read-write``); each new
connection tries them in turn and keeps the first that is a primary. After the primary is
lost and a standby promoted, the retries above reconnect to it. A commit whose answer was
lost with the server is retried like any other transaction: if it did commit (and
reached the promoted standby) the event is found by its id and its first outcome
answered; if not, it is decided then, once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any

from salesbot_core import StoreError, hookimpl
from salesbot_core.errors import TransientStoreError
from salesbot_core.store import retention_days

from .migrations import READABLE_VERSION, SCHEMA_VERSION, check_compatible, upgrade
from .sql import Dialect, Session, SqlStore, SqlTransaction

DIALECT = Dialect(
    name="PostgreSQL",
    param="%s",
    serial="BIGSERIAL PRIMARY KEY",
    serial_ref="BIGINT",
    boolean="BOOLEAN",
    now="to_char(now() AT TIME ZONE 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    keyed="",
    locks=True,
    pipelined=True,
    last_seq="currval('outcomes_seq_seq')",
)

#: Seconds to wait for a pooled connection, and to keep trying to reconnect after the
#: server went away, before giving up (then the engine's retries take over). Short: the
#: wait is per attempt, and an event tries 12 times (``salesbot_core.retrying``). With
#: 30 s, an event went on for 340 s while no primary was there, and a client waited all
#: that time for its 503; with 2 s it is about 40 s. A worker's engine runs one call at
#: a time, so a pooled connection is never long awaited while the server is up.
POOL_TIMEOUT = 2
RECONNECT_TIMEOUT = 300
#: SQLSTATE read_only_sql_transaction: a write reached a standby (or a read-only session).
READ_ONLY = "25006"
#: Any constant: the advisory lock that serialises schema creation between workers.
SCHEMA_LOCK = 7_264_011
#: The last version PostgreSQL numbered on its own history, one behind the shared one
#: (see ``salesbot_plugins.migrations``).
OWN_HISTORY_UNTIL = 6


def _schema_version(conn: Any) -> int | None:
    """The database's version on the shared history, None when it has no salesbot tables."""
    exists = conn.execute("SELECT to_regclass('salesbot_schema') IS NOT NULL").fetchone()[0]
    row = conn.execute("SELECT MAX(version) FROM salesbot_schema").fetchone() if exists else None
    if not row or row[0] is None:
        return None
    version = int(row[0])
    return version + 1 if version <= OWN_HISTORY_UNTIL else version


def _usable_version(conn: Any, url: str) -> int | None:
    """``_schema_version``, refusing a database a newer salesbot migrated beyond what this
    one can run on (``check_compatible``)."""
    version = _schema_version(conn)
    if version is not None:
        check_compatible(Session(conn, DIALECT), version, _safe(url))
    return version


def _create_schema(conn: Any, url: str) -> None:
    """Create or upgrade the tables, under the schema lock."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
    version = _usable_version(conn, url)
    if version is not None and version >= SCHEMA_VERSION:
        # Nothing to do, and DDL would lock tables that workers already started are
        # writing to (an ALTER TABLE waiting on them, them on an index build: a deadlock).
        return
    upgrade(Session(conn, DIALECT), version or 0)
    conn.execute("CREATE TABLE IF NOT EXISTS salesbot_schema (version INTEGER NOT NULL)")
    conn.execute("DELETE FROM salesbot_schema")
    conn.execute("INSERT INTO salesbot_schema (version) VALUES (%s)", (SCHEMA_VERSION,))


def _check_readable(conn: Any, url: str) -> None:
    """A read-only store needs the current tables: it must not create or upgrade them."""
    version = _usable_version(conn, url)
    if version is None:
        raise StoreError(f"no salesbot database at {_safe(url)!r}: it has no salesbot tables")
    if version < READABLE_VERSION:
        raise StoreError(
            f"the database at {_safe(url)!r} is from an older salesbot (schema version {version}, "
            f"now {SCHEMA_VERSION}): open it once for writing to upgrade it"
        )


def _read_only(conn: Any) -> None:
    """Make a new pooled session read-only: any write in it fails."""
    conn.execute("SET default_transaction_read_only = on")
    conn.commit()


class PostgresStore(SqlStore):
    """A salesbot store in a PostgreSQL database, shared by any number of workers."""

    dialect = DIALECT

    def __init__(self, url: str, max_connections: int = 4, readonly: bool = False, dry_run: bool = False):
        """Connect to ``url`` and create or upgrade the schema.

        ``readonly`` creates and upgrades nothing, and makes every session read-only
        (``default_transaction_read_only``), so any write fails. ``dry_run`` creates and
        upgrades nothing either and makes every session read-only but ``dry_run``
        transactions; a database without the current tables gets them inside each dry
        run (rolled back with it). Raises ``StoreError`` when psycopg is not installed or
        the server refuses the connection; ``TransientStoreError`` when it can't be
        reached or is starting up or shutting down (``open_store`` tries again).
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
        self._writable = not (readonly or dry_run)
        self._retention_days = retention_days()
        self._dry_run_schema = False
        try:
            # One direct connection first: an unreachable server fails here, not later in
            # the pool; it also creates the schema, once, under an advisory lock.
            with psycopg.connect(url) as conn:
                if readonly:
                    _check_readable(conn, url)
                elif dry_run:
                    version = _usable_version(conn, url)
                    self._dry_run_schema = version is None or version < SCHEMA_VERSION
                else:
                    _create_schema(conn, url)
        except psycopg.Error as exc:
            # A server restarting is transient (the caller tries again), a wrong password
            # or a missing database is not.
            kind = TransientStoreError if _transient(exc, psycopg) else StoreError
            raise kind(f"cannot open PostgreSQL store {_safe(url)!r}: {exc}") from None
        # No check when a connection is taken (a round trip per event): a connection a
        # server restart killed fails its event, which is retried (TransientStoreError),
        # and the pool is checked then, so the retry gets a live one (see _connection).
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            open=True,
            timeout=POOL_TIMEOUT,
            reconnect_timeout=RECONNECT_TIMEOUT,
            configure=_read_only if readonly or dry_run else None,
            kwargs={"autocommit": True},
        )

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A pooled connection (in autocommit mode); any driver error leaves as a
        ``StoreError``, a passing one (a lost connection, a server restarting, a
        deadlock) as a ``TransientStoreError``."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except self._psycopg.Error as exc:
            kind = TransientStoreError if _transient(exc, self._psycopg, self._writable) else StoreError
            state = getattr(exc, "sqlstate", None) or "08"
            if kind is TransientStoreError and state == READ_ONLY:
                # Connected to a standby (a host name that now points at one, a URL without
                # target_session_attrs): every pooled session likely is; replace them all,
                # and new ones look for the primary again.
                self._pool.drain()
            elif kind is TransientStoreError and state[:2] != "40":
                # The connection broke (a restart, a failover, a network cut): the idle
                # ones in the pool likely did too; drop them now rather than fail one
                # retry on each.
                self._pool.check()
            message = str(exc).strip() or type(exc).__name__
            raise kind(f"PostgreSQL store {_safe(self.url)!r}: {message}") from exc

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._connection() as conn:  # autocommit: each read is its own transaction
            yield Session(conn, DIALECT)

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with self._connection() as conn, conn.transaction():
            yield Session(conn, DIALECT)

    def transaction(self) -> AbstractContextManager[SqlTransaction]:
        return self._pipelined(rollback=False)

    def dry_run(self) -> AbstractContextManager[SqlTransaction]:
        return self._pipelined(rollback=True)

    @contextmanager
    def _pipelined(self, rollback: bool) -> Iterator[SqlTransaction]:
        """One event's transaction in pipeline mode. The connection is in autocommit mode,
        so the driver sends no ``BEGIN`` of its own and waits for it: ``BEGIN`` is queued
        with the first read, ``COMMIT`` (or ``ROLLBACK``) with the last writes."""
        with self._connection() as conn:
            try:
                with conn.pipeline():
                    conn.execute("BEGIN")
                    if rollback:
                        # Writable even in a read-only session: it is never committed.
                        conn.execute("SET TRANSACTION READ WRITE")
                        if self._dry_run_schema:
                            _create_schema(conn, self.url)
                    yield SqlTransaction(Session(conn, DIALECT), self._retention_days)
                    conn.execute("ROLLBACK" if rollback else "COMMIT")
            except BaseException:
                if conn.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE:
                    with suppress(self._psycopg.Error):  # a broken connection: the first error counts
                        conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._pool.close()


def _transient(exc: Exception, psycopg: Any, writable: bool = True) -> bool:
    """Whether running the transaction again may succeed: the server aborted it to resolve
    a race (class 40: deadlock, serialization failure), the connection broke (class 08,
    or no SQLSTATE at all: the client lost the server, no host of a multi-host URL is a
    primary yet, the pool timed out waiting), the server is shutting down or starting up
    (57P01-57P03), or a writing store reached a standby (25006: a write in a read-only
    transaction; during a failover, until the standby is promoted or the connection
    finds the new primary). A read-only store never writes: there, 25006 is a bug."""
    state = getattr(exc, "sqlstate", None)
    if state is None:
        return isinstance(exc, psycopg.OperationalError)
    if state == READ_ONLY:
        return writable
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
