"""Rules kept in the store: the ``Engine`` mixin that reads, checks and publishes them.

An engine made with ``Engine(None, store)`` takes every account's rules from the store
(``salesbot_core.rulebook``, ``Store.accounts``), not from a folder. Each event reads
the store's rules generation in its first round trip (``Transaction.outcome(rules=True)``);
when another process published since, the engine reads the accounts' current versions
again before it decides, so every worker decides under a published version from its
next event on, and each outcome names the version (``Outcome.rules_version``).

A publish is validated first by the same code as a ruleset file (in a child process for
durable-rules, as rules from tenants are untrusted input), then written as a
compare-and-set on the version the editor read (``StaleVersion`` if another editor
published meanwhile).
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import rulebook
from .errors import Problem, RulesetError, SalesbotError, StaleVersion
from .limits import MAX_ROW_ID
from .reloading import RulesStatus
from .rulebook import NotFound, Rulebook
from .rulesets import Rules, build_rules, parse_data
from .safetext import excerpt
from .store import AccountRow, Draft, RulesVersion, Store

if TYPE_CHECKING:
    from .catalog import Catalog

_log = logging.getLogger("salesbot.rules")

#: What ``RulesStatus.folder`` says of rules kept in the store.
IN_STORE = "(store)"


class RulesInFolder(SalesbotError):
    """The engine runs on a folder of files: its rules are edited there, not here."""


class Managing:
    """The rules-in-the-store part of ``Engine``."""

    store: Store
    catalog: Catalog
    rules: Rules
    rules_status: RulesStatus
    _conditions: str
    _in_store: bool
    _generation: int
    _accounts: dict[str, AccountRow]

    @abstractmethod
    def _swap_rules(self, rules: Rules) -> None:
        """The engine's: run on ``rules`` from now on (with their decider)."""

    @property
    def rules_in_store(self) -> bool:
        """Whether the rules are kept in the store (else: a folder, or rules handed in)."""
        return self._in_store

    def _rules_from_store(self) -> tuple[Rules, tuple[Problem, ...], dict[str, AccountRow]]:
        """Every account's current rules, built together; an account whose stored version
        no longer loads (a plugin it needs was removed) is left out and named."""
        parsed = []
        problems: list[Problem] = []
        accounts: dict[str, AccountRow] = {}
        for row, content in self.store.current_rules():
            accounts[row.account] = row
            name = rulebook.file_name(row.account)
            data = rulebook.as_file(row.account, rulebook.loads(content), row.plan, row.enabled)
            found, found_problems = parse_data(name, data, self.catalog)
            problems += found_problems
            if found is not None:
                parsed.append((name, found))
        versions = {row.account: row.version for row in accounts.values()}
        try:
            rules = build_rules(parsed, self.catalog, [], IN_STORE, self._conditions, False, versions)
        except RulesetError as exc:
            broken = {problem.file for problem in exc.problems}
            problems += exc.problems
            parsed = [(name, found) for name, found in parsed if name not in broken]
            rules = build_rules(parsed, self.catalog, [], IN_STORE, self._conditions, False, versions)
        return rules, tuple(problems), accounts

    def refresh_rules(self, generation: int | None = None, *, force: bool = False) -> bool:
        """Read the accounts' rules again if the store's generation moved (or is not
        ``generation``, read by the caller), or always with ``force``; returns whether it
        did. Rules from a folder are reloaded by ``reload`` instead."""
        if not self._in_store:
            return False
        if generation is None:
            generation = self.store.rules_generation()
        if generation == self._generation and not force:
            return False
        rules, problems, accounts = self._rules_from_store()
        self._swap_rules(rules)
        self._generation, self._accounts = generation, accounts
        now = datetime.now(UTC)
        names = tuple(f"{a}@{row.version}" for a, row in accounts.items())
        self.rules_status = RulesStatus(IN_STORE, now, names, now, problems)
        for problem in problems:
            _log.warning("account rules left out: %s", problem)
        return True

    def account(self, account: str) -> AccountRow:
        """The account's standing as the store keeps it (``NotFound`` if it has none)."""
        rows = self.store.accounts(account)
        if not rows:
            raise NotFound(f"no account {excerpt(account)}")
        return rows[0]

    def kept_account(self, account: str) -> AccountRow | None:
        """The account's row as of the rules the engine runs on (read with them, so this
        reads no store, and is safe from any thread: the rows are replaced whole); None
        for rules from a folder, or an account the store does not keep."""
        return self._accounts.get(account) if self._in_store else None

    def suspended(self, account: str) -> bool:
        """Whether the account is suspended (as of the rules the engine runs on)."""
        row = self.kept_account(account)
        return row is not None and row.status == "suspended"

    def rulebook(self, account: str, version: int | None = None) -> tuple[int, Rulebook]:
        """The account's rules document at ``version`` (its current one by default), and
        that version's number."""
        row = self.account(account)
        number = row.version if version is None else version
        if number == 0:
            return 0, rulebook.empty()
        # A number no store could hold (SQLite's integers end at 2**63 - 1) names no version.
        kept = self.store.rules_version(account, number) if 0 < number <= MAX_ROW_ID else None
        if kept is None:
            raise NotFound(f"account {excerpt(account)} has no rules version {number}")
        return number, rulebook.loads(kept.content)

    def check_rulebook(
        self,
        account: str,
        book: Mapping[str, Any],
        *,
        isolated: bool = True,
        plan: str | None = None,
        enabled: bool | None = None,
    ) -> Rules:
        """The rules of ``book`` for ``account``, validated and compiled as files are
        (``RulebookError`` naming each field); the caller closes their conditions.
        ``isolated``: durable-rules compiles them in a child process first. ``plan`` and
        ``enabled``: the account's standing to check them under (its own by default)."""
        row = self.account(account)
        return rulebook.check(
            account,
            book,
            self.catalog,
            plan=row.plan if plan is None else plan,
            enabled=row.enabled if enabled is None else enabled,
            conditions=self._conditions,
            isolated=isolated,
        )

    def require_store(self) -> None:
        """``RulesInFolder`` unless the rules are kept in the store (they are edited here)."""
        if not self._in_store:
            raise RulesInFolder(
                f"the rules come from the folder {self.rules_status.folder!r}: edit its files there, or move "
                "them into the store with `salesbot rules push` and serve with --rules-from store"
            )

    def publish(
        self,
        account: str,
        book: Mapping[str, Any],
        expected: int,
        *,
        author: str | None = None,
        message: str | None = None,
        restored_from: int | None = None,
    ) -> int:
        """Make ``book`` the account's rules, as the version after ``expected`` (the one
        the editor read: ``StaleVersion`` if it is no longer current), once valid
        (``RulebookError``). Returns the account's version after it: the same one when
        ``book`` changes nothing (and is no restore)."""
        self.require_store()
        current, before = self.rulebook(account)
        if current != expected:
            raise StaleVersion(account, expected, current)
        book = rulebook.normalized(book)
        self.check_rulebook(account, book).conditions.close()
        if restored_from is None and rulebook.dumps(book) == rulebook.dumps(before):
            return current
        version = self.store.publish_rules(
            account, expected, rulebook.dumps(book), author, message, restored_from
        )
        self.refresh_rules()
        return version

    def restore(
        self,
        account: str,
        version: int,
        expected: int,
        *,
        author: str | None = None,
        message: str | None = None,
    ) -> int:
        """Publish an earlier version's rules again, as a new version."""
        _, book = self.rulebook(account, version)
        return self.publish(
            account,
            book,
            expected,
            author=author,
            message=message or f"restore version {version}",
            restored_from=version,
        )

    def versions(self, account: str, limit: int = 50, before: int | None = None) -> list[RulesVersion]:
        """The account's versions, newest first (``NotFound`` for no such account)."""
        self.account(account)
        if before is not None and before > MAX_ROW_ID:
            before = None  # every version is before a number past any a store holds
        return self.store.rules_versions(account, limit, before)

    def version_diff(self, account: str, version: int, against: int | None = None) -> list[dict[str, Any]]:
        """What ``version`` changed from ``against`` (the version before it by default)."""
        _, after = self.rulebook(account, version)
        _, before = self.rulebook(account, version - 1 if against is None else against)
        return rulebook.diff(before, after)

    # -- Drafts: edits gathered before one publish.

    def draft(self, account: str, draft: str) -> Draft:
        for kept in self.store.drafts(account):
            if kept.draft == draft:
                return kept
        raise NotFound(f"account {excerpt(account)} has no draft {excerpt(draft)}")

    def save_draft(
        self, account: str, draft: str, book: Mapping[str, Any], base: int, *, author: str | None = None
    ) -> None:
        """Keep a draft on version ``base``; it is checked when previewed or published."""
        self.require_store()
        self.account(account)
        self.store.save_draft(account, draft, base, rulebook.dumps(rulebook.normalized(book)), author)

    def publish_draft(
        self, account: str, draft: str, *, author: str | None = None, message: str | None = None
    ) -> int:
        """Publish a draft as one version (``StaleVersion`` if its base is no longer
        current), then remove it."""
        kept = self.draft(account, draft)
        version = self.publish(
            account, rulebook.loads(kept.content), kept.base_version, author=author, message=message
        )
        self.store.delete_draft(account, draft)
        return version
