"""The pure core: given an event, the rules and the stored state, decide every change.

Nothing here reads or writes a database or a file; the engine hands in what it read
inside its transaction (the stored record, its linked records, the strategy states, the
bot switches) and writes back what ``decide`` returns. That keeps the decision testable
on its own and identical whichever store sits behind it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pluggy

from .catalog import Catalog
from .conditions import ConditionError
from .entities import EntityHandler, LinkRef
from .errors import EventError, PluginError
from .fields import ANSWERS_FOR, fields_set
from .models import (
    BOT_PREFIX,
    USER_PREFIX,
    AccountSettings,
    Bot,
    Decision,
    Event,
    Outcome,
    Release,
    User,
    record_from_dict,
)
from .rulesets import Rules, condition_key, field_condition_key
from .strategy import Context, RecordT, SelectRequest
from .templates import MAX_NOTE_BYTES, MAX_NOTIFICATION_BYTES, record_values, render


@dataclass(frozen=True)
class WallNote:
    """A wall note to write on a record."""

    ref: LinkRef
    text: str
    bot: str


@dataclass(frozen=True)
class Decided:
    """Everything ``decide`` wants written, in one transaction."""

    record: RecordT
    outcome: Outcome
    states: Mapping[str, dict[str, Any]]
    #: Linked records whose owners or tags changed.
    linked: list[RecordT] = field(default_factory=list)
    notes: list[WallNote] = field(default_factory=list)
    #: ``(user, text)`` to put in the outbox.
    notifications: list[tuple[str, str]] = field(default_factory=list)
    #: Which owners of each record written a bot gave, ``{user: bot id}`` (see ``GIVEN_BY``).
    given: Mapping[LinkRef, Mapping[str, str]] = field(default_factory=dict)
    #: A bot took its owner back and sends the record back to the pool: it is to be
    #: decided again as routed (``Engine.route``), reading the routing bots' state.
    reroute: bool = False


@dataclass(frozen=True)
class Reassign:
    """A record handed on because its owner missed a deadline (``Engine.tick``)."""

    #: The owner it is taken from: never picked again by this decision.
    previous: str
    #: Why, in words ("reassigned: no contact within 2h"): the reason's first words.
    note: str
    #: ``fallback`` or ``stay`` after the last reassignment; ``None`` for a new pick.
    final: str | None = None


@dataclass(frozen=True)
class Reads:
    """What the engine read from the store, inside the event's transaction, for ``decide``."""

    #: The time, the linked records, the load and the usage: what hooks see too.
    context: Context
    #: The bots that may fire (``Decider.bots_that_may_fire``), found once per event.
    bots: list[Bot] = field(default_factory=list)
    #: The owners the store had for the record; None when it is new.
    previous_owners: list[str] | None = None
    #: The strategy state of each bot that may fire.
    states: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Bots switched on or off since the rules were loaded.
    switches: Mapping[str, bool] = field(default_factory=dict)
    #: Which owners of the record and of its linked records a bot gave, by record.
    given: Mapping[LinkRef, Mapping[str, str]] = field(default_factory=dict)
    #: Set when a missed deadline hands the record on (the bot fires whatever its
    #: trigger's events, since it already took this record once).
    reassign: Reassign | None = None


