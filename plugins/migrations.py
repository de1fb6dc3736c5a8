"""The schema of both stores as one numbered history of migrations.

Each step is written once, its column types filled in by the store's ``Dialect``; a new
database runs every step, an older one the steps after its version, inside the opening
transaction. Every step is idempotent (``IF NOT EXISTS``, a column checked before it is
added, backfills that skip what exists), so the shapes a version had over its life, and
files that never recorded a version, all come out the same.

The versions that shipped, on this history:

=========  ===========================  ==============================  =====================
 version    SQLite (``user_version``)    PostgreSQL (``salesbot_schema``)  what it added
=========  ===========================  ==============================  =====================
 1          0 (never recorded)           never shipped                  records, state, log
 2          2                            1                              assignment times,
                                                                         record owners
 3          3                            2                              fingerprints, the
                                                                         explain index
 4          4                            3                              API tokens
 5          5                            4                              signed webhooks
 6          6                            5                              the admin page
 7          7                            6                              event payloads
 8          8                            8                              compact indexes
 9          9                            9                              SLA due items
 10         10                           10                             rules as data, ended
                                                                         admin sessions,
                                                                         compatible-from
 11         11                           11                             accounts' rate limits
 12         12                           12                             payloads in the
                                                                         outcome row, fewer
                                                                         page indexes
=========  ===========================  ==============================  =====================

PostgreSQL numbered its own history until version 7 of this one, one behind: a recorded
version below 7 is read as one more (``postgres_store``). From 8 on both record the same.

Beside its version a database records the oldest version that can still run on it
(``salesbot_compatibility``, from version 10 on), so that salesbots of two versions can
share it during a rolling upgrade. A step declares whether it only expands the schema
(``Step.expand_only``): then the database stays open to every version its previous one
was; any other step makes its own version the oldest. A salesbot refuses a database a
newer one migrated only when it is older than that (``check_compatible``); it opens one
that a newer salesbot only expanded as it is, neither migrating nor downgrading it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from salesbot_core import StoreError

from .sql import CHUNK, Session, columns

#: The version this salesbot writes; ``STEPS[v - 1]`` brings a database to version ``v``.
SCHEMA_VERSION = 12
#: The oldest version whose tables hold everything this salesbot reads: a read-only
#: opening (which must not upgrade) takes a database from it on (version 8 only dropped
#: indexes).
READABLE_VERSION = 7


def ddl(s: Session, script: str) -> None:
    """Run ``;``-separated DDL with the dialect's column types filled in."""
    d = s.dialect
    text = script.format(serial=d.serial, ref=d.serial_ref, boolean=d.boolean, now=d.now, keyed=d.keyed)
    for statement in text.split(";"):
        if statement.strip():
            s.execute(statement)


def batches(s: Session, sql: str, size: int = 1000) -> Iterator[list[Any]]:
    """The rows of a backfill query a batch at a time, so a large table is not held at once."""
    cursor = s.execute(sql)
    while rows := cursor.fetchmany(size):
        yield rows


def step_1(s: Session) -> None:
    """The first schema: records, rotation state, the event log and its assignments, walls,
    the notification outbox and bot switches."""
    ddl(
        s,
        """
CREATE TABLE IF NOT EXISTS records (
    account TEXT NOT NULL, entity TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (account, entity, id)
){keyed};
CREATE TABLE IF NOT EXISTS strategy_state (
    account TEXT NOT NULL, bot TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (account, bot)
){keyed};
-- One row per processed event: the idempotency key and the audit of what was decided.
CREATE TABLE IF NOT EXISTS outcomes (
    seq {serial},
    account TEXT NOT NULL, event_id TEXT NOT NULL,
    entity TEXT NOT NULL, record_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT {now},
    UNIQUE (account, event_id)
);
CREATE INDEX IF NOT EXISTS outcomes_record ON outcomes (account, entity, record_id);
-- One row per assignment, for per-bot, per-user counts and capacity caps.
CREATE TABLE IF NOT EXISTS assignments (
    seq {ref} NOT NULL REFERENCES outcomes (seq),
    account TEXT NOT NULL, bot TEXT NOT NULL, "user" TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS assignments_bot ON assignments (account, bot, "user");
CREATE TABLE IF NOT EXISTS notes (
    seq {serial},
    account TEXT NOT NULL, entity TEXT NOT NULL, record_id TEXT NOT NULL,
    text TEXT NOT NULL, bot TEXT NOT NULL, event_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT {now}
);
CREATE INDEX IF NOT EXISTS notes_record ON notes (account, entity, record_id);
-- The outbox: a host delivers pending rows and marks them delivered.
CREATE TABLE IF NOT EXISTS notifications (
    id {serial},
    account TEXT NOT NULL, "user" TEXT NOT NULL, text TEXT NOT NULL,
    event_id TEXT NOT NULL, entity TEXT NOT NULL, record_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT {now},
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS notifications_pending ON notifications (id) WHERE delivered_at IS NULL;
CREATE TABLE IF NOT EXISTS bot_switches (
    account TEXT NOT NULL, bot TEXT NOT NULL, active {boolean} NOT NULL,
    PRIMARY KEY (account, bot)
){keyed}
""",
    )


