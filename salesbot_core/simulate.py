"""A dry run of one bot: who would get which records, without writing to the real store.

``simulate`` opens an ``Engine`` on an in-memory copy of a SQLite store file (made with
SQLite's backup API from a read-only connection), so the simulation goes on from the real
rotation state, switches, open records and caps usage, while every write lands in
memory. A store file that does not exist is not created: the simulation starts from an
empty store. Observers (``salesbot_after_assign``) are not called for simulated events.

>>> result = simulate("rulesets", "salesbot.db", "default", "inbound", 30)  # doctest: +SKIP
>>> result.users                                                             # doctest: +SKIP
{'anna': 10, 'bartek': 10, 'celina': 10}
"""

from __future__ import annotations

import importlib
import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from .engine import Engine
from .errors import EventError, SalesbotError, StoreError
from .models import Bot, EventKind
from .rulesets import Rules
from .store import Store

__all__ = ["Rejected", "SimulatedRecord", "SimulationResult", "simulate", "synthetic_records"]

#: How many synthetic records ``simulate`` makes when given no records.
DEFAULT_COUNT = 100
#: Prefix of the event id of each simulated record: ``simulate-<n>``.
EVENT_PREFIX = "simulate-"


@dataclass(frozen=True)
class SimulatedRecord:
    """What the bot decided for one simulated record."""

    #: The record's position (synthetic records, a list) or line number (a JSON Lines file).
    number: int
    record_id: str
    #: Who would own it, or None when the bot would not assign it.
    owner: str | None
    #: The decision status (``assigned``, ``fallback``, ``not_applied``, ``no_candidate``).
    status: str
    reason: str


@dataclass(frozen=True)
class Rejected:
    """A record the engine would reject, with its position or line number."""

    number: int
    message: str


