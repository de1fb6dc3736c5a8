"""Rules kept in the store: accounts, numbered versions of their rules, drafts.

The store methods of ``salesbot_core.store.Store`` for rules as data
(``salesbot_core.rulebook``), written once over the SQL layer's sessions. Publishing is
a compare-and-set on the account's ``version``: the ``UPDATE ... WHERE version = ?``
takes the account's row lock, so two editors publishing on the same version never both
succeed (the second sees a version that moved, and gets ``StaleVersion``). Every change
counts up the one ``rules_generation`` row, the number every engine compares with each
event to know that some account's rules changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from salesbot_core.errors import StaleVersion
from salesbot_core.store import LIMIT_FIELDS, AccountRow, Draft, RulesVersion
from salesbot_core.vocabulary import DEFAULT_PLAN

if TYPE_CHECKING:  # the SQL layer mixes this class in: a type only, no import cycle
    from .sql import Session

#: The tables that hold rows of an account (by its ``account`` column): an account that
#: is deleted is deleted from each, rows that others refer to (foreign keys) after those.
#: A test checks that every table with the column is here.
ACCOUNT_TABLES = (
    "records",
    "strategy_state",
    "assignments",
    "notes",
    "notifications",
    "bot_switches",
    "record_owners",
    "outcome_records",
    "outcomes",
    "tokens",
    "signing_secrets",
    "deliveries",
    "webhooks",
    "event_payloads",
    "due_items",
    "rule_versions",
    "rule_drafts",
    "accounts",
)

SELECT_GENERATION = "SELECT generation FROM rules_generation WHERE id = 1"
_ACCOUNT_COLUMNS = "account, status, enabled, plan, version, created_at, changed_at, rate_limit, rate_burst"
_VERSION_COLUMNS = "account, version, content, author, message, restored_from, created_at"
_DRAFT_COLUMNS = "account, draft, base_version, content, author, changed_at"


def _account(row: Any) -> AccountRow:
    account, status, enabled, plan, version, created_at, changed_at, rate, burst = row
    return AccountRow(
        account,
        status,
        bool(enabled),
        plan,
        int(version),
        created_at,
        changed_at,
        None if rate is None else float(rate),
        None if burst is None else int(burst),
    )


def _next_generation(s: Session) -> None:
    s.execute("UPDATE rules_generation SET generation = generation + 1 WHERE id = 1")


class KeptRules:
    """The rules-as-data methods of a SQL store (mixed into ``SqlStore``)."""

    def _read(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def rules_generation(self) -> int:
        with self._read() as s:
            return int(s.one(SELECT_GENERATION) or 0)

    def accounts(self, account: str | None = None) -> list[AccountRow]:
        with self._read() as s:
            rows = s.execute(
                f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE CAST(? AS TEXT) IS NULL OR account = ? "
                "ORDER BY account",
                (account, account),
            ).fetchall()
        return [_account(row) for row in rows]

    def create_account(self, account: str, plan: str, enabled: bool) -> bool:
        with self._write() as s:
            added = s.execute(
                "INSERT INTO accounts (account, enabled, plan) VALUES (?, ?, ?) "
                "ON CONFLICT (account) DO NOTHING RETURNING 1",
                (account, enabled, plan),
            ).fetchone()
            if added is not None:
                _next_generation(s)
        return added is not None

    def update_account(
        self,
        account: str,
        *,
        status: str | None = None,
        plan: str | None = None,
        enabled: bool | None = None,
        limits: Mapping[str, float | None] | None = None,
    ) -> bool:
        given = dict(limits or {})
        unknown = set(given) - set(LIMIT_FIELDS)
        if unknown:
            raise ValueError(f"not a rate limit column: {sorted(unknown)}")
        # Named from LIMIT_FIELDS only (checked above): the values are parameters.
        setting = "".join(f"{column} = ?, " for column in given)
        with self._write() as s:
            changed = s.execute(
                f"UPDATE accounts SET {setting}status = COALESCE(?, status), plan = COALESCE(?, plan), "
                f"enabled = COALESCE(?, enabled), changed_at = {s.dialect.now} WHERE account = ?",
                (*given.values(), status, plan, enabled, account),
            ).rowcount
            if changed:
                _next_generation(s)
        return bool(changed)

    def delete_account(self, account: str) -> bool:
        with self._write() as s:
            existed = s.one("SELECT 1 FROM accounts WHERE account = ?", (account,)) is not None
            for table in ACCOUNT_TABLES:
                s.execute(f"DELETE FROM {table} WHERE account = ?", (account,))
            _next_generation(s)
        return existed

    def publish_rules(
        self,
        account: str,
        expected: int,
        content: str,
        author: str | None,
        message: str | None,
        restored_from: int | None = None,
    ) -> int:
        with self._write() as s:
            s.execute(
                "INSERT INTO accounts (account, enabled, plan) VALUES (?, ?, ?) "
                "ON CONFLICT (account) DO NOTHING",
                (account, True, DEFAULT_PLAN),
            )
            moved = s.execute(
                f"UPDATE accounts SET version = version + 1, changed_at = {s.dialect.now} "
                "WHERE account = ? AND version = ?",
                (account, expected),
            ).rowcount
            if not moved:
                current = int(s.one("SELECT version FROM accounts WHERE account = ?", (account,)) or 0)
                raise StaleVersion(account, expected, current)
            s.execute(
                "INSERT INTO rule_versions (account, version, content, author, message, restored_from) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (account, expected + 1, content, author, message, restored_from),
            )
            _next_generation(s)
        return expected + 1

    def rules_versions(self, account: str, limit: int = 50, before: int | None = None) -> list[RulesVersion]:
        with self._read() as s:
            rows = s.execute(
                f"SELECT {_VERSION_COLUMNS} FROM rule_versions WHERE account = ? AND version < ? "
                "ORDER BY version DESC LIMIT ?",
                (account, before if before is not None else 2**62, limit),
            ).fetchall()
        return [RulesVersion(*row) for row in rows]

    def rules_version(self, account: str, version: int) -> RulesVersion | None:
        with self._read() as s:
            row = s.execute(
                f"SELECT {_VERSION_COLUMNS} FROM rule_versions WHERE account = ? AND version = ?",
                (account, version),
            ).fetchone()
        return RulesVersion(*row) if row else None

    def current_rules(self) -> Iterator[tuple[AccountRow, str | None]]:
        """Every account with the content of its current version (None before the first)."""
        with self._read() as s:
            rows = s.execute(
                f"SELECT {', '.join('a.' + c for c in _ACCOUNT_COLUMNS.split(', '))}, v.content "
                "FROM accounts a LEFT JOIN rule_versions v "
                "ON v.account = a.account AND v.version = a.version "
                "ORDER BY a.account"
            ).fetchall()
        return iter([(_account(row[:-1]), row[-1]) for row in rows])

    def save_draft(
        self, account: str, draft: str, base_version: int, content: str, author: str | None
    ) -> None:
        with self._write() as s:
            s.execute(
                "INSERT INTO rule_drafts (account, draft, base_version, content, author) "
                "VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (account, draft) DO UPDATE SET base_version = excluded.base_version, "
                f"content = excluded.content, author = excluded.author, changed_at = {s.dialect.now}",
                (account, draft, base_version, content, author),
            )

    def drafts(self, account: str) -> list[Draft]:
        with self._read() as s:
            rows = s.execute(
                f"SELECT {_DRAFT_COLUMNS} FROM rule_drafts WHERE account = ? ORDER BY draft", (account,)
            ).fetchall()
        return [Draft(*row) for row in rows]

    def delete_draft(self, account: str, draft: str) -> bool:
        with self._write() as s:
            return bool(
                s.execute(
                    "DELETE FROM rule_drafts WHERE account = ? AND draft = ?", (account, draft)
                ).rowcount
            )
