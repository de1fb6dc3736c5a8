"""The baseline defined by its result: the smallest raw ``sqlite3`` router giving, per
event, what a user of salesbot can observe.

Written as an engineer would who never saw salesbot's schema: one row per fact, no JSON.
For each event it keeps

- the processed event id, and what a redelivery must answer (its ``audit`` row, which is
  also the idempotency key);
- each record's owner, tags and link (a ``deals`` and a ``companies`` row, a ``tags``
  row per tag), as ``Engine.record`` returns them;
- the wall notes and the outbox rows;
- the rotation state, as the next pick needs it (the last user picked);
- an audit row that answers ``explain`` for the deal and the company it changed: the
  event, the owners before, the pick and the previous pick, the company's owner before.
  The words of ``explain`` are rebuilt from it, the bot's settings and the note and
  outbox rows of the event (``explain``).

What it leaves out, because no observable result of these events needs it: payload
fingerprints (a redelivery with another payload is answered like any redelivery), bot
switches, conditions, eligibility, plugins, and an audit that keeps the bot's settings of
the time (``explain`` here words old events with today's settings).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .raw_sqlite import BOT_PREFIX, Router

SCHEMA = """
CREATE TABLE IF NOT EXISTS deals (
    account TEXT, id TEXT, title TEXT, process TEXT, value REAL, company TEXT,
    owner TEXT, PRIMARY KEY (account, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS companies (
    account TEXT, id TEXT, name TEXT, owner TEXT, PRIMARY KEY (account, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (
    account TEXT, entity TEXT, record_id TEXT, tag TEXT, PRIMARY KEY (account, entity, record_id, tag)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rotation (
    account TEXT, bot TEXT, last TEXT, PRIMARY KEY (account, bot)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, account TEXT, event_id TEXT, kind TEXT, deal TEXT,
    owner_before TEXT, owner TEXT, last TEXT, company TEXT, company_owner_before TEXT,
    UNIQUE (account, event_id)
);
CREATE INDEX IF NOT EXISTS audit_deal ON audit (account, deal);
CREATE INDEX IF NOT EXISTS audit_company ON audit (account, company);
CREATE TABLE IF NOT EXISTS notes (
    seq INTEGER PRIMARY KEY, account TEXT, entity TEXT, record_id TEXT, text TEXT, event_id TEXT
);
CREATE INDEX IF NOT EXISTS notes_record ON notes (account, entity, record_id);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY, account TEXT, user TEXT, text TEXT, event_id TEXT,
    entity TEXT, record_id TEXT, delivered_at TEXT
)
"""


def connect(path: Path | str, synchronous: str) -> sqlite3.Connection:
    """Open (creating) the baseline's own database: WAL, the given ``synchronous``."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.executescript(SCHEMA)
    return conn


def seed(
    conn: sqlite3.Connection, deals: Iterable[dict[str, Any]], companies: Iterable[dict[str, Any]]
) -> None:
    """Store deals and companies (``owners`` of one user) as the CRM had them, untimed."""
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO companies (account, id, name, owner) VALUES ('default', ?, ?, ?)",
        [(c["id"], c.get("name", ""), c["owners"][0]) for c in companies],
    )
    conn.executemany(
        "INSERT INTO deals (account, id, title, process, value, company, owner) "
        "VALUES ('default', ?, ?, ?, ?, ?, ?)",
        [
            (d["id"], d.get("title", ""), d.get("process"), d.get("value"), d.get("company"), d["owners"][0])
            for d in deals
        ],
    )
    conn.execute("COMMIT")


class ResultRouter(Router):
    """Routes deal events with one round-robin bot: the result of ``Engine.handle``.
    ``handle`` returns the first answer (the audit row as a dict) for a redelivery, None
    for a new event."""

    def route(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """Decide and write one event inside the open transaction."""
        execute, bot = self.conn.execute, self.bot
        account, event_id, kind = event.get("account", "default"), event["id"], event["kind"]
        record = event["record"]
        seen = execute(
            "SELECT * FROM audit WHERE account = ? AND event_id = ?", (account, event_id)
        ).fetchone()
        if seen:
            return dict(zip(AUDIT_COLUMNS, seen, strict=True))
        deal_id = record["id"]
        if kind == "list":  # the list operation's deal is stored: its link and title are read
            company, title = execute(
                "SELECT company, title FROM deals WHERE account = ? AND id = ?", (account, deal_id)
            ).fetchone()
        else:
            company, title = record.get("company"), record.get("title", "")
        row = execute("SELECT last FROM rotation WHERE account = ? AND bot = ?", (account, bot.id)).fetchone()
        last = row[0] if row else None
        picked = self.pool[(self.pool.index(last) + 1) % len(self.pool) if last in self.pool else 0]
        if kind == "list":
            execute("UPDATE deals SET owner = ? WHERE account = ? AND id = ?", (picked, account, deal_id))
        else:
            execute(
                "INSERT INTO deals (account, id, title, process, value, company, owner) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account, id) DO UPDATE SET "
                "title = excluded.title, process = excluded.process, value = excluded.value, "
                "company = excluded.company, owner = excluded.owner",
                (account, deal_id, title, record.get("process"), record.get("value"),
                 company, picked),
            )  # fmt: skip
        for tag in {*record.get("tags", ()), bot.tag}:
            execute("INSERT OR IGNORE INTO tags VALUES (?, 'deal', ?, ?)", (account, deal_id, tag))
        note = bot.note.format(bot_name=bot.name, owner_name=self.names[picked])
        company_before = None
        if company:
            row = execute(
                "SELECT owner FROM companies WHERE account = ? AND id = ?", (account, company)
            ).fetchone()
            if row is None:
                execute("INSERT INTO companies VALUES (?, ?, '', ?)", (account, company, picked))
            else:
                company_before = row[0]
                if company_before != picked:
                    execute(
                        "UPDATE companies SET owner = ? WHERE account = ? AND id = ?",
                        (picked, account, company),
                    )
            execute("INSERT OR IGNORE INTO tags VALUES (?, 'company', ?, ?)", (account, company, bot.tag))
        execute(
            "INSERT INTO notes (account, entity, record_id, text, event_id) VALUES (?, 'deal', ?, ?, ?)",
            (account, deal_id, note, event_id),
        )
        if company:
            execute(
                "INSERT INTO notes (account, entity, record_id, text, event_id) "
                "VALUES (?, 'company', ?, ?, ?)",
                (account, company, note, event_id),
            )
        execute(
            "INSERT INTO outbox (account, user, text, event_id, entity, record_id) "
            "VALUES (?, ?, ?, ?, 'deal', ?)",
            (account, picked, bot.notify.format(title=title), event_id, deal_id),
        )
        execute(
            "INSERT INTO rotation VALUES (?, ?, ?) "
            "ON CONFLICT (account, bot) DO UPDATE SET last = excluded.last",
            (account, bot.id, picked),
        )
        execute(
            "INSERT INTO audit (account, event_id, kind, deal, owner_before, owner, last, company, "
            "company_owner_before) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (account, event_id, kind, deal_id, record["owners"][0], picked, last, company, company_before),
        )
        return None

    # What a user observes (not timed).

    def record(self, account: str, entity: str, record_id: str) -> dict[str, Any]:
        """Owners, tags and link of a record, as ``Engine.record`` has them."""
        tags = [
            tag
            for (tag,) in self.conn.execute(
                "SELECT tag FROM tags WHERE account = ? AND entity = ? AND record_id = ? ORDER BY tag",
                (account, entity, record_id),
            )
        ]
        if entity == "deal":
            owner, company = self.conn.execute(
                "SELECT owner, company FROM deals WHERE account = ? AND id = ?", (account, record_id)
            ).fetchone()
            return {"owners": [owner], "tags": tags, "company": company}
        (owner,) = self.conn.execute(
            "SELECT owner FROM companies WHERE account = ? AND id = ?", (account, record_id)
        ).fetchone()
        return {"owners": [owner], "tags": tags}

    def wall(self, account: str, entity: str, record_id: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT text FROM notes WHERE account = ? AND entity = ? AND record_id = ? ORDER BY seq",
            (account, entity, record_id),
        )
        return [text for (text,) in rows]

    def outbox(self) -> list[tuple[str, str, str, str]]:
        rows = self.conn.execute(
            "SELECT user, text, entity, record_id FROM outbox WHERE delivered_at IS NULL ORDER BY id"
        )
        return [tuple(row) for row in rows]

    def rotation(self, account: str) -> str | None:
        row = self.conn.execute(
            "SELECT last FROM rotation WHERE account = ? AND bot = ?", (account, self.bot.id)
        ).fetchone()
        return row[0] if row else None

    def explain(self, account: str, entity: str, record_id: str) -> list[list[str]]:
        """``Engine.explain`` in words (``Outcome.explain``), one list of lines per event."""
        column = "deal" if entity == "deal" else "company"
        rows = self.conn.execute(
            f"SELECT * FROM audit WHERE account = ? AND {column} = ? ORDER BY seq", (account, record_id)
        ).fetchall()
        return [self.words(dict(zip(AUDIT_COLUMNS, row, strict=True))) for row in rows]

    def words(self, audit: dict[str, Any], redelivered: bool = False) -> list[str]:
        """One audit row in the words of ``Outcome.explain``."""
        bot, account, event_id = self.bot, audit["account"], audit["event_id"]
        picked, last = audit["owner"], audit["last"]
        (note,) = self.conn.execute(
            "SELECT text FROM notes WHERE account = ? AND entity = 'deal' AND record_id = ? AND event_id = ?",
            (account, audit["deal"], event_id),
        ).fetchone()
        (notification,) = self.conn.execute(
            "SELECT text FROM outbox WHERE account = ? AND event_id = ?", (account, event_id)
        ).fetchone()
        (process,) = self.conn.execute(
            "SELECT process FROM deals WHERE account = ? AND id = ?", (account, audit["deal"])
        ).fetchone()
        pool = json.dumps(self.pool, ensure_ascii=False)
        before = "{}" if last is None else f'{{"last": "{last}", "pool": {pool}}}'
        lines = [
            f"event {event_id!r} ({audit['kind']}) on deal {audit['deal']}: owners "
            f"{[audit['owner_before']]} -> {[picked]}"
            + (" [redelivered, nothing done]" if redelivered else ""),
            f"  bot {bot.id!r}: assigned -> {picked}: "
            + (f"next in rotation after {last!r}" if last else "first in rotation"),
            f"    condition met: event {audit['kind']!r} is one of {list(bot.events)}",
        ]
        if bot.processes is not None:
            lines.append(f"    condition met: process {process!r} is one of {list(bot.processes)}")
        lines += [
            f"    candidates: {', '.join(self.pool)}",
            f'    strategy round_robin: state {before} -> {{"last": "{picked}", "pool": {pool}}}',
        ]
        if audit["company"]:
            company_before = [audit["company_owner_before"]] if audit["company_owner_before"] else []
            lines.append(f"    company {audit['company']}: owners {company_before} -> {[picked]}")
        lines += [f"    tag: {bot.tag}", f"    wall note: {note}", f"    notification: {notification}"]
        return lines


AUDIT_COLUMNS = (
    "seq",
    "account",
    "event_id",
    "kind",
    "deal",
    "owner_before",
    "owner",
    "last",
    "company",
    "company_owner_before",
)

__all__ = ["BOT_PREFIX", "ResultRouter", "connect", "seed"]