def step_2(s: Session) -> None:
    """Assignment times (capacity caps) and who owns which record (least-loaded routing)."""
    if "at" not in columns(s, "assignments"):
        # Assignments logged before have the time their event was logged.
        s.execute("ALTER TABLE assignments ADD COLUMN at TEXT NOT NULL DEFAULT ''")
        s.execute(
            "UPDATE assignments SET at = (SELECT o.created_at FROM outcomes o WHERE o.seq = assignments.seq)"
        )
    ddl(
        s,
        """
CREATE INDEX IF NOT EXISTS assignments_user ON assignments (account, "user", at);
CREATE TABLE IF NOT EXISTS record_owners (
    account TEXT NOT NULL, entity TEXT NOT NULL, record_id TEXT NOT NULL,
    "user" TEXT NOT NULL, open {boolean} NOT NULL,
    PRIMARY KEY (account, entity, record_id, "user")
){keyed};
CREATE INDEX IF NOT EXISTS record_owners_user ON record_owners (account, entity, "user", open)
""",
    )
    for rows in batches(s, "SELECT account, entity, id, data FROM records"):
        owners = []
        for account, entity, id, data in rows:
            record = json.loads(data)
            is_open = bool(record.get("open", True))
            owners += [
                (account, entity, id, user, is_open) for user in dict.fromkeys(record.get("owners", []))
            ]
        insert_ignoring(s, 'record_owners (account, entity, record_id, "user", open)', owners)


def step_3(s: Session) -> None:
    """Payload fingerprints (same id, other payload: a conflict) and every record an
    outcome changed, for explain; the outcomes logged before are indexed from their JSON."""
    if "fingerprint" not in columns(s, "outcomes"):
        # Events logged before keep no fingerprint: they are answered as before.
        s.execute("ALTER TABLE outcomes ADD COLUMN fingerprint TEXT")
    ddl(
        s,
        """
-- Every record an outcome changed (the record and its linked records), for explain.
CREATE TABLE IF NOT EXISTS outcome_records (
    account TEXT NOT NULL, entity TEXT NOT NULL, record_id TEXT NOT NULL,
    seq {ref} NOT NULL REFERENCES outcomes (seq),
    PRIMARY KEY (account, entity, record_id, seq)
){keyed}
""",
    )
    for rows in batches(s, "SELECT seq, account, entity, record_id, outcome FROM outcomes"):
        refs = []
        for seq, account, entity, record_id, text in rows:
            refs.append((account, entity, record_id, seq))
            for decision in json.loads(text).get("decisions", []):
                refs += [(account, c["entity"], c["record_id"], seq) for c in decision.get("related", [])]
        insert_ignoring(s, "outcome_records (account, entity, record_id, seq)", refs)


def step_4(s: Session) -> None:
    """API tokens of ``salesbot serve``: only the SHA-256 of each secret is kept."""
    ddl(
        s,
        """
CREATE TABLE IF NOT EXISTS tokens (
    account TEXT NOT NULL, name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,  -- a JSON array of scope names
    created_at TEXT NOT NULL DEFAULT {now},
    revoked_at TEXT,
    PRIMARY KEY (account, name)
)
""",
    )


