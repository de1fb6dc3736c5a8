"""Read-only SQL against either store, for tests that check what was written."""

from __future__ import annotations

import sqlite3
from typing import Any


def rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one query on a SQLite path or a PostgreSQL URL (write ``?`` placeholders)."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as conn:
            return [tuple(r) for r in conn.execute(sql.replace("?", "%s"), params).fetchall()]
    conn = sqlite3.connect(url)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def schema_version(url: str) -> int:
    """The schema version a store records."""
    if url.startswith("postgresql://"):
        [(version,)] = rows(url, "SELECT version FROM salesbot_schema")
    else:
        [(version,)] = rows(url, "PRAGMA user_version")
    return int(version)


def check_exactly_once(url: str, expected_records: int, pools: dict[str, int]) -> None:
    """Every record assigned once, each bot fair to within one, one notification each, to
    the user the record went to."""
    per_record = rows(
        url,
        "SELECT o.record_id, COUNT(a.seq) FROM outcomes o LEFT JOIN assignments a ON a.seq = o.seq "
        "GROUP BY o.record_id",
    )
    assert len(per_record) == expected_records
    assert {n for _, n in per_record} == {1}
    for bot, pool in pools.items():
        counts = [
            n for (n,) in rows(url, 'SELECT COUNT(*) FROM assignments WHERE bot = ? GROUP BY "user"', (bot,))
        ]
        assert len(counts) == pool and max(counts) - min(counts) <= 1, (bot, counts)
    notified = rows(url, "SELECT record_id, COUNT(*) FROM notifications GROUP BY record_id")
    assert len(notified) == expected_records and {n for _, n in notified} == {1}
    wrong = rows(
        url,
        "SELECT COUNT(*) FROM notifications n JOIN outcomes o ON o.event_id = n.event_id "
        'JOIN assignments a ON a.seq = o.seq WHERE n."user" != a."user"',
    )
    assert wrong == [(0,)]  # each notification went to the user the record was assigned to
    if not url.startswith("postgresql://"):
        assert rows(url, "PRAGMA integrity_check") == [("ok",)]
