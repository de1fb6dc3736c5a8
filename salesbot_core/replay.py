"""What if: the account's real history replayed under candidate rules, writing nothing.

The stores keep the payload of each processed event for a while (``Store.kept_events``,
``SALESBOT_EVENT_RETENTION_DAYS``). A replay takes the events of one account in a window,
in the order they were processed, and decides them again with ``Engine.simulate`` on an
engine of the candidate rules over an empty in-memory store: nothing reaches the real
store, which is only read, and observers (``salesbot_after_assign``) are not told.

The starting state (see docs/replay.md):

- each candidate bot's rotation is as it was when the window began: the state before the
  bot's first decision in the window, taken from the log, when the bot has the same id
  and strategy (a new bot, or another strategy, starts fresh);
- records, open load and cap usage start empty: what happened before the window is not
  seen, and the candidate rules' ``active`` decide (switches made since are not applied);
- every event is decided at the time it was decided at (its ``at``), routed if it was
  routed, and a list operation's event as it was made: the record as it was stored then,
  with the bot set.

>>> result = replay_store(store, "candidate/", "default", since, until)  # doctest: +SKIP
>>> result.changes[0].candidate                                          # doctest: +SKIP
['bartek']
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .engine import Engine
from .errors import EventError, Problem, RulesetError, SalesbotError
from .limits import MAX_AT, MIN_AT, parse_instant
from .models import Outcome
from .rulesets import SUFFIXES, Rules, max_file_bytes
from .safetext import excerpt
from .store import KeptEvent, Store
from .tally import Tally

__all__ = ["MAX_REPLAY_EVENTS", "OwnerChange", "ReplayResult", "parse_moment", "replay", "replay_store"]

#: The most events one replay decides, and the most bytes of their payloads it holds:
#: the first ones of a larger window are replayed and the result says it was cut
#: (``truncated``).
MAX_REPLAY_EVENTS = 10_000
MAX_REPLAY_BYTES = 64 * 1024 * 1024
#: The most ruleset files a replay over HTTP takes, and the names they may have.
MAX_CANDIDATE_FILES = 50
FILE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}$")
#: ``30d``, ``12h``, ``2w``, ``90m``: a time that long before now.
_AGO = re.compile(r"^(\d{1,6})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: Event ids in the replay: its own, so no two kept events (a host's id, a list
#: operation's) can meet as a redelivery in it.
REPLAY_ID = "replay-{}"
_REPLAYED = re.compile(r"event 'replay-\d+'")


@dataclass(frozen=True)
class OwnerChange:
    """An event whose record would have got other owners under the candidate rules."""

    event_id: str
    kind: str
    entity: str
    record_id: str
    at: datetime | None
    #: The owners the record had after the event, in the log and in the replay.
    actual: list[str]
    candidate: list[str]
    #: Why, in the log and in the replay: each bot's decision in one line.
    actual_reason: str
    candidate_reason: str
    #: The bots that decided in either (a bot's page lists the changes of its own).
    bots: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RejectedEvent:
    """A kept event the candidate rules reject (its bot is gone, say): nothing decided."""

    event_id: str
    message: str


@dataclass
class ReplayResult:
    """The window as it was beside what it would have been."""

    account: str
    since: datetime
    until: datetime
    #: Events replayed (at most ``MAX_REPLAY_EVENTS``).
    events: int = 0
    #: More events were in the window than a replay takes: the first ones were replayed.
    truncated: bool = False
    actual: Tally = field(default_factory=Tally)
    candidate: Tally = field(default_factory=Tally)
    #: Pool users of the candidate bots, so a user who would get nothing is listed too.
    pools: dict[str, list[str]] = field(default_factory=dict)
    changes: list[OwnerChange] = field(default_factory=list)
    rejected: list[RejectedEvent] = field(default_factory=list)
    plugin_failures: list[str] = field(default_factory=list)

    def distribution(self) -> list[tuple[str, str, int, int]]:
        """``(bot, user, as it was, as it would have been)``, by bot then user."""
        keys = {(bot, user) for _, bot, user in (*self.actual.assigned, *self.candidate.assigned)}
        keys |= {(bot, user) for bot, users in self.pools.items() for user in users}
        return [
            (
                bot,
                user,
                self.actual.assigned[(self.account, bot, user)],
                self.candidate.assigned[(self.account, bot, user)],
            )
            for bot, user in sorted(keys)
        ]

    def as_json(self) -> dict[str, Any]:
        """The result as ``salesbot replay --json`` and the service answer it."""
        return {
            "account": self.account,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "events": self.events,
            "truncated": self.truncated,
            "distribution": [
                {"bot": bot, "user": user, "actual": was, "candidate": would}
                for bot, user, was, would in self.distribution()
            ],
            "statuses": {
                "actual": dict(sorted(self.actual.statuses.items())),
                "candidate": dict(sorted(self.candidate.statuses.items())),
            },
            "changes": [
                {
                    "event_id": c.event_id,
                    "kind": c.kind,
                    "entity": c.entity,
                    "record_id": c.record_id,
                    "at": c.at.isoformat() if c.at else None,
                    "actual": c.actual,
                    "candidate": c.candidate,
                    "actual_reason": c.actual_reason,
                    "candidate_reason": c.candidate_reason,
                    "bots": c.bots,
                }
                for c in self.changes
            ],
            "rejected": [{"event_id": r.event_id, "message": r.message} for r in self.rejected],
        }


def parse_moment(text: str, now: datetime, option: str) -> datetime:
    """``30d`` (days, or ``m``/``h``/``w``, before ``now``) or an ISO 8601 date or time
    (naive ones are UTC); ``SalesbotError`` naming ``option`` otherwise."""
    text = text.strip()
    moment: datetime | None = None
    if ago := _AGO.match(text):
        with contextlib.suppress(OverflowError):
            moment = now - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
    else:
        with contextlib.suppress(SalesbotError):
            moment = parse_instant(text, option)
    if moment is None or not MIN_AT <= moment <= MAX_AT:
        raise SalesbotError(
            f"{option}: {excerpt(text)} is neither a duration before now (30d, 12h, 2w, 90m) "
            "nor an ISO 8601 date or time (2026-11-01, 2026-11-01T09:00Z) from 1970 to 2200"
        )
    return moment


def replay(
    candidate: Engine, kept: list[KeptEvent], account: str, since: datetime, until: datetime
) -> ReplayResult:
    """Decide the ``kept`` events (in order) on ``candidate``, an engine of the candidate
    rules over an empty store of its own (``candidate_engine``), and compare."""
    kept, truncated = within_bounds(kept)
    result = ReplayResult(
        account,
        since,
        until,
        events=len(kept),
        truncated=truncated,
        pools={bot.id: list(bot.users) for bot in candidate.rules.account_bots(account)},
        plugin_failures=candidate.plugin_failures,
    )
    _seed_rotation(candidate, account, kept)
    events = [{**k.payload, "id": REPLAY_ID.format(n)} for n, k in enumerate(kept, 1)]
    decided = candidate.simulate(events, route=[k.routed for k in kept])
    for k, outcome in zip(kept, decided, strict=True):
        actual = k.outcome
        result.actual.add(actual)
        if isinstance(outcome, EventError):
            result.rejected.append(RejectedEvent(actual.event_id, _named(str(outcome), actual.event_id)))
            continue
        result.candidate.add(outcome)
        if outcome.owners_after != actual.owners_after:
            result.changes.append(
                OwnerChange(
                    event_id=actual.event_id,
                    kind=actual.kind,
                    entity=actual.entity,
                    record_id=actual.record_id,
                    at=actual.at,
                    actual=actual.owners_after,
                    candidate=outcome.owners_after,
                    actual_reason=why(actual),
                    candidate_reason=why(outcome),
                    bots=sorted({d.bot for d in (*actual.decisions, *outcome.decisions)}),
                )
            )
    return result


def read_window(store: Store, account: str, since: datetime, until: datetime) -> list[KeptEvent]:
    """The kept events ``replay`` takes, and one more if the window holds more than it
    takes (see ``within_bounds``)."""
    check_window(since, until)
    return store.kept_events(account, since, until, MAX_REPLAY_EVENTS + 1, MAX_REPLAY_BYTES + 1)


def within_bounds(kept: list[KeptEvent]) -> tuple[list[KeptEvent], bool]:
    """The first of ``kept`` within ``MAX_REPLAY_EVENTS`` and ``MAX_REPLAY_BYTES``, and
    whether any was left out."""
    total = 0
    for n, k in enumerate(kept):
        total += k.size
        if n == MAX_REPLAY_EVENTS or total > MAX_REPLAY_BYTES:
            return kept[:n], True
    return kept, False


def _named(message: str, event_id: str) -> str:
    """An engine error about a replayed event, naming the event by its real id."""
    return _REPLAYED.sub(lambda _: f"event {event_id!r}", message)


def why(outcome: Outcome) -> str:
    """Each bot's decision of an outcome in one line (what a replay shows as the reason)."""
    return "; ".join(d.summary() for d in outcome.decisions) or "no bot among the owners"