def step_5(s: Session) -> None:
    """Signed webhooks: signing secrets (kept as they are: a signature can only be checked
    with the secret itself; several per account while one is rotated), endpoints, and the
    webhook outbox (one row per message and endpoint, written with its event)."""
    ddl(
        s,
        """
CREATE TABLE IF NOT EXISTS signing_secrets (
    seq {serial},
    account TEXT NOT NULL, secret TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT {now}
);
CREATE INDEX IF NOT EXISTS signing_secrets_account ON signing_secrets (account);
CREATE TABLE IF NOT EXISTS webhooks (
    seq {serial},
    id TEXT NOT NULL UNIQUE, account TEXT NOT NULL, url TEXT NOT NULL,
    events TEXT NOT NULL,  -- a JSON array: assignment, notification
    secret TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT {now}
);
CREATE INDEX IF NOT EXISTS webhooks_account ON webhooks (account);
CREATE TABLE IF NOT EXISTS deliveries (
    seq {serial},
    id TEXT NOT NULL UNIQUE, account TEXT NOT NULL, webhook_id TEXT NOT NULL,
    kind TEXT NOT NULL, payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',  -- pending, delivered, dead
    next_at TEXT NOT NULL, last_error TEXT,
    created_at TEXT NOT NULL DEFAULT {now},
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_account ON deliveries (account, status, seq)
""",
    )


def step_6(s: Session) -> None:
    """The admin page: who switched a bot and when, and an index for each of its queries
    (``salesbot_plugins.page_queries``)."""
    switch_columns = columns(s, "bot_switches")
    for column in ("changed_by", "changed_at"):
        if column not in switch_columns:
            # Switches set before show neither who nor when.
            s.execute(f"ALTER TABLE bot_switches ADD COLUMN {column} TEXT")
    # As version 6 made them; version 11 replaced all but ``assignments_bot_seq``.
    ddl(
        s,
        """
CREATE INDEX IF NOT EXISTS outcomes_account ON outcomes (account, seq);
CREATE INDEX IF NOT EXISTS outcomes_account_created ON outcomes (account, created_at);
CREATE INDEX IF NOT EXISTS assignments_bot_at ON assignments (account, bot, at);
CREATE INDEX IF NOT EXISTS assignments_bot_seq ON assignments (account, bot, seq);
CREATE INDEX IF NOT EXISTS assignments_account_at ON assignments (account, at)
""",
    )


def step_7(s: Session) -> None:
    """The payload of each processed event, for ``salesbot replay``, while it is within the
    retention (``SALESBOT_EVENT_RETENTION_DAYS``); its outcome is in ``outcomes``. Older
    events' payloads were not kept."""
    ddl(
        s,
        """
CREATE TABLE IF NOT EXISTS event_payloads (
    seq {serial},
    account TEXT NOT NULL, event_id TEXT NOT NULL,
    at TEXT NOT NULL,  -- when the event was decided, UTC ISO 8601
    routed INTEGER NOT NULL,
    size INTEGER NOT NULL,  -- bytes of the payload (UTF-8)
    payload TEXT NOT NULL  -- the event as canonical JSON
);
CREATE INDEX IF NOT EXISTS event_payloads_account ON event_payloads (account, at);
CREATE INDEX IF NOT EXISTS event_payloads_at ON event_payloads (at)
""",
    )


def step_8(s: Session) -> None:
    """Only the indexes a query reads, as every event writes each one:

    - ``assignments_bot`` served no query: ``assignment_counts`` reads the whole table, and
      caps count by ``(account, "user", at)``, which ``assignments_user`` serves;
    - ``outcomes_record`` has served no query since explain reads ``outcome_records``
      (version 3); an event id is looked up by ``UNIQUE (account, event_id)``.

    The admin page's indexes (version 6) each serve one of its queries
    (``salesbot_plugins.page_queries``)."""
    ddl(s, "DROP INDEX IF EXISTS assignments_bot; DROP INDEX IF EXISTS outcomes_record")


def step_9(s: Session) -> None:
    """The due items of SLAs (``salesbot_core.models.DueItem``): one per record, taken by
    ``Engine.tick`` oldest due first. Created empty: older assignments have no deadline."""
    ddl(
        s,
        """
CREATE TABLE IF NOT EXISTS due_items (
    account TEXT NOT NULL, entity TEXT NOT NULL, record_id TEXT NOT NULL,
    key TEXT NOT NULL, bot TEXT NOT NULL, owner TEXT NOT NULL,
    assigned_at TEXT NOT NULL, due_at TEXT NOT NULL,
    reassignments INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, entity, record_id)
);
CREATE INDEX IF NOT EXISTS due_items_due ON due_items (due_at)
""",
    )


