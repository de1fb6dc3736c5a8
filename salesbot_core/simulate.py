"""A dry run of one bot: who would get which records, without writing to the store.

``simulate`` opens an ``Engine`` on the store for dry runs only and decides the records
with ``Engine.simulate``: all in one store transaction that is rolled back at the end
(``Store.dry_run``), so the simulation goes on from the real rotation state, switches,
open records and caps usage, on SQLite and PostgreSQL alike, and nothing is written. A
store that does not exist is not created: the simulation starts from an empty store.
Observers (``salesbot_after_assign``) are not called for simulated events.

>>> result = simulate("rulesets", "salesbot.db", "default", "inbound", 30)  # doctest: +SKIP
>>> result.users                                                             # doctest: +SKIP
{'anna': 10, 'bartek': 10, 'celina': 10}
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engine import Engine
from .errors import EventError, SalesbotError
from .models import Bot, EventKind, Outcome
from .rulesets import Rules
from .tally import Tally
from .vocabulary import DEFAULT_SIMULATE_COUNT

__all__ = [
    "RejectedRecord",
    "SimulatedRecord",
    "SimulationResult",
    "simulate",
    "simulate_on",
    "synthetic_records",
]

#: How many synthetic records ``simulate`` makes when given no records.
DEFAULT_COUNT = DEFAULT_SIMULATE_COUNT
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
class RejectedRecord:
    """A record the engine would reject, with its position or line number."""

    number: int
    message: str


@dataclass
class SimulationResult:
    """The outcome of a dry run of one bot."""

    account: str
    bot: Bot
    #: The bot's decisions counted (per status, and per owner).
    tally: Tally = field(default_factory=Tally)
    records: list[SimulatedRecord] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)
    #: Entry-point plugins that failed to load (the simulation ran without them).
    plugin_failures: list[str] = field(default_factory=list)

    @property
    def users(self) -> dict[str, int]:
        """Records each user would get: the pool in pool order (0 included), then any
        other owner (a fallback owner outside the pool)."""
        users = dict.fromkeys(self.bot.users, 0)
        for (_, _, owner), n in sorted(self.tally.assigned.items()):
            users[owner] = n
        return users

    @property
    def statuses(self) -> Counter[str]:
        """Records per decision status; ``duplicate`` if an event id was already processed."""
        return self.tally.statuses

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
        return self.tally.line(self.total, "records", len(self.rejected), zero_rejected=False)


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

    ``db`` is any store (a SQLite path, a store URL): it is opened for a dry run only
    (``Engine.simulate``), so nothing is written to it, and a SQLite file that does not
    exist is not created. ``plugins``, ``block`` and ``autoload`` are passed to the
    ``Engine``. Raises ``SalesbotError`` (an unknown bot, an invalid ruleset, a store
    that cannot be read).
    """
    with Engine(rulesets, db, plugins=plugins, block=block, autoload=autoload, dry_run=True) as engine:
        return simulate_on(engine, account, bot_id, records)


def simulate_on(
    engine: Engine,
    account: str,
    bot_id: str,
    records: int | Iterable[Mapping[str, Any]] | Path = DEFAULT_COUNT,
) -> SimulationResult:
    """``simulate`` on an open engine (a service's): a dry run through ``Engine.simulate``,
    writing nothing. ``SalesbotError`` for an unknown bot."""
    bot = engine.rules.bot(account, bot_id)
    if bot is None:
        raise SalesbotError(f"no bot {bot_id!r} in account {account!r}")
    result = SimulationResult(account, bot, plugin_failures=engine.plugin_failures)
    kind: EventKind = "created" if "created" in bot.trigger.events else bot.trigger.events[0]
    numbers: list[int] = []
    events: list[Any] = []
    for number, item in _numbered(bot, records):
        if isinstance(item, RejectedRecord):
            result.rejected.append(item)
        elif not isinstance(item, Mapping):
            result.rejected.append(RejectedRecord(number, "a record must be a JSON object"))
        else:
            record = {"entity": bot.entity, **item, "owners": [bot.owner_ref]}
            numbers.append(number)
            events.append(
                {"id": f"{EVENT_PREFIX}{number}", "kind": kind, "account": account, "record": record}
            )
    for number, event, decided in zip(numbers, events, engine.simulate(events), strict=True):
        if isinstance(decided, EventError):
            result.rejected.append(RejectedRecord(number, str(decided)))
        else:
            result.records.append(
                _simulated(result.tally, bot, number, str(event["record"].get("id")), decided)
            )
    result.rejected.sort(key=lambda r: r.number)
    return result


def _simulated(tally: Tally, bot: Bot, number: int, record_id: str, outcome: Outcome) -> SimulatedRecord:
    """Count the bot's decision of ``outcome`` and say what it was for one record."""
    decision = tally.add(outcome, bot.id)
    if outcome.duplicate:
        return SimulatedRecord(number, record_id, None, "duplicate", "event id already processed")
    if decision is None:  # not expected: the bot is the record's owner
        return SimulatedRecord(number, record_id, None, "no_bot", "")
    return SimulatedRecord(number, record_id, decision.owner, decision.status, decision.reason)


def _numbered(bot: Bot, records: int | Iterable[Mapping[str, Any]] | Path) -> Iterator[tuple[int, object]]:
    """``(number, record)`` pairs; a line of a file that is not JSON comes as ``RejectedRecord``."""
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
                        yield number, RejectedRecord(number, f"not valid JSON: {exc}")
        except (OSError, UnicodeDecodeError) as exc:
            raise SalesbotError(f"cannot read records file {str(records)!r}: {exc}") from None
    else:
        yield from enumerate(records, 1)