@dataclass(frozen=True, slots=True)
class BotPlan:
    """What a bot's rules say once, at load, for every event it sees: the decision core
    reads these plain values per event instead of working them out of the ruleset's
    models again (its pool, its texts, its switched copies...)."""

    bot: Bot
    #: The bot as a switch in the store may have it: ``{active: bot}`` (the ruleset's own
    #: model for its own ``active``, a copy made once for the other).
    switched: Mapping[bool, Bot]
    #: The pool's users the rules declare, in pool order: each user's switch key in the
    #: store, ``active`` as the rules declare it, ``{active: user}`` as ``switched``, and
    #: the plugin fields the bot and the user set (``fields.fields_set``): which hook
    #: implementations may answer about the user as a candidate (``fields.answers_for``).
    pool: tuple[tuple[str, bool, Mapping[bool, User], frozenset[tuple[str, str]]], ...]
    #: The ids of the pool, for membership tests.
    in_pool: frozenset[str]
    #: The key the bot's ``trigger.where`` is compiled under.
    condition: str
    #: The trigger conditions a firing bot meets, in words, that do not depend on the
    #: event: what follows ``event 'created'``, and the ``trigger.where`` line (or None).
    events_met: str
    where_met: str | None
    #: ``actions.related``'s options as ``EntityHandler.links`` reads them.
    related: Mapping[str, bool]
    #: What the bot's templates may show of the bot.
    values: Mapping[str, Any]
    #: Its strategy reads the pool's open records (``Strategy.needs_load``).
    loads: bool
    #: The pool's users with a field that counts their usage (``FieldSpec.counts_usage``)
    #: set: the engine reads their counts for each event.
    capped: tuple[User, ...]
    #: The plugin fields the bot and its pool's users set: which implementations of the
    #: hooks asked once per bot may answer for it.
    fields: frozenset[tuple[str, str]]

    @classmethod
    def of(cls, bot: Bot, account: str, rules: Rules, catalog: Catalog) -> BotPlan:
        """The plan of ``bot``, a bot of ``account`` in ``rules``."""
        users = [user for user in map(lambda u: rules.user(account, u), bot.users) if user is not None]
        counted = [spec for spec in catalog.fields_of("user").values() if spec.counts_usage]
        strategy = catalog.strategies.get(bot.strategy)
        where = bot.trigger.where
        sets = fields_set("bot", bot)
        pool = tuple((USER_PREFIX + u.id, u.active, _both(u), sets | fields_set("user", u)) for u in users)
        return cls(
            bot=bot,
            switched=_both(bot),
            pool=pool,
            in_pool=frozenset(bot.users),
            condition=condition_key(account, bot.id),
            events_met=f"is one of {bot.trigger.events}",
            where_met=None if where is None else f"trigger.where {json.dumps(where, sort_keys=True)} matched",
            related=bot.actions.related.model_dump(include={"persons", "company"}),
            values={"id": bot.id, "name": bot.display_name, "entity": bot.entity},
            loads=strategy is not None and strategy.needs_load,
            capped=tuple(
                user
                for user in users
                if any(user.plugin_fields.get(spec.key) is not None for spec in counted)
            ),
            fields=sets.union(*(fields for *_, fields in pool)),
        )


def _both(model: Any) -> dict[bool, Any]:
    """``{active: model}`` for both values of ``active``: the model itself for its own."""
    other = model.model_copy(update={"active": not model.active})
    return {model.active: model, other.active: other}


