"""The plugin contract: every hook salesbot calls, what it receives and what it returns.

Plugins implement these with the public marker ``salesbot_core.hookimpl``. Built-in
plugins use exactly the same hooks as third-party ones, so any of them can be blocked and
replaced; the core names none of them. Hooks return data; the engine validates and applies it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pluggy

from .entities import EntityHandler
from .fields import FieldSpec
from .models import AccountSettings, Bot, Decision, DueItem, Escalation, Event, Outcome, Release, User
from .propagation import PropagationMode
from .store import Store
from .strategy import Context, Pick, RecordT, Strategy

hookspec = pluggy.HookspecMarker("salesbot")
#: The marker plugins use for their hook implementations (``salesbot_core.hookimpl``).
hookimpl = pluggy.HookimplMarker("salesbot")


@hookspec
def salesbot_register_strategies() -> Iterable[Strategy]:
    """Return the selection strategies this plugin provides.

    Called once when an engine starts. All results are collected; two plugins returning
    a strategy of the same name is an error at load. A ruleset bot names the strategy it
    uses (``strategy: <name>``); ``Strategy.select`` gets a ``SelectRequest`` and
    returns a ``Pick``, and must be pure: its state comes in and goes out as data. A
    strategy that takes options gives their pydantic model as ``Strategy(options=Model)``:
    the loader validates each bot's ``options`` through it and ``salesbot schema``
    describes them; ``select`` reads them with ``strategy.options_of(request)``.

    Example::

        @hookimpl
        def salesbot_register_strategies():
            return [Strategy("first", lambda req: Pick(req.candidates[0]))]
    """
    raise NotImplementedError


@hookspec
def salesbot_register_entities() -> Iterable[EntityHandler]:
    """Return the handlers of the record entities this plugin knows.

    Called once when an engine starts; one handler per entity (``deal``, ``person``,
    ``company``, ``task``), a second one for the same entity is an error at load. A
    handler says which linked records each ``actions.related`` option reaches and, for
    deals, which sales process a record is in. A bot for an entity no handler knows is
    a ruleset error.

    Example::

        @hookimpl
        def salesbot_register_entities():
            return [EntityHandler("company", label=lambda company: company.name)]
    """
    raise NotImplementedError


@hookspec
def salesbot_register_propagation_modes() -> Iterable[PropagationMode]:
    """Return the ways a picked owner can be passed on to linked records.

    Called once when an engine starts. A bot's ``actions.related.mode`` names one; it
    applies in multiple-owner accounts (single-owner accounts always replace the linked
    record's owner). ``PropagationMode.apply(owners, picked)`` returns the new owners.
    Built-in: ``add`` and ``replace``.

    Example::

        @hookimpl
        def salesbot_register_propagation_modes():
            return [PropagationMode("first", lambda owners, picked: [picked, *owners])]
    """
    raise NotImplementedError


@hookspec
def salesbot_ruleset_fields() -> Iterable[FieldSpec[Any]]:
    """Return the ruleset keys this plugin owns, each a ``FieldSpec``.

    Called once when an engine starts; all results are collected, and two plugins
    declaring the same key in the same place is an error at load. A ``FieldSpec(place,
    key, type, default)`` says that every ``users`` entry (``place="user"``) or ``bots``
    entry (``"bot"``) of a ruleset file may hold ``key``; the loader validates the value
    through ``type`` (a pydantic model or any type pydantic validates) and reports an
    invalid one with its file, bot and field path, like a core field. The plugin reads the
    validated value with ``spec.get(bot_or_user)``, which gives ``default`` when the key
    is not written. A key whose plugin is blocked is an error naming that plugin, and
    ``salesbot schema`` describes every declared key. Strategies declare their options
    the same way, as ``Strategy(options=Model)``. A bot field whose value holds ``where``
    conditions declares them (``FieldSpec(conditions=...)``): they are checked and
    compiled with the bots' own, and a hook tests one with ``context.matches``. Built-in:
    ``caps`` (capacity), ``working_hours`` and ``out_of_office`` (availability),
    ``sticky`` (sticky), ``members`` (members), ``schedule``, ``fall_through`` and
    ``unassign`` (routing rules).

    Example::

        VIP = FieldSpec("bot", "vip_only", bool, default=False, description="VIP deals only")

        @hookimpl
        def salesbot_ruleset_fields():
            return [VIP]

        @hookimpl
        def salesbot_bot_applies(bot, record):
            return None if not VIP.get(bot) or record.fields.get("vip") else "not a VIP deal"
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def salesbot_bot_applies(
    bot: Bot, event: Event, record: RecordT, settings: AccountSettings, handler: EntityHandler, at: datetime
) -> str | None:
    """Say why ``bot``, set as an owner of ``record`` by ``event``, must not fire.

    ``settings`` are the account's (its ``timezone`` too), ``handler`` the record entity's
    (it reads a deal's sales process), ``at`` the aware time of the event (its ``at``, or
    the engine's clock). Return ``None`` when the bot may fire, or a short reason (shown
    in the outcome and the audit trail) when it must not. ``firstresult``: the first
    reason stops the bot, which is then removed from the owners and the record keeps its
    previous owners (when routing, the next bot by priority is tried). The core checks
    first what no plugin may switch off (the add-on and bot switches, the entity, the
    trigger's events and sales processes, an update that did not change the owners, a
    record a user owns when routing), so blocking a plugin never makes a switched-off bot
    fire. Ruleset ``where`` conditions are evaluated after this. Built-in: a bot's
    ``schedule`` (weekdays and hours in the account's time zone).

    Example::

        @hookimpl
        def salesbot_bot_applies(bot, event, record, at):
            return "weekend" if at.weekday() >= 5 else None
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def salesbot_stopped_matching(
    bot: Bot, event: Event, record: RecordT, owner: str, matches: bool, context: Context
) -> Release | None:
    """Say that ``record`` stopped matching ``bot``, which gave it its owner ``owner``.

    Called on each event that sets no bot, for each current owner a bot gave the record
    (an owner set by hand, or set again by hand after a bot gave it, is never asked
    about), when the add-on and the bot are switched on. ``matches`` is whether the
    record still matches the bot's ``trigger.where`` (true without one); ``context``
    holds the time and what the engine read for the event. Return ``None``
    to leave the owner, or a ``Release``: the bot takes ``owner`` off the record, with
    the release's reason in the outcome (status ``unassigned``), its wall note and its
    notification to ``owner``; with ``reroute``, the record is then routed again by the
    account's bots in priority order, as ``Engine.route`` does. ``firstresult``. Once
    taken off, the owner is no longer one the bot gave, so a redelivered or later event
    never takes it off again. Built-in: a bot's ``unassign`` section (when the record no
    longer matches ``trigger.where``).

    Example::

        @hookimpl
        def salesbot_stopped_matching(bot, record, owner):
            if record.fields.get("status") == "lost":
                return Release(reason="the deal was lost")
            return None
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def salesbot_keep_routing(bot: Bot, event: Event, decision: Decision) -> str | None:
    """Say why routing goes on to the next bot after ``bot`` applied and gave no owner.

    Called when routing (``Engine.route``) and the first bot that applies finds nobody
    eligible in its pool and has no fallback owner (``decision.status`` is
    ``no_candidate``). Return ``None`` to stop there (the default: the record stays as it
    was), or a short reason to try the next bot by priority; the reason is added to the
    bot's decision, and the outcome shows every bot's decision. ``firstresult``.
    Built-in: a bot's ``fall_through: true``.

    Example::

        @hookimpl
        def salesbot_keep_routing(bot, decision):
            return "overflow to the next team" if bot.id.startswith("team-") else None
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def salesbot_skip_candidate(bot: Bot, record: RecordT, user: User, context: Context) -> str | None:
    """Say why pool member ``user`` must not get ``record`` from ``bot``, or return ``None``.

    Called for each pool member still eligible, in pool order; ``context`` holds the time
    and what the engine read (linked records, per-period usage). ``firstresult``: the
    first reason skips the user, and is shown in the outcome. When no candidate is left,
    the bot's fallback owner gets the record, or nobody does and the bot is not left as
    an owner. Built-in: deactivated users (eligibility), users at their capacity cap,
    members whose own ``where`` the record does not match (members).

    Example::

        @hookimpl
        def salesbot_skip_candidate(bot, record, user):
            return "on holiday" if away(user.id) else None
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def salesbot_user_available(user: User, at: datetime) -> str | None:
    """Say why ``user`` is not available at ``at`` (an aware datetime), or return ``None``.

    Called for each candidate left after ``salesbot_skip_candidate``; ``firstresult``: the
    first reason skips the user for this record. This is where a host plugs in its own
    calendar. It runs inside the event's store transaction, which holds the bot's
    rotation lock (on PostgreSQL, row locks other workers wait on): a lookup over the
    network here delays every event of the bot, so keep it fast or cached. Built-in: the
    user's ``out_of_office`` periods and ``working_hours`` in the user's ``timezone``.

    Example::

        @hookimpl
        def salesbot_user_available(user, at):
            return "in a meeting" if calendar.busy(user.email, at) else None
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def salesbot_prefer_candidates(
    bot: Bot, record: RecordT, candidates: Sequence[str], context: Context
) -> Mapping[str, str] | None:
    """Set some eligible candidates aside for the ones the bot prefers for ``record``.

    Called when more than one candidate is left after ``salesbot_skip_candidate`` and
    ``salesbot_user_available``, before ``salesbot_preselect`` and the strategy. Return
    ``{user: reason}`` for the candidates set aside (some, never all: a plugin that would
    set aside everyone returns ``None``), or ``None`` to keep them all. ``firstresult``:
    the first mapping decides; the users in it are shown as skipped with their reason,
    and the others are the candidates. Built-in: a member's ``prefer`` condition
    (members), as Odoo's preferred member domains.

    Example::

        @hookimpl
        def salesbot_prefer_candidates(bot, record, candidates):
            seniors = [u for u in candidates if u.startswith("senior.")]
            if record.fields.get("vip") and seniors and len(seniors) < len(candidates):
                return {u: "a VIP deal goes to a senior" for u in candidates if u not in seniors}
            return None
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def salesbot_preselect(bot: Bot, record: RecordT, candidates: Sequence[str], context: Context) -> Pick | None:
    """Pick an owner before the bot's strategy does, or return ``None`` to let it pick.

    ``candidates`` are user ids, as in ``SelectRequest``. ``firstresult``: the first
    plugin that returns a ``Pick`` (of one of ``candidates``) decides, and the strategy's
    state is left as it was. Built-in: sticky routing, which
    gives a ``sticky`` bot's deal or person to the owner of its linked company when that
    owner is a candidate.

    Example::

        @hookimpl
        def salesbot_preselect(bot, record, candidates, context):
            return Pick("anna", reason="VIP") if record.fields.get("vip") else None
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def salesbot_open_store(url: str, readonly: bool, dry_run: bool) -> Store | None:
    """Open the store for ``url``, or return ``None`` when this plugin does not handle it.

    ``firstresult``: the first plugin that returns a store wins. The built-in SQLite
    store takes a file path or a ``sqlite:///path`` URL and is marked ``trylast`` so any
    other plugin can claim a URL first.

    ``readonly`` is true for commands that only read (``show``, ``explain``, ``outbox
    list``): open an existing store without creating or upgrading anything, so that
    writes fail; a store that does not exist is a ``StoreError``. An implementation that
    does not name ``readonly`` in its signature is not given it (pluggy passes only the
    arguments a hook implementation names) and keeps working.

    ``dry_run`` is true for ``salesbot simulate``: the store is used through
    ``Store.dry_run`` only. Create, upgrade and commit nothing, and leave no file behind
    that was not there (a SQLite file that does not exist is not created: an empty
    in-memory store stands in for it). A plugin that does not name ``dry_run`` opens the
    store as usual; its ``dry_run`` transactions still roll back.

    A store that cannot be opened raises ``StoreError``; ``TransientStoreError`` when
    trying again may do (a server restarting): the hook is then called again, with
    backoff, as a failed transaction is run again.

    Example::

        @hookimpl
        def salesbot_open_store(url):
            return MyStore(url) if url.startswith("mydb://") else None
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def salesbot_due(bot: Bot, record: RecordT, owner: User, at: datetime, reassignments: int) -> datetime | None:
    """When must ``owner``, just given ``record`` by ``bot`` at ``at``, have acted on it?

    Return an aware instant, or ``None`` for no deadline. ``firstresult``. The engine then
    writes a due item (``DueItem``) in the same transaction as the assignment, replacing
    the record's previous one; ``reassignments`` counts how often the record was already
    handed on by a missed deadline. ``salesbot tick`` hands on the items due (see
    ``salesbot_sla_missed``); an event that meets it clears it (``salesbot_sla_met``).
    Built-in: the ``sla`` section of a bot (sla plugin), counted in business hours.

    Example::

        @hookimpl
        def salesbot_due(bot, record, owner, at):
            return at + timedelta(hours=1) if record.fields.get("hot") else None
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def salesbot_sla_met(bot: Bot, due: DueItem, event: Event, record: RecordT, context: Context) -> str | None:
    """Say why ``event`` meets the due item ``due`` of ``record``, or return ``None``.

    Called in the event's transaction for a record that has a due item (``record`` as the
    event leaves it). ``context.matches(bot, key, path)`` tests a condition a plugin
    field of ``bot`` holds (``FieldSpec(conditions=...)``) on the record, with the
    ruleset's evaluator. ``firstresult``: a reason clears the item, in the
    event's transaction; a redelivered event is answered from the log and brings nothing
    back. Built-in: the ``sla.met_when`` of a bot (an update by the owner, a record
    matching ``where``, a closed record).

    Example::

        @hookimpl
        def salesbot_sla_met(bot, due, event, record):
            return "called" if record.fields.get("last_call") else None
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def salesbot_sla_missed(bot: Bot, due: DueItem) -> Escalation | None:
    """What to do with a record whose due item ``due`` ran out; ``None`` drops the item.

    Called by ``salesbot tick`` (``Engine.tick``) once per item, in the transaction that
    takes it from the store and hands the record on. ``firstresult``. Built-in: the
    ``sla.then``, ``max_reassignments`` and ``notify_previous`` of a bot.

    Example::

        @hookimpl
        def salesbot_sla_missed(bot, due):
            return Escalation(to="next", note="reassigned: nobody called")
    """
    raise NotImplementedError


@hookspec
def salesbot_after_assign(outcome: Outcome) -> None:
    """Called after an event's outcome is committed, once per processed (non-duplicate) event.

    For observers (metrics, logging, live notifications). The return value is ignored; an
    exception propagates to the caller of ``Engine.handle`` but the outcome stays committed.

    Example::

        @hookimpl
        def salesbot_after_assign(outcome):
            metrics.count("assigned", len(outcome.assigned))
    """
    raise NotImplementedError
