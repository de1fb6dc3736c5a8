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
from .models import AccountSettings, Bot, DueItem, Escalation, Event, Outcome, User
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
    the same way, as ``Strategy(options=Model)``. Built-in: ``caps`` (capacity),
    ``working_hours`` and ``out_of_office`` (availability), ``sticky`` (sticky).

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
    bot: Bot, event: Event, record: RecordT, settings: AccountSettings, handler: EntityHandler
) -> str | None:
    """Say why ``bot``, set as an owner of ``record`` by ``event``, must not fire.

    ``settings`` are the account's, ``handler`` the record entity's (it reads a deal's
    sales process). Return ``None`` when the bot may fire, or a short reason (shown in the
    outcome and the audit trail) when it must not. ``firstresult``: the first reason
    stops the bot, which is then removed from the owners and the record keeps its
    previous owners. No built-in implements it: the core checks first what no plugin may
    switch off (the add-on and bot switches, the entity, the trigger's events and sales
    processes, an update that did not change the owners), so blocking a plugin never
    makes a switched-off bot fire. Ruleset ``where`` conditions are evaluated after this.

    Example::

        @hookimpl
        def salesbot_bot_applies(bot, event, record):
            return "weekend" if is_weekend() else None
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def salesbot_skip_candidate(bot: Bot, record: RecordT, user: User, context: Context) -> str | None:
    """Say why pool member ``user`` must not get ``record`` from ``bot``, or return ``None``.

    Called for each pool member still eligible, in pool order; ``context`` holds the time
    and what the engine read (linked records, per-period usage). ``firstresult``: the
    first reason skips the user, and is shown in the outcome. When no candidate is left,
    the bot's fallback owner gets the record, or nobody does and the bot is not left as
    an owner. Built-in: deactivated users (eligibility), users at their capacity cap.

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
def salesbot_sla_met(
    bot: Bot, due: DueItem, event: Event, record: RecordT, matched: Mapping[str, bool]
) -> str | None:
    """Say why ``event`` meets the due item ``due`` of ``record``, or return ``None``.

    Called in the event's transaction for a record that has a due item (``record`` as the
    event leaves it). ``matched`` says, for each plugin field of ``bot`` holding a
    condition (``FieldSpec(condition=...)``), whether the record matches it (evaluated by
    the ruleset conditions evaluator). ``firstresult``: a reason clears the item, in the
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
