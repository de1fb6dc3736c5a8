"""``Engine.offboard`` and the users' switches: a user switched off, their records moved.

Why separate: offboarding is a bulk operation over a user's open records, built on the
event path's list operations (``Engine._assign_batch``); the event's path reads better
without it. A mixin of ``Engine``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Container, Sequence
from functools import partial
from typing import Any, NamedTuple, cast

from .errors import IdempotencyConflict, SalesbotError
from .models import USER_PREFIX, Bot, EntityType, Outcome, User, list_event_id
from .retrying import retrying
from .rulesets import Rules
from .store import Store, Switch, Transaction


class Moved(NamedTuple):
    """A record an offboarding took from the user, as its outcome wrote it."""

    entity: str
    id: str
    #: Its owners after the move.
    owners: list[str]
    #: The bot that gave it its new owner, and whom; ``None`` when the user was only taken
    #: off, beside owners it had (a multiple-owner record whose bot did not apply).
    bot: str | None
    given: str | None
    #: ``(entity, id)`` of the user's record whose bot passed the new owner on to this
    #: linked record; ``None`` for a record moved by its own event.
    passed_on_from: tuple[str, str] | None = None

    def summary(self) -> dict[str, Any]:
        """As JSON (an entry of ``Offboarded.summary``'s ``moved_records``)."""
        source = self.passed_on_from
        return {
            "entity": self.entity,
            "id": self.id,
            "owners": self.owners,
            "bot": self.bot,
            "passed_on_from": {"entity": source[0], "id": source[1]} if source else None,
        }


class Left(NamedTuple):
    """An open record that stays with the user, and why."""

    entity: str
    id: str
    reason: str


class Offboarded(NamedTuple):
    """What ``Engine.offboard`` did, over every run of the operation so far."""

    #: One per record this run gave to a bot (a rerun of the same operation skips the
    #: records it already took: they are no longer the user's).
    outcomes: list[Outcome]
    #: Every record the operation took from the user, each once, by entity and id: its own
    #: move, or a linked record's owner passed on to it, as the outcomes wrote them.
    moved_records: list[Moved]
    #: The user's open records that stay with them: no active bot could take them (none
    #: assigned them, and ``to_bot`` was not given or cannot), or their bot did not.
    left: list[Left]
    #: Records still to move because ``limit`` ended this run: run the operation again.
    remaining: int = 0
    #: The outcomes of earlier runs of the same operation, oldest first.
    earlier: Sequence[Outcome] = ()

    def moved(self) -> dict[str, dict[str, int]]:
        """How many records each bot gave to whom over every run of the operation (the
        linked records it passed its pick on to included), so a rerun answers as the
        first run did."""
        counts: dict[str, dict[str, int]] = {}
        for record in self.moved_records:
            if record.bot is not None and record.given is not None:
                per_bot = counts.setdefault(record.bot, {})
                per_bot[record.given] = per_bot.get(record.given, 0) + 1
        return {bot: dict(sorted(owners.items())) for bot, owners in sorted(counts.items())}

    def summary(self) -> dict[str, Any]:
        """The operation so far as JSON (``salesbot user offboard --json``, the API): the
        same whichever run of the operation answers, once ``done``."""
        return {
            "moved": self.moved(),
            "records_moved": len(self.moved_records),
            "moved_records": [record.summary() for record in self.moved_records],
            "left": [{"entity": e, "id": record_id, "reason": why} for e, record_id, why in self.left],
            "remaining": self.remaining,
            "done": self.remaining == 0,
        }


def written(user: str, outcomes: Sequence[Outcome]) -> dict[tuple[str, str], Moved | Left]:
    """What ``outcomes`` (an offboarding's, oldest first) did with each record of ``user``
    they wrote: moved (by its own event or passed on from a linked record), or left with
    them, with the decisions' reasons. The last write of a record tells."""
    fates: dict[tuple[str, str], Moved | Left] = {}
    for outcome in outcomes:
        ref = (outcome.entity, outcome.record_id)
        if user in outcome.owners_after:
            why = "; ".join(decision.summary() for decision in outcome.decisions) or "no bot decided"
            fates[ref] = Left(*ref, why)
        elif outcome.assigned:
            [decision, *_] = outcome.assigned
            fates[ref] = Moved(*ref, outcome.owners_after, decision.bot, decision.owner)
        else:
            fates[ref] = Moved(*ref, outcome.owners_after, None, None)
        for decision in outcome.decisions:
            for change in decision.related:
                if user in change.owners_before and user not in change.owners_after:
                    fates[(change.entity, change.record_id)] = Moved(
                        change.entity,
                        change.record_id,
                        change.owners_after,
                        decision.bot,
                        decision.owner,
                        ref,
                    )
    return fates


class UserState(NamedTuple):
    """A user of an account now: on or off (ruleset or switch), and the switch, which
    keeps who set it and when (``None`` if never switched)."""

    user: User
    active: bool
    switch: Switch | None

    def summary(self) -> dict[str, Any]:
        """As JSON (``salesbot user list --json``, the API's ``GET /users``)."""
        return {
            "id": self.user.id,
            "name": self.user.display_name,
            "active": self.active,
            "switched_by": self.switch.by if self.switch else None,
            "switched_at": self.switch.at if self.switch else None,
        }


class Offboarding:
    """Offboarding and the users' switches, and what they need of the engine."""

    rules: Rules
    store: Store

    @abstractmethod
    def bots(self, account: str) -> list[tuple[Bot, bool]]: ...

    @abstractmethod
    def _assign_batch(
        self,
        account: str,
        entity: EntityType,
        ids: list[str],
        bot_id: str,
        operation: str,
        multiple: bool,
        without: str | None = None,
    ) -> list[Outcome]: ...

    @abstractmethod
    def _assign_in(
        self,
        tx: Transaction,
        account: str,
        entity: EntityType,
        ids: list[str],
        bot_id: str,
        operation: str,
        multiple: bool,
        without: str | None = None,
    ) -> list[Outcome]: ...

    @abstractmethod
    def _observe(self, outcomes: list[Outcome]) -> None: ...

    def set_user_active(self, account: str, user_id: str, active: bool, by: str | None = None) -> None:
        """Switch a user on or off, overriding the ruleset's ``active`` until switched again:
        a user switched off gets no new record (``salesbot user activate``/``offboard``).
        ``by`` names who did it (``cli``, ``api``): the store keeps it with the time."""
        if self.rules.user(account, user_id) is None:
            raise SalesbotError(f"no user {user_id!r} in account {account!r}")
        self.store.set_switch(account, USER_PREFIX + user_id, active, by)

    def users(self, account: str) -> list[UserState]:
        """Each user of an account, in file order: active now, and who switched them when."""
        switches = self.store.switches(account)
        return [
            UserState(user, switch.active if switch else user.active, switch)
            for (acc, user_id), user in self.rules.users.items()
            if acc == account
            for switch in (switches.get(USER_PREFIX + user_id),)
        ]

    def offboard(
        self,
        account: str,
        user_id: str,
        operation: str,
        *,
        to_bot: str | None = None,
        batch_size: int = 500,
        progress: Callable[[int, int], None] | None = None,
        limit: int | None = None,
        by: str | None = None,
    ) -> Offboarded:
        """Switch a user off and redistribute every open record they own.

        Each record goes through the bot that assigned it to the user if that bot is
        active, else through ``to_bot``; each is a pick of its own (audit, note,
        notification), the user skipped as deactivated, so a bot spreads the records as its
        strategy does (round robin: evenly). Records are committed ``batch_size`` at a time
        as a list operation ``operation``: a rerun (after a crash) finishes what is left and
        moves nothing twice. ``progress(done, total)`` is called after each batch. With
        ``limit``, at most that many records move in this run (``remaining`` says how many
        are left for the next). ``by`` names who switched the user off.

        Nobody else's records move: a bot passes its pick on only to the linked records the
        user owns (the event names them ``leaving``), taking them off those. The answer is
        what the operation's outcomes wrote, each record once: moved to whom, or left with
        the user and why. An operation id names one user's offboarding: another user's is
        an ``IdempotencyConflict``, raised, like every bad argument, before anything is
        written (the user is not switched off).
        """
        # Every argument is checked before anything is written: the user is not switched
        # off by a call that fails.
        self._check_offboard(account, user_id, to_bot)
        if batch_size < 1 or (limit is not None and limit < 0):
            raise ValueError("batch_size must be at least 1 and limit at least 0")
        # A bad operation id (control characters, too long for a record's event id) is an
        # EventError before anything is written, whether or not the user owns records.
        list_event_id(operation, "deal", "")
        for entity, record_id in retrying(lambda: self.store.open_records(account, user_id)):
            list_event_id(operation, cast(EntityType, entity), record_id)
        earlier = retrying(lambda: self.store.operation_outcomes(account, operation))
        _check_one_user(operation, user_id, earlier)
        self.set_user_active(account, user_id, False, by)
        done_before = {(outcome.entity, outcome.record_id) for outcome in earlier}
        # Read again now the user is off: a record an event gave them meanwhile moves too.
        plan, unplanned = self._plan(account, user_id, to_bot, done_before)
        multiple = self.rules.account_settings(account).multiple_owners
        plan = _first(plan, limit)
        total, done = sum(map(len, plan.values())), 0
        outcomes: list[Outcome] = []
        for bot_id, ids in plan.items():
            entity = self.rules.bots[(account, bot_id)].entity
            for start in range(0, len(ids), batch_size):
                chunk = ids[start : start + batch_size]
                batch = retrying(
                    partial(self._assign_batch, account, entity, chunk, bot_id, operation, multiple, user_id)
                )
                self._observe(batch)
                outcomes += [o for o in batch if not o.duplicate]
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        # The summary is what the outcomes wrote; what is still the user's and none of
        # them decided either had no bot or waits for the next run.
        fates = written(user_id, [*earlier, *outcomes])
        still = [
            ref for ref in retrying(lambda: self.store.open_records(account, user_id)) if ref not in fates
        ]
        left = [fate for fate in fates.values() if isinstance(fate, Left)]
        left += [Left(*ref, unplanned[ref]) for ref in still if ref in unplanned]
        return Offboarded(
            outcomes,
            sorted(fate for fate in fates.values() if isinstance(fate, Moved)),
            sorted(left),
            sum(ref not in unplanned for ref in still),
            earlier,
        )

    def preview_offboard(
        self,
        account: str,
        user_id: str,
        operation: str = "preview",
        *,
        to_bot: str | None = None,
        limit: int | None = None,
    ) -> Offboarded:
        """What ``offboard`` would do now, written nowhere: every open record of the user,
        moved to whom by which bot, or left with them and why (the page shows it before
        the admin confirms). The same plan and the same decisions, made in one
        ``Store.dry_run`` in which the user is switched off, on the store's rotation
        state: the offboarding run next, with nothing decided in between, moves the same.
        With ``limit``, only the records a run with that limit moves are decided
        (``remaining``: the others)."""
        self._check_offboard(account, user_id, to_bot)
        whole, unplanned = self._plan(account, user_id, to_bot, set())
        plan = _first(whole, limit)
        multiple = self.rules.account_settings(account).multiple_owners

        def attempt() -> list[Outcome]:
            outcomes: list[Outcome] = []
            with self.store.dry_run() as tx:
                leaving = cast(Transaction, _Leaving(tx, account, user_id))
                for bot_id, ids in plan.items():
                    entity = self.rules.bots[(account, bot_id)].entity
                    outcomes += self._assign_in(
                        leaving, account, entity, ids, bot_id, operation, multiple, user_id
                    )
            return outcomes

        outcomes = retrying(attempt)
        fates = written(user_id, outcomes)
        left = [fate for fate in fates.values() if isinstance(fate, Left)]
        left += [Left(*ref, why) for ref, why in unplanned.items() if ref not in fates]
        moved = sorted(fate for fate in fates.values() if isinstance(fate, Moved))
        remaining = sum(map(len, whole.values())) - sum(map(len, plan.values()))
        return Offboarded(outcomes, moved, sorted(left), remaining)

    def _check_offboard(self, account: str, user_id: str, to_bot: str | None) -> None:
        if self.rules.user(account, user_id) is None:
            raise SalesbotError(f"no user {user_id!r} in account {account!r}")
        if to_bot is not None and self.rules.bot(account, to_bot) is None:
            raise SalesbotError(f"--to-bot: no bot {to_bot!r} in account {account!r}")

    def _plan(
        self, account: str, user_id: str, to_bot: str | None, done_before: Container[tuple[str, str]]
    ) -> tuple[dict[str, list[str]], dict[tuple[str, str], str]]:
        """Which bot takes each open record of the user (by bot: the record ids), and the
        records no bot takes, with why; ``done_before``: records an earlier run decided."""
        active = {bot.id: on for bot, on in self.bots(account)}
        plan: dict[str, list[str]] = {}
        unplanned: dict[tuple[str, str], str] = {}
        for entity, record_id in retrying(lambda: self.store.open_records(account, user_id)):
            if (entity, record_id) in done_before:
                continue  # its event under this operation was decided: it is not taken again
            bot_id = self._assigned_by(account, entity, record_id, user_id)
            for choice in (bot_id, to_bot):
                bot = self.rules.bot(account, choice) if choice else None
                if bot is not None and active.get(bot.id) and bot.entity == entity:
                    plan.setdefault(bot.id, []).append(record_id)
                    break
            else:
                unplanned[(entity, record_id)] = self._why_left(account, to_bot, active)
        return plan, unplanned

    def _why_left(self, account: str, to_bot: str | None, active: dict[str, bool]) -> str:
        """Why no bot takes a record: none of its own is active, and ``to_bot`` is not
        given, switched off or for another entity."""
        why = "no active bot of its own"
        bot = self.rules.bot(account, to_bot) if to_bot else None
        if bot is None:
            return f"{why}, and no to-bot"
        if not active.get(bot.id):
            return f"{why}, and to-bot {bot.id!r} is switched off"
        return f"{why}, and to-bot {bot.id!r} handles {bot.entity} records"

    def _assigned_by(self, account: str, entity: str, record_id: str, user_id: str) -> str | None:
        """The bot that last gave the record itself to the user, or None."""
        for outcome in reversed(list(self.store.outcomes(account, entity, record_id))):
            if (outcome.entity, outcome.record_id) != (entity, record_id):
                continue  # the owner was passed on from a linked record: not this record's bot
            for decision in outcome.assigned:
                if decision.owner == user_id:
                    return decision.bot
        return None


def _first(plan: dict[str, list[str]], limit: int | None) -> dict[str, list[str]]:
    """The first ``limit`` records of a plan, bot by bot (all of them without a limit)."""
    if limit is None:
        return plan
    budget, capped = limit, {}
    for bot_id, ids in plan.items():
        capped[bot_id] = ids[:budget]
        budget -= len(capped[bot_id])
    return capped


class _Leaving:
    """A transaction in which one user is switched off: an offboarding's preview decides
    as the offboarding will, once it has switched them off, without writing the switch."""

    def __init__(self, tx: Transaction, account: str, user: str):
        self._tx, self._account, self._user = tx, account, user

    def get_switches(self, account: str) -> dict[str, bool]:
        switches = self._tx.get_switches(account)
        if account == self._account:
            switches = {**switches, USER_PREFIX + self._user: False}
        return switches

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)


def _check_one_user(operation: str, user: str, outcomes: Sequence[Outcome]) -> None:
    """An operation id names one user's offboarding: another user's, found in its outcomes,
    is an error naming it (its records' event ids are taken: a record it moved would stay
    with this user, the operation answering it is done)."""
    others = sorted({o.leaving for o in outcomes if o.leaving is not None and o.leaving != user})
    if others:
        raise IdempotencyConflict(
            f"offboarding {operation!r}: field 'operation': operation {operation!r} offboards user "
            f"{others[0]!r}, not {user!r}; take a new operation id"
        )