def step_10(s: Session) -> None:
    """Rules as data (``salesbot_core.rulebook``): the accounts, each one's numbered
    versions of its rules (the whole document each time, so any can be restored), drafts,
    and one counter every publish counts up, read by every worker with each event.

    And the admin page's sessions ended by sign-out (``salesbot_core.admin.sessions``):
    each one's nonce until its cookie would have expired anyway. A session is a signed
    cookie, so the store is where every worker learns that a copy of it no longer signs
    anyone in. And the oldest schema version that can still run on the database."""
    ddl(
        s,
        """
CREATE TABLE IF NOT EXISTS accounts (
    account TEXT NOT NULL PRIMARY KEY,
    status TEXT NOT NULL DEFAULT 'active',
    enabled {boolean} NOT NULL,
    plan TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT {now},
    changed_at TEXT NOT NULL DEFAULT {now}
){keyed};
CREATE TABLE IF NOT EXISTS rule_versions (
    account TEXT NOT NULL, version INTEGER NOT NULL,
    content TEXT NOT NULL, author TEXT, message TEXT, restored_from INTEGER,
    created_at TEXT NOT NULL DEFAULT {now},
    PRIMARY KEY (account, version)
){keyed};
CREATE TABLE IF NOT EXISTS rule_drafts (
    account TEXT NOT NULL, draft TEXT NOT NULL, base_version INTEGER NOT NULL,
    content TEXT NOT NULL, author TEXT,
    changed_at TEXT NOT NULL DEFAULT {now},
    PRIMARY KEY (account, draft)
){keyed};
CREATE TABLE IF NOT EXISTS rules_generation (
    id INTEGER NOT NULL PRIMARY KEY, generation INTEGER NOT NULL
){keyed};
INSERT INTO rules_generation (id, generation) VALUES (1, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS ended_sessions (
    nonce TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ended_sessions_expires ON ended_sessions (expires_at);
CREATE TABLE IF NOT EXISTS salesbot_compatibility (compatible_from INTEGER NOT NULL)
""",
    )


def step_11(s: Session) -> None:
    """An account's own rate limit, set by the operator (``salesbot serve``'s defaults
    when empty): requests per second (0: none) and the burst. An older salesbot reads
    the accounts by naming its columns, so it runs on as before, without limits."""
    have = columns(s, "accounts")
    for column, kind in (("rate_limit", "DOUBLE PRECISION"), ("rate_burst", "INTEGER")):
        if column not in have:
            s.execute(f"ALTER TABLE accounts ADD COLUMN {column} {kind}")


#: The columns version 12 adds to ``outcomes``: the kept payload of the event (NULL when
#: none is kept, or once pruned), whether it was routed, when it was decided, its bytes.
KEPT_COLUMNS = (("payload", "TEXT"), ("routed", "INTEGER"), ("kept_at", "TEXT"), ("size", "INTEGER"))


def step_12(s: Session) -> None:
    """Only what a result needs is written with each event (issue 25): every b-tree an
    event writes costs at least one page of the WAL.

    - The payload of a processed event is kept in its outcome row, found through one
      partial index (``outcomes_kept``: only the rows whose payload is kept, by the time
      it was decided, for pruning and replay windows), not as a row of ``event_payloads``
      with two indexes of its own. The payloads kept before are copied into their outcome
      rows.
    - The admin page reads the outcomes through one index, ``(account, created_at, seq)``
      (the latest outcomes, newest first, and the events of a day), in place of its two.
      The assignments of a day are counted through the caps' index (one range per user
      of the account), not an index of their own. A bot's distribution keeps
      ``assignments_bot_at``: through the caps' index it read every bot's assignments,
      and the bots page asks it for each bot, user and period (8 times slower with 100
      bots); a bot's latest assignments keep ``assignments_bot_seq``.

    Expand, then contract later: an older salesbot (version 10 or 11) still running on the
    database keeps working, so the step only expands (compatible-from stays). It writes
    its payloads into ``event_payloads``, which stays, and which this salesbot reads too
    (``kept_events``) and prunes; the outcome rows it writes leave the new columns empty.
    The payloads copied stay in ``event_payloads`` as well, for its own replays (which do
    not see the payloads this salesbot keeps in the outcome rows). The indexes dropped
    change none of its answers: its page's queries read the same rows, without an index
    of their own. A later step drops ``event_payloads`` once no version 10 or 11 runs."""
    have = columns(s, "outcomes")
    for name, kind in KEPT_COLUMNS:
        if name not in have:
            s.execute(f"ALTER TABLE outcomes ADD COLUMN {name} {kind}")
    s.execute(
        "UPDATE outcomes SET payload = e.payload, routed = e.routed, kept_at = e.at, size = e.size "
        "FROM event_payloads e WHERE e.account = outcomes.account AND e.event_id = outcomes.event_id "
        "AND outcomes.payload IS NULL"
    )
    ddl(
        s,
        """
DROP INDEX IF EXISTS outcomes_account;
DROP INDEX IF EXISTS outcomes_account_created;
CREATE INDEX IF NOT EXISTS outcomes_account_time ON outcomes (account, created_at, seq);
CREATE INDEX IF NOT EXISTS outcomes_kept ON outcomes (kept_at) WHERE payload IS NOT NULL;
DROP INDEX IF EXISTS assignments_account_at
""",
    )


