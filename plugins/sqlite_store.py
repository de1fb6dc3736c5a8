"""The embedded default store: one SQLite file in WAL mode, stdlib ``sqlite3`` only.

Each event is one ``BEGIN IMMEDIATE`` transaction: the write lock is taken before the
strategy state is read, so processes sharing the file never both read the same rotation
position (no lost update), and a busy timeout makes them queue instead of failing.

The statements are those of ``salesbot_plugins.sql``, the schema that of
``salesbot_plugins.migrations`` (its version kept as SQLite's ``user_version``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs

from salesbot_core import StoreError, hookimpl
from salesbot_core.errors import TransientStoreError
from salesbot_core.store import retention_days

from .migrations import READABLE_VERSION, SCHEMA_VERSION, check_compatible, upgrade
from .sql import Dialect, Session, SqlStore, SqlTransaction

__all__ = ["BUSY_TIMEOUT_MS", "SCHEMA_VERSION", "SQLiteStore", "salesbot_open_store"]

DIALECT = Dialect(
    name="SQLite",
    param="?",
    serial="INTEGER PRIMARY KEY",
    serial_ref="INTEGER",
    boolean="INTEGER",
    now="(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
    keyed=" WITHOUT ROWID",
    locks=False,
    pipelined=False,
    last_seq=None,
)

BUSY_TIMEOUT_MS = 30_000


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    """Create or upgrade the tables inside the opening transaction. A file from before
    versions were recorded (``user_version`` 0) runs every step: each skips what exists.
    A file a newer salesbot migrated is refused, or used as it is (``check_compatible``)."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    check_compatible(Session(conn, DIALECT), version, path)
    if version < SCHEMA_VERSION:
        upgrade(Session(conn, DIALECT), int(version))
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def __getattr__(name: str) -> Any:
    """``SCHEMA``: the DDL of a new database as one ``;``-separated text, for programs
    that build the tables themselves (the bench's baseline)."""
    if name != "SCHEMA":
        raise AttributeError(name)
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        _migrate(conn, ":memory:")
        rows = conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid").fetchall()
    finally:
        conn.close()
    return ";\n".join(
        sql.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS").replace(
            "CREATE INDEX", "CREATE INDEX IF NOT EXISTS"
        )
        for (sql,) in rows
    )


def _identity(path: str) -> tuple[int, int] | None:
    """The file a path names, as (device, inode); None in memory."""
    if path == ":memory:":
        return None
    found = os.stat(path)
    return found.st_dev, found.st_ino


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


#: WAL pages after which a commit copies them into the database file: SQLite's default,
#: about 4 MiB. 4,000 pages copied a quarter as often (15-20% less time per event) but let
#: the WAL grow to 16 MiB, and a disk that filled up then stayed full: copying the WAL in
#: grows the database file, and the room for that was what the WAL held. On a 16 MiB
#: volume the store took no more events after its first 182 (a 200 KB database).
WAL_CHECKPOINT_PAGES = 1000
#: Bytes a WAL file is cut back to once it has been copied in (``journal_size_limit``):
#: SQLite reuses the file from its start, and left alone it keeps the size of its largest
#: transaction (a migration, a long batch) for as long as the store is open.
WAL_SIZE_LIMIT = 4 * 1024 * 1024


T = TypeVar("T")


