"""The SQL of the admin page's reads, written once for both built-in stores.

Portable SQL with ``?`` placeholders (SQLite's); the PostgreSQL store turns them into
``%s`` with ``postgres``. Each query has an index of its own in both schemas (version 6
of SQLite's, 5 of PostgreSQL's), so pages stay fast with 100,000 decisions.
"""

from __future__ import annotations

#: Larger than any seq: the cursor of a first page.
MAX_SEQ = 2**63 - 1

#: ``(user, count)`` of a bot's assignments since a moment (index ``assignments_bot_at``).
DISTRIBUTION = (
    'SELECT "user", COUNT(*) FROM assignments WHERE account = ? AND bot = ? AND at >= ? '
    'GROUP BY "user" ORDER BY "user"'
)
#: An account's latest outcomes before a seq, newest first (index ``outcomes_account``).
RECENT_OUTCOMES = "SELECT seq, outcome FROM outcomes WHERE account = ? AND seq < ? ORDER BY seq DESC LIMIT ?"
#: The latest outcomes in which a bot assigned the record (index ``assignments_bot_seq``).
RECENT_BOT_OUTCOMES = (
    "SELECT o.seq, o.outcome FROM outcomes o WHERE o.seq IN (SELECT a.seq FROM assignments a "
    "WHERE a.account = ? AND a.bot = ? AND a.seq < ? ORDER BY a.seq DESC LIMIT ?) ORDER BY o.seq DESC"
)
#: Events and assignments since a moment, the outbox and the delivery backlogs
#: (indexes ``outcomes_account_created``, ``assignments_account_at``, ``deliveries_account``).
ACTIVITY = (
    "SELECT (SELECT COUNT(*) FROM outcomes WHERE account = ? AND created_at >= ?), "
    "(SELECT COUNT(*) FROM assignments WHERE account = ? AND at >= ?), "
    "(SELECT COUNT(*) FROM notifications WHERE account = ? AND delivered_at IS NULL), "
    "(SELECT COUNT(*) FROM deliveries WHERE account = ? AND status = 'pending'), "
    "(SELECT COUNT(*) FROM deliveries WHERE account = ? AND status = 'dead')"
)
#: The indexes these queries use, the same in both schemas.
INDEXES = """
CREATE INDEX IF NOT EXISTS outcomes_account ON outcomes (account, seq);
CREATE INDEX IF NOT EXISTS outcomes_account_created ON outcomes (account, created_at);
CREATE INDEX IF NOT EXISTS assignments_bot_at ON assignments (account, bot, at);
CREATE INDEX IF NOT EXISTS assignments_bot_seq ON assignments (account, bot, seq);
CREATE INDEX IF NOT EXISTS assignments_account_at ON assignments (account, at);
"""


def recent_params(
    account: str, limit: int, before: int | None, bot: str | None
) -> tuple[str, tuple[str | int, ...]]:
    """The query of ``Store.recent_outcomes`` and its parameters."""
    if bot is None:
        return RECENT_OUTCOMES, (account, before or MAX_SEQ, limit)
    return RECENT_BOT_OUTCOMES, (account, bot, before or MAX_SEQ, limit)


def activity_params(account: str, since: str) -> tuple[str, ...]:
    """The parameters of ``ACTIVITY``."""
    return (account, since, account, since, account, account, account)


def postgres(sql: str) -> str:
    """``sql`` with PostgreSQL's placeholders (none of these queries has a literal ``?``)."""
    return sql.replace("?", "%s")
