"""The due items of SLAs (``salesbot_core.models.DueItem``): the SQL both built-in stores run.

One portable text for SQLite and PostgreSQL, written with ``%s`` placeholders (the SQLite
store swaps them for ``?``); only taking due items differs: PostgreSQL skips the rows
another worker has locked (``FOR UPDATE SKIP LOCKED``), SQLite needs nothing, its write
lock (``BEGIN IMMEDIATE``) already lets one worker at a time in.
"""

from __future__ import annotations

from typing import Any

from salesbot_core.models import DueItem

#: Added in SQLite schema version 8, PostgreSQL 7: created empty, no older data to carry.
DUE_SCHEMA = """
CREATE TABLE IF NOT EXISTS due_items (
    account TEXT NOT NULL, entity TEXT NOT NULL, record_id TEXT NOT NULL,
    key TEXT NOT NULL, bot TEXT NOT NULL, owner TEXT NOT NULL,
    assigned_at TEXT NOT NULL, due_at TEXT NOT NULL,
    reassignments INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, entity, record_id)
);
CREATE INDEX IF NOT EXISTS due_items_due ON due_items (due_at);
"""

COLUMNS = "key, account, entity, record_id, bot, owner, assigned_at, due_at, reassignments"

#: One item per record: a new assignment replaces the one before.
PUT_DUE = (
    f"INSERT INTO due_items ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (account, entity, record_id) DO UPDATE SET key = excluded.key, bot = excluded.bot, "
    "owner = excluded.owner, assigned_at = excluded.assigned_at, due_at = excluded.due_at, "
    "reassignments = excluded.reassignments"
)
GET_DUE = f"SELECT {COLUMNS} FROM due_items WHERE account = %s AND entity = %s AND record_id = %s"
CLEAR_DUE = "DELETE FROM due_items WHERE account = %s AND entity = %s AND record_id = %s"
#: Oldest due first; the caller clears each item it takes in the same transaction.
CLAIM_DUE = (
    f"SELECT {COLUMNS} FROM due_items WHERE due_at <= %s ORDER BY due_at, account, entity, record_id LIMIT %s"
)
LIST_DUE = f"SELECT {COLUMNS} FROM due_items WHERE account = %s ORDER BY due_at, entity, record_id"


def due_params(item: DueItem) -> tuple[Any, ...]:
    """``item`` as the parameters of ``PUT_DUE``."""
    return tuple(item.model_dump()[name] for name in COLUMNS.split(", "))


def due_item(row: Any) -> DueItem:
    """A row of ``COLUMNS`` as a ``DueItem``."""
    return DueItem(**dict(zip(COLUMNS.split(", "), row, strict=True)))


def qmark(sql: str) -> str:
    """A statement with SQLite's placeholders (the texts above hold no literal ``%``)."""
    return sql.replace("%s", "?")
