"""What each admin page shows, read from an engine in one call: no HTTP here."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from ..engine import Engine
from ..models import Bot, Decision, Delivery, Note, Outcome, utc_iso
from ..periods import period_bounds
from ..simulate import SimulationResult, simulate_on
from ..store import Activity, Switch
from ..strategy import RecordT
from .charts import Chart, bars

#: Rows per page of the bots and accounts lists, and of the decisions lists.
PAGE_SIZE = 50
#: The most records a dry run on the page takes.
MAX_DRY_RUN = 100
#: The most outcomes a record page shows (the newest).
MAX_TIMELINE = 200
#: The most deliveries of each status the deliveries page shows (the newest).
MAX_DELIVERIES = 100


def accounts(engine: Engine) -> list[str]:
    """Every account the rules name (bots, users or settings), sorted."""
    rules = engine.rules
    return sorted({a for a, _ in rules.bots} | {a for a, _ in rules.users} | set(rules.settings))


def start_of_day(now: datetime, zone: tzinfo = UTC) -> datetime:
    """Midnight of ``now``'s day in ``zone`` (the account's time zone, ``settings.timezone``),
    in UTC: "today" on the page is the account's day, as its admin counts days."""
    local = now.astimezone(zone).date()
    return datetime(local.year, local.month, local.day, tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class Names:
    """What the page calls an account's users and bots: their names, by id (an id the
    rules no longer know is shown as it is)."""

    users: Mapping[str, str] = field(default_factory=dict)
    bots: Mapping[str, str] = field(default_factory=dict)


def names(engine: Engine, account: str) -> Names:
    """The names of the account's users and bots."""
    rules = engine.rules
    return Names(
        {user_id: user.display_name for (acc, user_id), user in rules.users.items() if acc == account},
        {bot.id: bot.display_name for bot in rules.account_bots(account)},
    )


@dataclass(frozen=True)
class AccountRow:
    """One account in the overview."""

    account: str
    enabled: bool
    plan: str
    #: The time zone whose day "today" counts (``settings.timezone``).
    timezone: str
    bots: int
    activity: Activity


def overview(engine: Engine, shown: list[str], now: datetime) -> list[AccountRow]:
    """The overview's rows for the accounts ``shown``: settings, bots and today's activity."""
    rows = []
    for account in shown:
        settings = engine.rules.account_settings(account)
        since = utc_iso(start_of_day(now, settings.zone))
        rows.append(
            AccountRow(
                account,
                settings.enabled,
                settings.plan,
                settings.timezone,
                len(engine.rules.account_bots(account)),
                engine.store.activity(account, since),
            )
        )
    return rows


@dataclass(frozen=True)
class UserTotal:
    """A user's assignments across all the account's bots in the calendar periods of
    their time zone, with the limits their fields set (``FieldSpec.usage_limits``)."""

    user: str
    name: str
    timezone: str
    #: Assignments per period (``CALENDAR``: day, week, month), every bot counted.
    counts: Mapping[str, int]
    #: The most each usage kind allows (periods and others: rolling windows, open records).
    limits: Mapping[str, int]


def user_totals(engine: Engine, account: str, now: datetime) -> list[UserTotal]:
    """Each user of the account, in file order: assignments today, this week and this
    month of their own time zone, by any bot, beside their limits. Counted per user as
    the caps count them (one range of the by-user index each), not per bot: with 2,000
    bots a count per bot, user and period took 2 seconds a page."""
    limited = [spec for spec in engine.catalog.fields_of("user").values() if spec.usage_limits]
    totals = []
    for (acc, user_id), user in engine.rules.users.items():
        if acc != account:
            continue
        counts = {}
        for period, (start, _) in period_bounds(now, user.zone).items():
            since = utc_iso(start)
            counts[period] = engine.store.assigned_since(account, user_id, since)
        limits: dict[str, int] = {}
        for spec in limited:
            value = user.plugin_fields.get(spec.key)
            if value is not None and spec.usage_limits is not None:
                limits.update(spec.usage_limits(value))
        totals.append(UserTotal(user_id, user.display_name, user.timezone, counts, limits))
    return totals


@dataclass(frozen=True)
class BotRow:
    """A bot as the bots list shows it, with its switch now and who set it."""

    bot: Bot
    active: bool
    switch: Switch | None


def bot_rows(engine: Engine, account: str) -> list[BotRow]:
    """Every bot of an account, in file order, with its switch."""
    switches = engine.store.switches(account)
    return [
        BotRow(bot, switches[bot.id].active if bot.id in switches else bot.active, switches.get(bot.id))
        for bot in engine.rules.account_bots(account)
    ]


@dataclass(frozen=True)
class PoolMember:
    """A pool user now: their state and the reason the engine gives."""

    user: str
    name: str
    state: str
    reason: str
    #: The user's switch (``salesbot user offboard``/``activate``): who set it and when.
    switch: Switch | None = None


@dataclass
class BotPage:
    """Everything a bot's page shows."""

    row: BotRow
    charts: list[Chart]
    pool: list[PoolMember]
    next_user: str | None
    #: The strategy's reason for the pick, or why nobody (or the fallback) is next.
    next_reason: str
    dry_run: SimulationResult
    recent: list[tuple[int, Outcome]] = field(default_factory=list)


#: A skipped user's state in a word, by the shape of the reason the engine gave (which
#: the page shows beside it): the wording of the built-in eligibility plugins. A reason
#: of another shape (a host's own plugin) reads "unavailable".
STATES = (
    ("at a cap", re.compile(r"reached: \d+ per (day|week|month)$")),
    ("outside working hours", re.compile(r"^(outside working hours|does not work on) ")),
    ("deactivated", re.compile(r"^user is deactivated$")),
    ("out of office", re.compile(r" until \d{4}-")),
)


def pool_state(reason: str) -> str:
    """A skipped user's state in a word (see ``STATES``)."""
    return next((state for state, shape in STATES if shape.search(reason)), "unavailable")


def _pool(engine: Engine, account: str, bot: Bot, now: Decision) -> list[PoolMember]:
    """Each pool user's state by ``Engine.pool_now`` (the engine's own reasons)."""
    skipped = {skip.user: skip.reason for skip in now.skipped}
    switches = {state.user.id: state.switch for state in engine.users(account)}
    pool = []
    for user_id in bot.users:
        user = engine.rules.user(account, user_id)
        name = user.display_name if user else user_id
        switch = switches.get(user_id)
        if user_id in skipped:
            pool.append(PoolMember(user_id, name, pool_state(skipped[user_id]), skipped[user_id], switch))
        else:
            pool.append(PoolMember(user_id, name, "active", "eligible now", switch))
    return pool


def bot_page(engine: Engine, account: str, bot_id: str, now: datetime, dry_run: int) -> BotPage | None:
    """A bot's page: the distribution, the pool now, who is next, a dry run of the next
    ``dry_run`` synthetic records (the same as ``salesbot simulate``) and its latest
    assignments. None when the account has no such bot."""
    bot = engine.rules.bot(account, bot_id)
    if bot is None:
        return None
    row = next(r for r in bot_rows(engine, account) if r.bot.id == bot_id)
    settings = engine.rules.account_settings(account)
    periods = {
        f"Today ({settings.timezone})": start_of_day(now, settings.zone),
        "Last 7 days": now - timedelta(days=7),
        "Last 30 days": now - timedelta(days=30),
    }
    charts = [
        bars(title, engine.store.distribution(account, bot_id, utc_iso(since)), bot.users)
        for title, since in periods.items()
    ]
    pick = engine.pool_now(account, bot_id, now)
    # This rotation: one turn of the users eligible now (the whole pool when none is),
    # i.e. the bot's latest assignments, as many as there are eligible users.
    turn = len(pick.candidates) or len(bot.users)
    latest = engine.store.recent_outcomes(account, turn, bot=bot_id)
    rotation = Counter(
        d.owner for _, o in latest for d in o.decisions if d.bot == bot_id and d.owner is not None
    )
    charts.append(bars(f"This rotation (last {turn} assignments)", rotation, bot.users))
    return BotPage(
        row=row,
        charts=charts,
        pool=_pool(engine, account, bot, pick),
        next_user=pick.owner,
        next_reason=pick.reason,
        dry_run=simulate_on(engine, account, bot_id, max(1, min(dry_run, MAX_DRY_RUN))),
        recent=engine.store.recent_outcomes(account, PAGE_SIZE, bot=bot_id),
    )


@dataclass(frozen=True)
class RecordPage:
    """A record's page: the record, its links, its wall and its timeline."""

    record: RecordT
    links: list[tuple[str, str]]
    wall: list[Note]
    timeline: list[Outcome]
    #: ``(entity, id)`` of the linked records whose events changed this one (the deals
    #: that passed their owner on to a company), in the order they first did.
    changed_by: list[tuple[str, str]] = field(default_factory=list)


def links(record: RecordT) -> list[tuple[str, str]]:
    """``(entity, id)`` of the records a record links to: persons, company, a task's link."""
    found: list[tuple[str, str]] = [("person", p) for p in getattr(record, "persons", [])]
    company = getattr(record, "company", None)
    if company:
        found.append(("company", company))
    link = getattr(record, "link", None)
    if link is not None:
        found.append((link.entity, link.id))
    return found


def record_page(engine: Engine, account: str, entity: Any, record_id: str) -> RecordPage | None:
    """A record's page (its latest ``MAX_TIMELINE`` outcomes), or None when the store
    has no such record."""
    record = engine.record(account, entity, record_id)
    if record is None:
        return None
    timeline = engine.explain(account, entity, record_id)[-MAX_TIMELINE:]
    wall = engine.wall(account, entity, record_id)
    return RecordPage(record, links(record), wall, timeline, changed_by(timeline, entity, record_id))


def changed_by(timeline: list[Outcome], entity: str, record_id: str) -> list[tuple[str, str]]:
    """The other records of ``timeline`` whose decisions changed the record's owners (a
    decision's ``related``), each once, in the order they first did."""
    found: dict[tuple[str, str], None] = {}
    for outcome in timeline:
        touched = any(
            (change.entity, change.record_id) == (entity, record_id)
            for decision in outcome.decisions
            for change in decision.related
        )
        if touched and (outcome.entity, outcome.record_id) != (entity, record_id):
            found.setdefault((outcome.entity, outcome.record_id))
    return list(found)


def deliveries(engine: Engine, account: str) -> Mapping[str, list[Delivery]]:
    """The account's pending and failed (dead) webhook deliveries, newest first."""
    return {
        status: engine.store.deliveries(account, status, MAX_DELIVERIES) for status in ("pending", "dead")
    }


@dataclass(frozen=True)
class RulesView:
    """The rules' status as one viewer may see it (``rules_status``)."""

    loaded_at: str
    #: The names of the running rules' files the viewer may see, in load order.
    files: list[str]
    #: The last failed reload's problems the viewer may see, as text.
    errors: list[str]
    #: Whether that reload failed on problems the viewer may not see (other accounts' files,
    #: or files whose account could not be read): it blocks every account's changes.
    hidden: bool
    #: The rulesets folder (admins only: it is the server's path), or None.
    folder: str | None


def rules_status(engine: Engine, account: str | None) -> RulesView | None:
    """The rules' status (``Engine.rules_status``) as the overview shows it: everything to
    an admin (``account`` None); to an account's admin, only its own files and their
    problems, named without the folder. None for rules handed in (never reloaded)."""
    status = engine.rules_status
    if status.folder is None:
        return None
    loaded = utc_iso(status.loaded_at)
    if account is None:
        errors = [str(problem) for problem in status.errors]
        return RulesView(loaded, list(status.files), errors, False, status.folder)
    files = [Path(name).name for name, owner in engine.rules.files.items() if owner == account]
    mine = [problem for problem in status.errors if status.accounts.get(problem.file) == account]
    # A problem names its file by path and may name another file of the account by path
    # (``already used in ...``): both are shown by name only.
    inside = status.folder.rstrip(os.sep) + os.sep
    errors = [
        str(replace(problem, file=Path(problem.file).name, message=problem.message.replace(inside, "")))
        for problem in mine
    ]
    return RulesView(loaded, files, errors, len(mine) < len(status.errors), None)