def _seed_rotation(candidate: Engine, account: str, kept: Iterable[KeptEvent]) -> None:
    """Each candidate bot's rotation as it was when the window began (see the module)."""
    bots = {bot.id: bot for bot in candidate.rules.account_bots(account)}
    states: dict[str, dict[str, Any]] = {}
    for k in kept:
        for d in k.outcome.decisions:
            bot = bots.get(d.bot)
            if bot is not None and d.bot not in states and d.strategy is not None:
                # The first decision of the bot that ran its strategy: what it read.
                states[d.bot] = d.state_before if d.strategy == bot.strategy else {}
    with candidate.store.transaction() as tx:
        for bot_id, state in states.items():
            if state:
                tx.put_state(account, bot_id, state)


def candidate_engine(rulesets: str | Path | Rules, **options: Any) -> Engine:
    """An engine of the candidate rules (a folder, or loaded ``Rules``, which stay the
    caller's to close) over an empty in-memory store (``options`` go to the ``Engine``:
    ``conditions``, ``plugins``...)."""
    return Engine(rulesets, ":memory:", **options)


def replay_store(
    store: Store,
    rulesets: str | Path,
    account: str,
    since: datetime,
    until: datetime,
    **options: Any,
) -> ReplayResult:
    """Replay the events ``store`` kept for ``account`` from ``since`` to ``until`` under
    the rules of the folder ``rulesets``. Reads ``store``; writes nothing to it."""
    kept = read_window(store, account, since, until)
    with candidate_engine(rulesets, **options) as candidate:
        return replay(candidate, kept, account, since, until)


