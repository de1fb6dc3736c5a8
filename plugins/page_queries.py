"""The SQL of the admin page's reads, written once for both built-in stores.

Portable SQL with ``?`` placeholders (SQLite's); the PostgreSQL store turns them into
``%s`` with ``postgres``. Every event writes each index, so the page reads through as few
as serve it (version 11 of the schema, ``salesbot_plugins.migrations``): the outcomes
through ``outcomes_account_time (account, created_at, seq)``, the assignments through the
caps' ``assignments_user (account, user, at)``, ``assignments_bot_at`` and
``assignments_bot_seq``.
"""

from __future__ import annotations

#: The users who were ever assigned a record of the account, one index seek each (a
#: "loose index scan" of the caps' ``assignments_user``): the day's assignments are then
#: counted as one range of that index per user, from the index alone.
ASSIGNED_USERS = (
    "WITH RECURSIVE assigned(u) AS ("
    'SELECT MIN("user") FROM assignments WHERE account = ? '
    'UNION ALL SELECT (SELECT MIN("user") FROM assignments WHERE account = ? AND "user" > u) '
    "FROM assigned WHERE u IS NOT NULL) "
)
#: ``(user, count)`` of a bot's assignments since a moment (index ``assignments_bot_at``).
DISTRIBUTION = (
    'SELECT "user", COUNT(*) FROM assignments WHERE account = ? AND bot = ? AND at >= ? '
    'GROUP BY "user" ORDER BY "user"'
)
#: A user's assignments since a moment, by any bot (the caps' count; ``assignments_user``).
ASSIGNED_SINCE = 'SELECT COUNT(*) FROM assignments WHERE account = ? AND "user" = ? AND at >= ?'
#: An account's latest outcomes, newest first (the time each was logged, then its seq).
RECENT_OUTCOMES = (
    "SELECT seq, outcome FROM outcomes WHERE account = ? ORDER BY created_at DESC, seq DESC LIMIT ?"
)
#: The same, after the outcome ``seq`` a page ended with (none after an unknown seq).
RECENT_OUTCOMES_BEFORE = (
    "SELECT seq, outcome FROM outcomes WHERE account = ? AND (created_at, seq) < "
    "(SELECT created_at, seq FROM outcomes WHERE seq = ?) ORDER BY created_at DESC, seq DESC LIMIT ?"
)
#: The latest outcomes in which a bot assigned the record (index ``assignments_bot_seq``).
RECENT_BOT_OUTCOMES = (
    "SELECT o.seq, o.outcome FROM outcomes o WHERE o.seq IN (SELECT a.seq FROM assignments a "
    "WHERE a.account = ? AND a.bot = ? AND a.seq < ? ORDER BY a.seq DESC LIMIT ?) ORDER BY o.seq DESC"
)
#: Events and assignments since a moment, the outbox and the delivery backlogs
#: (``outcomes_account_time``, ``assignments_user``, ``deliveries_account``). ``CROSS
#: JOIN``: SQLite keeps the users outside (else it may walk the account's whole index).
ACTIVITY = ASSIGNED_USERS + (
    "SELECT (SELECT COUNT(*) FROM outcomes WHERE account = ? AND created_at >= ?), "
    '(SELECT COUNT(*) FROM assigned CROSS JOIN assignments a WHERE a.account = ? AND a."user" = u '
    "AND a.at >= ?), "
    "(SELECT COUNT(*) FROM notifications WHERE account = ? AND delivered_at IS NULL), "
    "(SELECT COUNT(*) FROM deliveries WHERE account = ? AND status = 'pending'), "
    "(SELECT COUNT(*) FROM deliveries WHERE account = ? AND status = 'dead')"
)
#: Larger than any seq: the cursor of a bot's first page.
MAX_SEQ = 2**63 - 1


def recent_params(
    account: str, limit: int, before: int | None, bot: str | None
) -> tuple[str, tuple[str | int, ...]]:
    """The query of ``Store.recent_outcomes`` and its parameters."""
    if bot is not None:
        return RECENT_BOT_OUTCOMES, (account, bot, before or MAX_SEQ, limit)
    if not before:
        return RECENT_OUTCOMES, (account, limit)
    return RECENT_OUTCOMES_BEFORE, (account, before, limit)


def activity_params(account: str, since: str) -> tuple[str, ...]:
    """The parameters of ``ACTIVITY``."""
    return (account, account, account, since, account, since, account, account, account)


def postgres(sql: str) -> str:
    """``sql`` with PostgreSQL's placeholders (none of these queries has a literal ``?``)."""
    return sql.replace("?", "%s")