@dataclass
class SimulationResult:
    """The outcome of a dry run of one bot."""

    account: str
    bot: Bot
    #: Records each user would get: the pool in pool order (0 included), then any other
    #: owner (a fallback owner outside the pool).
    users: dict[str, int]
    #: Records per decision status; ``duplicate`` if an event id was already processed.
    statuses: Counter[str] = field(default_factory=Counter)
    records: list[SimulatedRecord] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    #: Entry-point plugins that failed to load (the simulation ran without them).
    plugin_failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Records simulated, rejected ones included."""
        return len(self.records) + len(self.rejected)

    @property
    def assigned(self) -> int:
        """Records that would get an owner (picked or fallback)."""
        return sum(self.users.values())

    def summary(self) -> str:
        """One line: ``100 records: 97 assigned, 3 not applied, 1 rejected``."""
        parts = [f"{n} {status.replace('_', ' ')}" for status, n in sorted(self.statuses.items())]
        if self.rejected:
            parts.append(f"{len(self.rejected)} rejected")
        return f"{self.total} records: " + (", ".join(parts) or "none")


def synthetic_records(bot: Bot, count: int) -> list[dict[str, Any]]:
    """``count`` records of the bot's entity, ``sim-1``, ``sim-2``..., with the bot as owner.

    Deals get a title and, when the bot fires only for some sales processes, the first
    of them. Nothing is done about ``trigger.where``: records it does not match are not
    applied (pass real-looking records to simulate such a bot).
    """
    records: list[dict[str, Any]] = []
    for n in range(1, count + 1):
        record: dict[str, Any] = {"entity": bot.entity, "id": f"sim-{n}", "owners": [bot.owner_ref]}
        if bot.entity == "deal":
            record["title"] = f"Simulated deal {n}"
            if bot.trigger.processes:
                record["process"] = bot.trigger.processes[0]
        records.append(record)
    return records


def simulate(
    rulesets: str | Path | Rules,
    db: str | Path,
    account: str,
    bot_id: str,
    records: int | Iterable[Mapping[str, Any]] | Path = DEFAULT_COUNT,
    *,
    plugins: Iterable[object] = (),
    block: Iterable[str] = (),
    autoload: bool | None = None,
) -> SimulationResult:
    """Run ``records`` through bot ``bot_id`` of ``account`` on a copy of the store ``db``.

    ``records`` is a number of synthetic records (see ``synthetic_records``), records as
    dicts (like an event's ``record``; numbered from 1), or a ``Path`` to a JSON Lines
    file of them (numbered by line). Each record's owners are replaced by the bot, and it
    becomes a ``created`` event (or the first event kind the bot fires on) with the id
    ``simulate-<n>``. A record the engine rejects is listed in ``rejected``.

    ``db`` is a SQLite file path or a ``sqlite:///`` URL; it is only read. ``plugins``,
    ``block`` and ``autoload`` are passed to the ``Engine``. Raises ``SalesbotError``
    (an unknown bot, an invalid ruleset, a store that cannot be read).
    """
    # The built-in store plugin, found by name as the registry finds it.
    sqlite_store = importlib.import_module("salesbot_plugins.sqlite_store")
    store = sqlite_store.SQLiteStore(":memory:")
    try:
        engine = Engine(rulesets, cast(Store, store), plugins=plugins, block=block, autoload=autoload)
    except BaseException:
        store.close()
        raise
    with engine:
        _silence_observers(engine)
        bot = engine.rules.bot(account, bot_id)
        if bot is None:
            raise SalesbotError(f"no bot {bot_id!r} in account {account!r}")
        _copy_store(db, store._conn, sqlite_store.SCHEMA)
        result = SimulationResult(account, bot, dict.fromkeys(bot.users, 0))
        result.plugin_failures = engine.plugin_failures
        kind: EventKind = "created" if "created" in bot.trigger.events else bot.trigger.events[0]
        for number, item in _numbered(bot, records):
            if isinstance(item, Rejected):
                result.rejected.append(item)
                continue
            if not isinstance(item, Mapping):
                result.rejected.append(Rejected(number, "a record must be a JSON object"))
                continue
            record = {"entity": bot.entity, **item, "owners": [bot.owner_ref]}
            event = {"id": f"{EVENT_PREFIX}{number}", "kind": kind, "account": account, "record": record}
            try:
                outcome = engine.handle(event)
            except EventError as exc:
                result.rejected.append(Rejected(number, str(exc)))
                continue
            record_id = str(record.get("id"))
            if outcome.duplicate:
                result.statuses["duplicate"] += 1
                result.records.append(
                    SimulatedRecord(number, record_id, None, "duplicate", "event id already processed")
                )
                continue
            decision = next((d for d in outcome.decisions if d.bot == bot.id), None)
            if decision is None:  # not expected: the bot is the record's owner
                result.statuses["no_bot"] += 1
                result.records.append(SimulatedRecord(number, record_id, None, "no_bot", ""))
                continue
            result.statuses[decision.status] += 1
            if decision.owner is not None:
                result.users[decision.owner] = result.users.get(decision.owner, 0) + 1
            result.records.append(
                SimulatedRecord(number, record_id, decision.owner, decision.status, decision.reason)
            )
    return result


def _numbered(bot: Bot, records: int | Iterable[Mapping[str, Any]] | Path) -> Iterator[tuple[int, object]]:
    """``(number, record)`` pairs; a line of a file that is not JSON comes as ``Rejected``."""
    if isinstance(records, int):
        yield from enumerate(synthetic_records(bot, records), 1)
    elif isinstance(records, Path):
        try:
            with records.open(encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        yield number, json.loads(line)
                    except json.JSONDecodeError as exc:
                        yield number, Rejected(number, f"not valid JSON: {exc}")
        except (OSError, UnicodeDecodeError) as exc:
            raise SalesbotError(f"cannot read records file {str(records)!r}: {exc}") from None
    else:
        yield from enumerate(records, 1)


def _sqlite_path(db: str | Path) -> Path:
    """The file of a SQLite store given as a path or a ``sqlite:///path[?options]`` URL."""
    url = str(db)
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :].partition("?")[0])
    if "://" in url:
        raise StoreError(f"{url!r}: simulate works on SQLite store files only")
    return Path(url)


def _copy_store(db: str | Path, memory: sqlite3.Connection, schema: str) -> None:
    """Copy the SQLite store file ``db`` (if it exists) into the ``memory`` connection.

    The file is opened read-only and never written; SQLite may create the empty ``-wal``
    and ``-shm`` files a WAL database has beside it while it is open (the next process
    that writes to the store removes them when it closes).
    """
    path = _sqlite_path(db)
    if str(path) == ":memory:" or not path.exists():
        return
    try:
        source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            source.backup(memory)
        finally:
            source.close()
        # The backup replaced the schema too: a file from an older salesbot may lack
        # newer tables, which are added in memory as the store would add them on disk.
        memory.executescript(schema)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read SQLite store {str(path)!r}: {exc}") from None


def _silence_observers(engine: Engine) -> None:
    """Simulated events must not reach observers (metrics, live notifications)."""
    pm = engine.registry.pm
    observers = [impl.plugin for impl in pm.hook.salesbot_after_assign.get_hookimpls()]
    vars(pm.hook)["salesbot_after_assign"] = pm.subset_hook_caller("salesbot_after_assign", observers)