def check_window(since: datetime, until: datetime) -> None:
    if since >= until:
        raise SalesbotError(
            f"the window is empty: since ({since.isoformat()}) is not before until ({until.isoformat()})"
        )


def replay_files(
    files: Mapping[str, str],
    store_events: list[KeptEvent],
    account: str,
    since: datetime,
    until: datetime,
    **options: Any,
) -> ReplayResult:
    """``replay`` under candidate rules given as ruleset file texts by name (the service's
    request): each is bounded and validated as a ruleset file is, and an error names the
    file by its given name, the bot and the field."""
    if not files:
        raise RulesetError([Problem("files", "give at least one ruleset file")])
    if len(files) > MAX_CANDIDATE_FILES:
        raise RulesetError([Problem("files", f"{len(files)} files; at most {MAX_CANDIDATE_FILES}")])
    limit = max_file_bytes()
    problems = []
    for name, text in files.items():
        if not FILE_NAME.match(name) or Path(name).suffix not in SUFFIXES:
            problems.append(
                Problem(
                    name[:100], "a file name is letters, digits, '_', '-', '.' ending in .yaml, .yml or .toml"
                )
            )
        elif len(text.encode("utf-8", "surrogatepass")) > limit:
            problems.append(Problem(name, f"the file is over {limit} bytes"))
    if problems:
        raise RulesetError(problems)
    with tempfile.TemporaryDirectory(prefix="salesbot-replay-") as folder:
        for name, text in files.items():
            (Path(folder) / name).write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            # Rules from a caller: a condition that would crash durable-rules crashes a
            # child process instead of this worker, and is refused by name.
            candidate = candidate_engine(folder, untrusted=True, **options)
        except RulesetError as exc:
            # Named as the caller named them: the server's folder is nobody's business.
            raise RulesetError(
                [
                    Problem(
                        str(Path(p.file).name) if p.file.startswith(folder) else p.file,
                        p.message,
                        p.bot,
                        p.field,
                    )
                    for p in exc.problems
                ]
            ) from None
    with candidate:
        return replay(candidate, store_events, account, since, until)