class _Begun(Generic[T]):
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` for a dry run or on an error)
    under the store's lock, driver errors mapped (``_store_error``). A class, not a
    generator-based context manager: entered once per event, it costs less."""

    __slots__ = ("_rollback", "_store", "_value")

    def __init__(self, store: SQLiteStore, rollback: bool, value: T):
        self._store = store
        self._rollback = rollback
        self._value = value

    def __enter__(self) -> T:
        store = self._store
        store._lock.acquire()
        try:
            store._conn.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            store._lock.release()
            if isinstance(exc, sqlite3.Error):
                raise _store_error(store.path, exc) from exc
            raise
        return self._value

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        store = self._store
        conn = store._conn
        try:
            if kind is None:
                conn.execute("ROLLBACK" if self._rollback else "COMMIT")
            elif conn.in_transaction:
                # SQLite has already rolled back on some errors (a full disk): only roll
                # back what is still open, so the original error is the one reported.
                conn.execute("ROLLBACK")
        except sqlite3.Error as failed:
            raise _store_error(store.path, failed) from failed
        finally:
            store._lock.release()
        if isinstance(exc, sqlite3.Error):
            raise _store_error(store.path, exc) from exc


class SQLiteStore(SqlStore):
    """A salesbot store in one SQLite file."""

    dialect = DIALECT

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
        is how long (ms) a write waits for another process's write lock before it fails.
        """
        self.path = str(path)
        # One connection, shared by the threads of a host app that share one engine: each
        # read and each transaction holds it alone (SQLite takes one writer at a time in
        # any case; without this, a second thread's BEGIN met the first's transaction).
        self._lock = threading.RLock()
        self._busy_timeout = busy_timeout
        self._dry_run_only = dry_run
        self._writable = not (readonly or dry_run)
        self._retention_days = retention_days()
        # Which file the connection holds, to tell when the path names another one (see
        # ``check``); None in memory.
        self._opened: tuple[int, int] | None = None
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
            try:
                self._set_up(synchronous)
                self._opened = _identity(str(path))
            except BaseException:
                self._conn.close()  # a refused file keeps no connection (nor -wal file)
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {self.path!r}: {exc}") from None

    def _set_up(self, synchronous: str) -> None:
        """Set the connection's pragmas, and create or upgrade the tables."""
        self._conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute(f"PRAGMA synchronous = {synchronous}")
        self._conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
        self._conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            # Under the write lock: processes opening the same new file at once migrate
            # it once, the others find it current.
            _migrate(self._conn, self.path)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _open_readonly(self) -> sqlite3.Connection:
        """A read-only connection to an existing, current salesbot database."""
        if self.path == ":memory:" or not Path(self.path).is_file():
            raise StoreError(f"no database at {self.path!r}")
        # A mode=ro connection leaves the -wal and -shm files it had to create: SQLite
        # removes them when the last connection closes, which a read-only one may not
        # do. Where the file and its folder can be written, the connection is mode=rw
        # and query_only refuses every write instead, so they go on close.
        folder = Path(self.path).resolve().parent
        writable = os.access(self.path, os.W_OK) and os.access(folder, os.W_OK)
        conn = self._open_existing("rw" if writable else "ro", "read-only")
        conn.execute("PRAGMA query_only = ON")
        return conn

    def _open_existing(self, mode: str, how: str = "for a dry run") -> sqlite3.Connection:
        """A connection to an existing, current salesbot database, neither created nor
        migrated: SQLite's ``mode=ro`` (every write fails) or ``mode=rw``."""
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
        if version < READABLE_VERSION:
            # Its tables lack what this salesbot reads (the outcome index of explain);
            # upgrading is a write, which a read-only command must not do.
            conn.close()
            raise StoreError(
                f"the database at {self.path!r} is from an older salesbot (schema version "
                f"{version}, now {SCHEMA_VERSION}): open it once for writing to upgrade it, "
                "e.g. with `salesbot run` on an empty events file"
            )
        try:
            check_compatible(Session(conn, DIALECT), version, self.path)
            self._opened = _identity(self.path)
        except (StoreError, OSError):
            conn.close()
            raise
        return conn

    def check(self) -> None:
        """``Store.check``: the file answers, and its path still names the file opened.
        Why the path: an open connection keeps reading and writing a file that was moved
        or deleted (or whose folder became unreadable), where no other process and no
        restart will ever find what it commits."""
        super().check()
        if self._opened is None:
            return
        try:
            now = _identity(self.path)
        except OSError as exc:
            raise StoreError(f"SQLite store {self.path!r}: the file cannot be reached: {exc}") from None
        if now != self._opened:
            raise StoreError(
                f"SQLite store {self.path!r}: the path names another file than the one opened "
                "(moved, deleted or replaced): restart salesbot on the right file"
            )

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        """Driver errors leave as ``StoreError`` naming the file (a full disk, a damaged
        file), or ``TransientStoreError`` when another process held the lock too long."""
        try:
            yield
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from exc

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._lock, self._mapped():
            yield Session(self._conn, DIALECT)

    def _write(self) -> AbstractContextManager[Session]:
        return self._begin(False, Session(self._conn, DIALECT))

    def transaction(self, rollback: bool = False) -> AbstractContextManager[SqlTransaction]:
        """``Store.transaction``; with ``rollback``, ``Store.dry_run``."""
        return self._begin(rollback, SqlTransaction(Session(self._conn, DIALECT), self._retention_days))

    def _begin(self, rollback: bool, value: T) -> _Begun[T]:
        if self._dry_run_only and not rollback:
            raise StoreError(f"SQLite store {self.path!r} is opened for dry runs only: it takes no writes")
        return _Begun(self, rollback, value)

    def dry_run(self) -> AbstractContextManager[SqlTransaction]:
        return self.transaction(rollback=True)

    def close(self) -> None:
        """Copy the WAL into the database and empty it, then close. SQLite does the same
        when the last connection to the file closes; with others open (a reader, another
        worker) the WAL would stay at its size. Best effort: a checkpoint that would wait
        (another process writing or reading) or fails (a full disk) is left to the next."""
        if self._writable:
            with suppress(sqlite3.Error):
                self._conn.execute("PRAGMA busy_timeout = 0")
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.close()


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