@dataclass(frozen=True)
class Step:
    """One step of the history. ``expand_only``: it only adds what an older salesbot,
    writing as it did, leaves consistent (a table or index it need not fill, a column it
    may leave empty), so that salesbot can keep running on the database. A step that
    removes or changes anything the older salesbot reads or writes, or adds what every
    write must keep up to date (an index table filled from the records, a due item per
    assignment), is not. Dropping an index changes none of its answers (version 11)."""

    run: Callable[[Session], None]
    expand_only: bool = False


STEPS: tuple[Step, ...] = (
    Step(step_1),
    Step(step_2),  # record owners: an older salesbot would not keep them
    Step(step_3),  # the explain index: likewise
    Step(step_4, expand_only=True),  # tokens: read and written only by versions that know them
    Step(step_5),  # webhooks: an older salesbot would queue no deliveries
    Step(step_6, expand_only=True),  # who switched a bot: a switch without it shows none
    Step(step_7, expand_only=True),  # payloads: an event without one is not replayed, as before 7
    Step(step_8),  # drops indexes
    Step(step_9),  # due items: an older salesbot would set no deadline
    # rules as data, ended sessions, compatible-from: tables an older salesbot need not fill
    Step(step_10, expand_only=True),
    Step(step_11, expand_only=True),  # rate limits: empty columns an older salesbot never reads
    # payloads in the outcome row, fewer indexes: a version-10 or 11 salesbot keeps writing and
    # reading event_payloads (kept until a later step); every query of its has its rows
    Step(step_12, expand_only=True),
)
assert len(STEPS) == SCHEMA_VERSION


def compatible_from(version: int) -> int:
    """The oldest version that can run on a database at ``version`` (at most
    ``SCHEMA_VERSION``): that of the version before while the steps only expand."""
    while version > 1 and STEPS[version - 1].expand_only:
        version -= 1
    return version


def check_compatible(s: Session, version: int, where: str) -> None:
    """Refuse a database a newer salesbot migrated beyond what this one can run on, before
    anything is written. A newer database without the record (none is written before
    version 10, and a newer salesbot may have dropped it) is taken as needing its own
    version."""
    if version <= SCHEMA_VERSION:
        return
    oldest = version
    if columns(s, "salesbot_compatibility"):
        (recorded,) = s.execute("SELECT MAX(compatible_from) FROM salesbot_compatibility").fetchone()
        oldest = version if recorded is None else int(recorded)
    if SCHEMA_VERSION < oldest:
        raise StoreError(
            f"the database at {where!r} was made by a newer salesbot (schema {version}, this one "
            f"knows {SCHEMA_VERSION}) and needs one of schema {oldest} or later: nothing was written"
        )


def insert_ignoring(s: Session, into: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert rows a backfill derived, skipping those an older salesbot already wrote."""
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        row = "(" + ", ".join("?" * len(chunk[0])) + ")"
        s.execute(
            f"INSERT INTO {into} VALUES {', '.join([row] * len(chunk))} ON CONFLICT DO NOTHING",
            [value for r in chunk for value in r],
        )


def upgrade(s: Session, version: int) -> None:
    """Bring a database at ``version`` (0: new) to ``SCHEMA_VERSION`` and record the oldest
    version that can run on it, in the caller's transaction; the caller records the new
    version."""
    for step in STEPS[version:]:
        step.run(s)
    s.execute("DELETE FROM salesbot_compatibility")
    s.execute(
        "INSERT INTO salesbot_compatibility (compatible_from) VALUES (?)", (compatible_from(SCHEMA_VERSION),)
    )
