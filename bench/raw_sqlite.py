"""The same-statements baseline: a hand-written router on raw ``sqlite3`` running
salesbot's own statements.

One deal bot, round robin over its users, passing the owner on to the deal's company,
tagging both, writing a wall note on both and one notification. It uses salesbot's own
schema and pragmas (WAL, busy timeout, ``synchronous``) and the statements salesbot runs
for such an event (records as JSON with their owner rows, rotation state, outcome JSON
with the event id as idempotency key, its index rows for ``explain``, assignment, notes,
notification, the webhook endpoints read), so salesbot's store answers from its file as
from its own. Beside salesbot it measures salesbot's Python alone: validation, plugins,
conditions, eligibility, the audit objects. ``bench.raw_result`` is the other baseline,
defined by the observable result instead, which measures salesbot's extra I/O too.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from salesbot_plugins.sqlite_store import BUSY_TIMEOUT_MS, SCHEMA, SCHEMA_VERSION

BOT_PREFIX = "bot:"


@dataclass(frozen=True)
class RawBot:
    """The one bot the baseline knows, hard-coded as a hand-written router would have it."""

    id: str
    name: str
    #: ``(user id, display name)`` in pool order.
    users: Sequence[tuple[str, str]]
    tag: str
    events: Sequence[str] = ("created", "updated", "list")
    processes: Sequence[str] | None = ("Sales",)
    #: ``str.format`` texts with ``bot_name``, ``owner_name`` and ``title``.
    note: str = "Assigned by {bot_name} to {owner_name}"
    notify: str = "New deal {title}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def connect(path: Path | str, synchronous: str) -> sqlite3.Connection:
    """Open (creating) a store file with salesbot's schema and pragmas."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("BEGIN IMMEDIATE")
    for statement in SCHEMA.split(";"):
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.execute("COMMIT")
    return conn


def _with(tags: list[str], tag: str) -> list[str]:
    return tags if tag in tags else [*tags, tag]


def _deal(record: dict[str, Any], owners: list[str], tags: list[str]) -> dict[str, Any]:
    """A deal as salesbot stores it (its model's fields, in order)."""
    value = record.get("value")
    return {
        "id": record["id"],
        "owners": owners,
        "tags": tags,
        "open": record.get("open", True),
        "fields": record.get("fields", {}),
        "entity": "deal",
        "title": record.get("title", ""),
        "process": record.get("process"),
        "value": float(value) if value is not None else None,
        "persons": record.get("persons", []),
        "company": record.get("company"),
    }