@dataclass(frozen=True)
class Decider:
    """Decides what the bots set on a record do: triggers, conditions, candidates, strategy.

    It decides only; the engine reads what it needs and writes what it decided."""

    rules: Rules
    catalog: Catalog
    hook: pluggy.HookRelay
    #: The accounts with a bot that may get due items (``FieldSpec.sets_deadlines``).
    _deadlines: frozenset[str] = field(init=False, repr=False)
    #: Each bot's plan, by ``(account, bot id)``, made the first time the bot is decided
    #: (loading 10,000 bots makes none).
    _plans: dict[tuple[str, str], BotPlan] = field(init=False, repr=False, default_factory=dict)
    #: The ``firstresult`` hooks called without pluggy's machinery (``firsts``), by hook
    #: name and argument names.
    _firsts: dict[tuple[str, tuple[str, ...]], FirstResult] = field(
        init=False, repr=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        specs = [spec for spec in self.catalog.fields_of("bot").values() if spec.sets_deadlines]
        accounts = {
            account
            for (account, _), bot in self.rules.bots.items()
            if any(bot.plugin_fields.get(spec.key) is not None for spec in specs)
        }
        object.__setattr__(self, "_deadlines", frozenset(accounts))

    def plan(self, account: str, bot: Bot) -> BotPlan:
        """The plan of ``bot``, a bot of ``account`` in these rules."""
        key = (account, bot.id)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = BotPlan.of(
                self.rules.bot(account, bot.id) or bot, account, self.rules, self.catalog
            )
        return plan

    def has_deadlines(self, account: str) -> bool:
        """Whether a bot of ``account`` may have given a record a deadline to keep."""
        return account in self._deadlines

    def first(self, name: str, *names: str) -> Callable[..., Any]:
        """The ``firstresult`` hook ``name``, to call with the values of ``names`` in that
        order (see ``_first_result``), every implementation of it."""
        return self.firsts(name, *names).call

    def firsts(self, name: str, *names: str) -> FirstResult:
        """The ``firstresult`` hook ``name`` as ``FirstResult``: made once, and again when
        its implementations change (a plugin registered or unregistered since)."""
        caller = getattr(self.hook, name)
        impls = caller.get_hookimpls()
        known = self._firsts.get((name, names))
        if known is None or known.impls != impls:
            known = self._firsts[(name, names)] = FirstResult(caller, impls, names)
        return known

    def bots_that_may_fire(self, event: Event, route: bool) -> list[Bot]:
        """The bots ``decide`` may run: those in the Owner field or, when routing a record
        with none, the account's bots for its entity in priority order."""
        account, record = event.account, event.record
        named = [self.rules.bot(account, bot_id) for bot_id in record.bot_ids()]
        if any(bot is None for bot in named):  # the engine validates events first
            raise ValueError(f"an owner of event {event.id!r} is not a bot of account {account!r}")
        if named or not route:
            return [bot for bot in named if bot is not None]
        bots = [bot for bot in self.rules.account_bots(account) if bot.entity == record.entity]
        return sorted(bots, key=lambda bot: bot.priority)  # stable: ties keep file order

    def decide(self, event: Event, reads: Reads, route: bool = False) -> Decided:
        """Decide the new owners of ``event.record`` and of its linked records.

        Every bot set as an owner is replaced by its pick or removed: a bot never stays an
        owner. With ``route``, a record with no bot among its owners is routed: the
        account's bots for its entity are tried in priority order and the first that
        applies decides, as CRM assignment rules do.
        """
        record = event.record
        handler = self.catalog.entities[record.entity]
        owners = list(record.owners)
        tags = list(record.tags)
        # Each bot's decision as the fields of a ``Decision``: the outcome is validated once.
        decisions: list[dict[str, Any]] = []
        new_states: dict[str, dict[str, Any]] = {}
        changed: dict[LinkRef, RecordT] = {}
        notes: list[WallNote] = []
        notifications: list[tuple[str, str]] = []
        ref: LinkRef = (record.entity, record.id)
        # The hooks' context, bound to this record's plugin-field conditions: one per event.
        context = replace(reads.context, matches=self.field_matcher(event))
        released = self._released(event, reads, context)
        for bot, user, release in released:
            owners.remove(user)
            decisions.append(self._release(event, bot, handler, user, release, notes, notifications))
        reroute = any(release.reroute for _, _, release in released)
        # A bot that only took its owner back leaves the record without it; one that sends
        # it back to the pool has it routed, although the owners are not in ``changed``.
        routing = route and not record.bot_ids() and (reroute or not released)
        trigger_event = event.model_copy(update={"changed": None}) if reroute else event
        # Routing bots were read for a routed event; they stay idle when a bot only took
        # its owner back.
        for bot in reads.bots if routing or record.bot_ids() else []:
            plan = self.plan(event.account, bot)
            bot = plan.switched[reads.switches.get(bot.id, bot.active)]
            owned = [o for o in owners if not o.startswith(BOT_PREFIX)] if routing else []
            reasons = self._why_not(
                trigger_event, bot, handler, reads.context.now, owned, reads.reassign is not None
            )
            if routing and reasons:
                decisions.append({"bot": bot.id, "status": "not_applied", "reason": "; ".join(reasons)})
                continue
            if routing:  # the first bot that applies takes the record, as if set as owner
                single = not self.rules.account_settings(event.account).multiple_owners
                owners = [bot.owner_ref] if single else [*owners, bot.owner_ref]
            if reasons:
                fields: dict[str, Any] = {
                    "bot": bot.id,
                    "status": "not_applied",
                    "reason": "; ".join(reasons),
                }
            elif reads.reassign is not None and reads.reassign.final is not None:
                fields = _final(bot, reads.reassign)
            else:
                fields = self._pick(
                    event,
                    plan,
                    bot,
                    handler,
                    reads,
                    context,
                    [o for o in owners if not o.startswith(BOT_PREFIX)],
                )
                if reads.reassign is not None:
                    fields["reason"] = "; ".join(filter(None, [reads.reassign.note, fields.get("reason")]))
            at = owners.index(bot.owner_ref)
            owner = fields.get("owner")
            if owner is None or owner in owners:
                del owners[at]
            else:
                owners[at] = owner
            if owner is not None:
                new_states[bot.id] = fields.get("state_after", {})
                tags = _with(tags, bot.actions.tag)
                fields |= self._act(
                    event, plan, handler, owner, reads.context.linked, changed, notes, notifications
                )
            further = (
                self.hook.salesbot_keep_routing(
                    bot=bot, event=event, decision=Decision.model_validate(fields)
                )
                if routing and fields["status"] == "no_candidate"
                else None
            )
            if further:
                fields["reason"] = f"{fields.get('reason', '')}; routing goes on: {further}"
            decisions.append(fields)
            if routing and not further:
                break
        restored: list[str] = []
        if not owners and reads.previous_owners and not released:
            # A bot that did not apply must not leave the record ownerless: it keeps the
            # owners it had before the bot was set.
            owners = restored = [o for o in reads.previous_owners if not o.startswith(BOT_PREFIX)]
        # An owner a bot gave stays one it gave while the host keeps it; one the host
        # dropped and set again was set by hand. This event's picks are the bots' own.
        kept = {*record.owners, *restored}
        given = {user: bot_id for user, bot_id in reads.given.get(ref, {}).items() if user in kept}
        given |= {d["owner"]: d["bot"] for d in decisions if d.get("owner") is not None}
        # The decider worked on plain values; the outcome, what leaves the core, is
        # validated here, once, its decisions with it.
        outcome = Outcome.model_validate(
            {
                "event_id": event.id,
                "account": event.account,
                "entity": record.entity,
                "record_id": record.id,
                "kind": event.kind,
                "at": reads.context.now,
                "owners_before": list(record.owners),
                "owners_after": owners,
                "decisions": decisions,
                "rules_version": self.rules.versions.get(event.account),
                "leaving": event.leaving,
            }
        )
        written = {ref: owners, **{key: linked.owners for key, linked in changed.items()}}
        return Decided(
            record.model_copy(update={"owners": owners, "tags": tags}),
            outcome,
            new_states,
            _differing(changed, reads.context.linked),
            notes,
            notifications,
            given={
                key: {
                    u: b for u, b in (given if key == ref else reads.given.get(key, {})).items() if u in now
                }
                for key, now in written.items()
            },
            reroute=reroute,
        )

    def pick_now(self, event: Event, bot: Bot, reads: Reads) -> Decision:
        """Whom ``bot`` would pick for ``event``'s record if it fired, whatever its switch and
        trigger say: its candidates, each skipped user with the engine's reason, and the
        strategy's pick (the admin page's "pool now" and "next in rotation")."""
        context = replace(reads.context, matches=self.field_matcher(event))
        handler = self.catalog.entities[event.record.entity]
        plan = self.plan(event.account, bot)
        return Decision.model_validate(self._pick(event, plan, bot, handler, reads, context, []))

    def _released(self, event: Event, reads: Reads, context: Context) -> list[tuple[Bot, str, Release]]:
        """The owners bots gave the record that it stopped matching, ``(bot, user, release)``
        each, as ``salesbot_stopped_matching`` says: only on an event that sets no bot (a
        bot in the Owner field decides afresh), for owners the host still lists."""
        account, record = event.account, event.record
        if record.bot_ids() or not self.rules.account_settings(account).enabled:
            return []
        found = []
        for user, bot_id in reads.given.get((record.entity, record.id), {}).items():
            bot = self.rules.bot(account, bot_id)
            if user not in record.owners or bot is None or not reads.switches.get(bot.id, bot.active):
                continue
            release = self.hook.salesbot_stopped_matching(
                bot=bot,
                event=event,
                record=record,
                owner=user,
                matches=self._matches(event, bot),
                context=context,
            )
            if release is not None:
                found.append((bot, user, release))
        return found

    def _release(
        self,
        event: Event,
        bot: Bot,
        handler: EntityHandler,
        user: str,
        release: Release,
        notes: list[WallNote],
        notifications: list[tuple[str, str]],
    ) -> dict[str, Any]:
        """The decision of a bot taking back ``user`` (a ``Decision``'s fields), with its
        wall note and notification."""
        values = self._values(event, self.plan(event.account, bot), handler, user)
        note = render(release.note, values, limit=MAX_NOTE_BYTES) if release.note else None
        if note is not None:
            notes.append(WallNote((event.record.entity, event.record.id), note, bot.id))
        notification = (
            render(release.notify, values, limit=MAX_NOTIFICATION_BYTES) if release.notify else None
        )
        if notification is not None:
            notifications.append((user, notification))
        return {
            "bot": bot.id,
            "status": "unassigned",
            "removed": user,
            "reason": release.reason,
            "note": note,
            "notification": notification,
        }

    def _why_not(
        self,
        event: Event,
        bot: Bot,
        handler: EntityHandler,
        at: datetime,
        owned: list[str],
        reassigning: bool = False,
    ) -> list[str]:
        """The reasons the bot must not fire for this event (none: it fires). ``owned``:
        the users who own the record being routed; ``reassigning``: a missed deadline
        hands the record on."""
        account, record = event.account, event.record
        settings = self.rules.account_settings(account)
        reason = (
            _trigger_reason(event, bot, settings, handler, reassigning)
            or _owned_reason(bot, owned)
            or self._applies(self.plan(account, bot).fields)(bot, event, record, settings, handler, at)
        )
        if reason:
            return [reason]
        return [] if self._matches(event, bot) else ["the record does not match trigger.where"]

    def _applies(self, fields: frozenset[tuple[str, str]]) -> Callable[..., str | None]:
        """``salesbot_bot_applies`` for a bot and pool that set ``fields``."""
        applies = self.firsts("salesbot_bot_applies", "bot", "event", "record", "settings", "handler", "at")
        return applies.given(fields) or _none

    def _matches(self, event: Event, bot: Bot) -> bool:
        """Whether the record matches the bot's ``trigger.where`` (true without one)."""
        try:
            return self.rules.conditions.matches(
                self.plan(event.account, bot).condition, event.record.condition_fields()
            )
        except ConditionError as exc:
            raise EventError(
                f"event {event.id!r}: field 'record': bot {bot.id!r} cannot test its trigger.where "
                f"on this record: {exc}"
            ) from None

    def _pick(
        self,
        event: Event,
        plan: BotPlan,
        bot: Bot,
        handler: EntityHandler,
        reads: Reads,
        context: Context,
        owners: list[str],
    ) -> dict[str, Any]:
        """Who the candidates of a firing bot are, and whom it picks: the fields of its
        ``Decision``.

        ``owners`` are the record's users beside the bot (multiple-owner accounts): they
        already have the record, so picking one would waste a turn of the rotation, add
        nobody and notify them of a record they own.
        """
        record, switches = event.record, reads.switches
        state = dict(reads.states.get(bot.id, {}))
        pool = [(both[switches.get(key, declared)], fields) for key, declared, both, fields in plan.pool]
        skipped: dict[str, dict[str, str]] = {
            user: _skip(user, "already an owner of the record") for user in owners if user in plan.in_pool
        }
        if reads.reassign is not None and reads.reassign.previous in plan.in_pool:
            skipped[reads.reassign.previous] = _skip(
                reads.reassign.previous, "the owner it is taken from (deadline missed)"
            )
        # Each candidate is asked of only the implementations that may answer about it.
        skips = self.firsts("salesbot_skip_candidate", "bot", "record", "user", "context")
        availables = self.firsts("salesbot_user_available", "user", "at")
        for user, sets in pool:
            if user.id in skipped:
                continue
            skip, available = skips.given(sets), availables.given(sets)
            reason = (None if skip is None else skip(bot, record, user, context)) or (
                None if available is None else available(user, context.now)
            )
            if reason:
                skipped[user.id] = _skip(user.id, reason)
        candidates = [user.id for user, _ in pool if user.id not in skipped]
        prefer = self.firsts("salesbot_prefer_candidates", "bot", "record", "candidates", "context")
        if len(candidates) > 1 and (aside_of := prefer.given(plan.fields)) is not None:
            aside = aside_of(bot, record, tuple(candidates), context)
            if aside and (set(aside) - set(candidates) or set(aside) >= set(candidates)):
                raise PluginError(
                    f"a prefer plugin set aside {sorted(aside)} for bot {bot.id!r}: it may set "
                    f"aside only some of its candidates {candidates}, never all"
                )
            skipped |= {user: _skip(user, reason) for user, reason in (aside or {}).items()}
            candidates = [user for user in candidates if user not in skipped]
        fields: dict[str, Any] = {
            "bot": bot.id,
            "status": "no_candidate",
            "strategy": bot.strategy,
            "conditions": _conditions(event, plan, handler),
            "candidates": candidates,
            "skipped": [skipped[u] for u in bot.users if u in skipped],
            "state_before": state,
            "state_after": state,
        }
        if not candidates:
            if bot.fallback is not None and bot.fallback in owners:
                fields["reason"] = (
                    f"no user in the pool is eligible, and the fallback owner "
                    f"{bot.fallback!r} already owns the record"
                )
            elif bot.fallback is not None:
                fields["status"] = "fallback"
                fields["owner"] = bot.fallback
                fields["reason"] = "no user in the pool is eligible: the bot's fallback owner"
            else:
                fields["reason"] = "no user in the pool is eligible"
            return fields

        preselect = self.firsts("salesbot_preselect", "bot", "record", "candidates", "context")
        pick = (preselect.given(plan.fields) or _none)(bot, record, candidates, context)
        chooser = "a preselect plugin"
        if pick is None:
            chooser = f"strategy {bot.strategy!r}"
            pick = self.catalog.strategies[bot.strategy].select(
                SelectRequest(bot, record, tuple(candidates), state, context, self.catalog.strategies)
            )
        if pick.user not in candidates:
            raise PluginError(
                f"{chooser} picked {pick.user!r} for bot {bot.id!r}, "
                f"who is not one of its candidates {candidates}"
            )
        fields["status"] = "assigned"
        fields["owner"] = pick.user
        fields["reason"] = pick.reason
        if chooser != "a preselect plugin":
            fields["state_after"] = dict(pick.state)
        return fields

    def field_matcher(self, event: Event) -> Callable[[Bot, str, str], bool]:
        """``Context.matches`` for ``event``'s record: the conditions of plugin fields."""
        # The record's flat fields are made on the first test only: most events test none.
        fields: list[dict[str, Any]] = []

        def matches(bot: Bot, key: str, path: str) -> bool:
            compiled = field_condition_key(event.account, bot.id, key, path)
            if compiled not in self.rules.conditions:
                raise LookupError(f"bot {bot.id!r} has no condition {key}.{path}")
            if not fields:
                fields.append(event.record.condition_fields())
            try:
                return self.rules.conditions.matches(compiled, fields[0])
            except ConditionError as exc:
                raise EventError(
                    f"event {event.id!r}: field 'record': bot {bot.id!r} cannot test its "
                    f"{key}.{path} on this record: {exc}"
                ) from None

        return matches

    def _act(
        self,
        event: Event,
        plan: BotPlan,
        handler: EntityHandler,
        picked: str,
        linked: Mapping[LinkRef, RecordT],
        changed: dict[LinkRef, RecordT],
        notes: list[WallNote],
        notifications: list[tuple[str, str]],
    ) -> dict[str, Any]:
        """The bot's actions for its pick, linked records, tag, wall note and
        notification: the fields they add to its ``Decision``."""
        record, actions = event.record, plan.bot.actions
        multiple = self.rules.account_settings(event.account).multiple_owners
        changes: list[dict[str, Any]] = []
        for ref in handler.links(record, plan.related):
            current = (
                changed.get(ref) or linked.get(ref) or record_from_dict({"entity": ref[0], "id": ref[1]})
            )
            if event.leaving is not None and event.leaving not in current.owners:
                continue  # an offboarding moves the leaver's records only
            # A single-owner account has one way: the picked user becomes the owner. Only
            # a multiple-owner account asks the bot's mode (the loader checked it exists),
            # on the owners without the leaver, who is taken off as from the record itself.
            if multiple:
                staying = [owner for owner in current.owners if owner != event.leaving]
                owners = self.catalog.propagation_modes[actions.related.mode].apply(staying, picked)
            else:
                owners = [picked]
            changes.append(
                {
                    "entity": ref[0],
                    "record_id": ref[1],
                    "owners_before": list(current.owners),
                    "owners_after": owners,
                }
            )
            changed[ref] = current.model_copy(
                update={"owners": owners, "tags": _with(current.tags, actions.tag)}
            )

        values = self._values(event, plan, handler, picked) if actions.note or actions.notify else {}
        note = render(actions.note, values, limit=MAX_NOTE_BYTES) if actions.note else None
        if note is not None:
            notes += [WallNote((record.entity, record.id), note, plan.bot.id)]
            notes += [WallNote((c["entity"], c["record_id"]), note, plan.bot.id) for c in changes]
        notification = (
            render(actions.notify, values, limit=MAX_NOTIFICATION_BYTES) if actions.notify else None
        )
        if notification is not None:
            notifications.append((picked, notification))
        return {"related": changes, "tag": actions.tag, "note": note, "notification": notification}

    def _values(
        self, event: Event, plan: BotPlan, handler: EntityHandler, owner: str
    ) -> dict[str, Mapping[str, Any]]:
        """What a bot's note and notification templates may show about ``owner``."""
        record, user = event.record, self.rules.user(event.account, owner)
        return {
            "bot": plan.values,
            "owner": {
                "id": owner,
                "name": user.display_name if user else owner,
                "email": user.email if user else None,
            },
            "record": {**record_values(record.model_dump()), "label": handler.label(record)},
        }


def _final(bot: Bot, reassign: Reassign) -> dict[str, Any]:
    """The last step of a missed deadline, as a ``Decision``'s fields: the bot's fallback
    owner, or nothing moves."""
    if reassign.final == "fallback" and bot.fallback is not None and bot.fallback != reassign.previous:
        return {
            "bot": bot.id,
            "status": "fallback",
            "owner": bot.fallback,
            "reason": f"{reassign.note}; no reassignment left: the bot's fallback owner",
        }
    return {
        "bot": bot.id,
        "status": "not_applied",
        "reason": f"{reassign.note}; no reassignment left: stays with {reassign.previous}",
    }


def _skip(user: str, reason: str) -> dict[str, str]:
    """A pool member left out, and why: a ``Skip``'s fields."""
    return {"user": user, "reason": reason}


class FirstResult:
    """A ``firstresult`` hook called without pluggy's machinery (see ``_first_result``),
    with the implementations it was made of."""

    __slots__ = ("_by_fields", "call", "caller", "impls", "names")

    def __init__(self, caller: pluggy.HookCaller, impls: list[Any], names: tuple[str, ...]) -> None:
        self.caller, self.impls, self.names = caller, impls, names
        #: The hook, every implementation of it.
        self.call = _first_result(caller, impls, names)
        self._by_fields: dict[frozenset[tuple[str, str]], Callable[..., Any] | None] = {}

    def given(self, fields: frozenset[tuple[str, str]]) -> Callable[..., Any] | None:
        """The hook for a bot and users that set the plugin fields ``fields``: only the
        implementations that may answer for them (``fields.answers_for``), or ``None``
        when none may. Made once per set of fields."""
        try:
            return self._by_fields[fields]
        except KeyError:
            pass
        # A wrapper wraps every implementation, and one with default arguments gets
        # pluggy's own call (``_first_result``): then they are all called.
        wrapped = _needs_pluggy(self.impls)
        kept = [
            impl
            for impl in self.impls
            if wrapped or (read := getattr(impl.function, ANSWERS_FOR, None)) is None or read & fields
        ]
        made = _first_result(self.caller, kept, self.names) if kept != self.impls else self.call
        self._by_fields[fields] = made if kept else None
        return self._by_fields[fields]


def _none(*args: Any) -> None:
    """A ``firstresult`` hook with no implementation that may answer."""
    return None


def _needs_pluggy(impls: list[Any]) -> bool:
    """Whether an implementation wraps the others or has default arguments: then the hook
    gets pluggy's own call."""
    return any(impl.hookwrapper or impl.wrapper or impl.kwargnames for impl in impls)


def _first_result(caller: pluggy.HookCaller, impls: list[Any], names: tuple[str, ...]) -> Callable[..., Any]:
    """A ``firstresult`` hook with implementations ``impls``, to call with the values of
    ``names`` in that order, as pluggy would: each implementation given the arguments it
    takes, in pluggy's order (the last registered first) until one answers. Pluggy's own
    call costs several times a plain call, paid per candidate and per event; with no
    implementation nothing is called at all. An implementation that wraps the others
    (``hookwrapper``/``wrapper``) gets pluggy's own call."""
    if _needs_pluggy(impls):
        return lambda *args: caller(**dict(zip(names, args, strict=True)))
    # Each implementation's arguments as positions in ``names``; ``None`` when it takes
    # them all in that order (they are passed on as they came, no list per call).
    plain = [
        (
            impl.function,
            None if tuple(impl.argnames) == names else tuple(names.index(n) for n in impl.argnames),
        )
        for impl in reversed(impls)
    ]

    def call(*args: Any) -> Any:
        for function, positions in plain:
            answer = function(*args) if positions is None else function(*[args[i] for i in positions])
            if answer is not None:
                return answer
        return None

    return call


def _trigger_reason(
    event: Event, bot: Bot, settings: AccountSettings, handler: EntityHandler, reassigning: bool = False
) -> str | None:
    """Why the bot must not fire by its switches and its ``trigger``, or ``None``.

    In the core, not in a plugin: these are what the core's own fields (``active``,
    ``entity``, ``trigger``) and the add-on switch mean, and blocking a plugin must
    never make a switched-off bot fire, nor a bot fire on events its trigger excludes.
    """
    record = event.record
    if not settings.enabled:
        return f"the Sales Bot add-on is switched off for account {event.account!r}"
    if not bot.active:
        return "the bot is switched off"
    if record.entity != bot.entity:
        return f"the bot handles {bot.entity} records, not {record.entity} records"
    if event.kind not in bot.trigger.events and not reassigning:
        return f"the bot does not fire on {event.kind!r} events"
    if event.kind == "updated" and event.changed is not None and "owners" not in event.changed:
        return "the update did not change the owners"
    processes = bot.trigger.processes
    if processes is not None and handler.process(record) not in processes:
        return f"process {handler.process(record)!r} is not one of {processes}"
    return None


def _owned_reason(bot: Bot, owned: list[str]) -> str | None:
    """Why a routing bot must leave a record users own (a person's assignment is never
    overridden), or ``None``. In the core: blocking a plugin must never let a bot take
    records from people."""
    if owned and bot.trigger.owned == "leave":
        return f"owned by a user ({', '.join(owned)}); the bot leaves owned records (trigger.owned: leave)"
    return None


def _conditions(event: Event, plan: BotPlan, handler: EntityHandler) -> list[str]:
    """The trigger conditions a firing bot met, in words, for the audit trail."""
    met = [f"event {event.kind!r} {plan.events_met}"]
    processes = plan.bot.trigger.processes
    if processes is not None:
        met.append(f"process {handler.process(event.record)!r} is one of {processes}")
    if plan.where_met is not None:
        met.append(plan.where_met)
    return met


def _differing(changed: Mapping[LinkRef, RecordT], stored: Mapping[LinkRef, RecordT]) -> list[RecordT]:
    """The linked records to write: new ones, and stored ones whose owners or tags the
    bots changed (the only fields ``_act`` sets). A company that already had the picked
    user and the tag (every deal of it after the first, in a list operation) costs no
    write at all."""
    return [
        record
        for ref, record in changed.items()
        if (old := stored.get(ref)) is None or (old.owners, old.tags) != (record.owners, record.tags)
    ]


def _with(tags: list[str], tag: str | None) -> list[str]:
    return tags if tag is None or tag in tags else [*tags, tag]