class Router:
    """A hand-written router's transactions: one ``BEGIN IMMEDIATE ... COMMIT`` per event,
    or per batch of a list operation, around ``route``."""

    def __init__(self, conn: sqlite3.Connection, bot: RawBot):
        self.conn = conn
        self.bot = bot
        self.pool = [user for user, _ in bot.users]
        self.names = dict(bot.users)

    def route(self, event: dict[str, Any]) -> Any:
        raise NotImplementedError

    def handle(self, event: dict[str, Any]) -> Any:
        """One event, one ``BEGIN IMMEDIATE ... COMMIT``."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            answer = self.route(event)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        return answer

    def handle_batch(self, events: Iterable[dict[str, Any]]) -> list[Any]:
        """Several events in one transaction (a list operation's batch)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            answers = [self.route(event) for event in events]
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        return answers


class RawRouter(Router):
    """Routes deal events with one bot: the hand-written equivalent of ``Engine.handle``."""

    def _put_record(self, account: str, record: dict[str, Any]) -> None:
        key = (account, record["entity"], record["id"])
        execute = self.conn.execute
        execute(
            "INSERT OR REPLACE INTO records (account, entity, id, data) VALUES (?, ?, ?, ?)",
            (*key, json.dumps(record, separators=(",", ":"), ensure_ascii=False)),
        )
        execute("DELETE FROM record_owners WHERE account = ? AND entity = ? AND record_id = ?", key)
        for owner in record["owners"]:
            execute(
                "INSERT INTO record_owners (account, entity, record_id, user, open) VALUES (?, ?, ?, ?, ?)",
                (*key, owner, int(record.get("open", True))),
            )

    def _get(self, account: str, entity: str, record_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT data FROM records WHERE account = ? AND entity = ? AND id = ?",
            (account, entity, record_id),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def route(self, event: dict[str, Any]) -> dict[str, Any]:
        """Decide and write one event inside the open transaction."""
        execute, bot = self.conn.execute, self.bot
        account, event_id, kind = event.get("account", "default"), event["id"], event["kind"]
        record = event["record"]
        row = execute(
            "SELECT outcome FROM outcomes WHERE account = ? AND event_id = ?", (account, event_id)
        ).fetchone()
        if row:
            return {**json.loads(row[0]), "duplicate": True}
        stored = self._get(account, "deal", record["id"])
        if kind == "list":  # a list operation sends the stored record with the bot as owner
            record = {**(stored or {}), "owners": record["owners"]}
        company_id = record.get("company")
        company = self._get(account, "company", company_id) if company_id else None
        row = execute(
            "SELECT state FROM strategy_state WHERE account = ? AND bot = ?", (account, bot.id)
        ).fetchone()
        state = json.loads(row[0]) if row else {}
        switches = dict(
            execute("SELECT bot, active FROM bot_switches WHERE account = ?", (account,)).fetchall()
        )
        now = datetime.now(UTC)
        owners_before = list(record["owners"])
        owners = list(owners_before)
        tags = list(record.get("tags", []))
        at = owners.index(BOT_PREFIX + bot.id)
        applies = (
            switches.get(bot.id, 1)
            and kind in bot.events
            and (bot.processes is None or record.get("process") in bot.processes)
        )
        if not applies:
            del owners[at]
            if not owners and stored:
                owners = [o for o in stored["owners"] if not o.startswith(BOT_PREFIX)]
            decision: dict[str, Any] = {"bot": bot.id, "status": "not_applied"}
            self._put_record(account, _deal(record, owners, tags))
            return self._put_outcome(event, record, now, owners_before, owners, decision)

        # Round robin: the next pool member after the last one picked.
        last = state.get("last")
        start = self.pool.index(last) + 1 if last in self.pool else 0
        picked = self.pool[start % len(self.pool)]
        new_state = {"last": picked, "pool": list(self.pool)}
        if picked in owners:
            del owners[at]
        else:
            owners[at] = picked
        tags = _with(tags, bot.tag)
        # The engine keeps which owners a bot gave beside the record's fields.
        deal = {**_deal(record, owners, tags), "given_by": {picked: bot.id}}
        changes: list[dict[str, Any]] = []
        linked: list[dict[str, Any]] = []
        if company_id:
            current = company or {
                "id": company_id,
                "owners": [],
                "tags": [],
                "open": True,
                "fields": {},
                "entity": "company",
                "name": "",
            }
            changes.append(
                {
                    "entity": "company",
                    "record_id": company_id,
                    "owners_before": list(current["owners"]),
                    "owners_after": [picked],
                }
            )
            after = {**current, "owners": [picked], "tags": _with(list(current["tags"]), bot.tag)}
            if after != company:  # like the engine, an unchanged linked record is not written
                linked.append(after)
        note = bot.note.format(bot_name=bot.name, owner_name=self.names[picked])
        notification = bot.notify.format(title=record.get("title", ""))

        execute(
            "INSERT OR REPLACE INTO strategy_state (account, bot, state) VALUES (?, ?, ?)",
            (account, bot.id, json.dumps(new_state)),
        )
        for changed in (deal, *linked):
            self._put_record(account, changed)
        for entity, record_id in (("deal", record["id"]), *((c["entity"], c["record_id"]) for c in changes)):
            execute(
                "INSERT INTO notes (account, entity, record_id, text, bot, event_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (account, entity, record_id, note, bot.id, event_id),
            )
        execute(
            "INSERT INTO notifications (account, user, text, event_id, entity, record_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (account, picked, notification, event_id, "deal", record["id"]),
        )
        decision = {
            "bot": bot.id,
            "status": "assigned",
            "owner": picked,
            "removed": None,
            "reason": f"next in rotation after {last!r}" if last else "first in rotation",
            "strategy": "round_robin",
            "conditions": [
                f"event {kind!r} is one of {list(bot.events)}",
                *(
                    [f"process {record.get('process')!r} is one of {list(bot.processes)}"]
                    if bot.processes
                    else []
                ),
            ],
            "candidates": list(self.pool),
            "skipped": [],
            "state_before": state,
            "state_after": new_state,
            "related": changes,
            "tag": bot.tag,
            "note": note,
            "notification": notification,
        }
        outcome = self._put_outcome(event, record, now, owners_before, owners, decision, picked)
        # Webhook endpoints are read for an event with something to deliver.
        execute("SELECT id, events FROM webhooks WHERE account = ? ORDER BY seq", (account,)).fetchall()
        return outcome

    def _put_outcome(
        self,
        event: dict[str, Any],
        record: dict[str, Any],
        now: datetime,
        owners_before: list[str],
        owners_after: list[str],
        decision: dict[str, Any],
        picked: str | None = None,
    ) -> dict[str, Any]:
        account = event.get("account", "default")
        outcome = {
            "event_id": event["id"],
            "account": account,
            "entity": "deal",
            "record_id": record["id"],
            "kind": event["kind"],
            "at": now.isoformat().replace("+00:00", "Z"),
            "owners_before": owners_before,
            "owners_after": owners_after,
            "decisions": [decision],
            "duplicate": False,
        }
        # The kept payload rides in the outcome row, as salesbot keeps it (schema 11).
        payload = json.dumps(
            {**event, "account": account, "at": outcome["at"]}, sort_keys=True, separators=(",", ":")
        )
        seq = self.conn.execute(
            "INSERT INTO outcomes (account, event_id, entity, record_id, outcome, payload, routed, "
            "kept_at, size) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
            (
                account,
                event["id"],
                "deal",
                record["id"],
                json.dumps(outcome, separators=(",", ":"), ensure_ascii=False),
                payload,
                _iso(now),
                len(payload.encode("utf-8")),
            ),
        ).lastrowid
        touched = [("deal", record["id"])]
        touched += [(c["entity"], c["record_id"]) for c in decision.get("related", ())]
        self.conn.executemany(
            "INSERT INTO outcome_records (account, entity, record_id, seq) VALUES (?, ?, ?, ?)",
            [(account, entity, record_id, seq) for entity, record_id in touched],
        )
        if picked is not None:
            self.conn.execute(
                "INSERT INTO assignments (seq, account, bot, user, at) VALUES (?, ?, ?, ?, ?)",
                (seq, account, self.bot.id, picked, _iso(now)),
            )
        return outcome
