"""The data salesbot works on: users, CRM records, events, bots and outcomes.

Everything that crosses the engine's edge (ruleset files, events from a host, outcomes
written to a store) is one of these pydantic models, so a bad value is rejected at the
edge with an error that names the field, and the core only ever sees valid data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import EventError
from .limits import (
    MAX_CHANGED,
    MAX_CHANGED_NAME,
    MAX_EVENT_ID,
    canonical_json,
    check_at,
    check_event,
    check_lists,
    check_payload,
    fingerprint,
)
from .safetext import excerpt
from .vocabulary import ENTITIES as ENTITIES
from .vocabulary import EntityType as EntityType

#: A record by ``(entity, id)``.
LinkRef = tuple["EntityType", str]
EventKind = Literal["created", "updated", "list"]
EVENT_KINDS: tuple[EventKind, ...] = ("created", "updated", "list")

#: A record's Owner field holds user ids and bots; a bot is written ``bot:<bot id>`` so a
#: bot can never be mistaken for a user who happens to share its id.
BOT_PREFIX = "bot:"
#: A user's switch (``salesbot user offboard``/``activate``) is kept beside the bot
#: switches under ``user:<user id>``: no bot id has a ``:``, so the two never meet.
USER_PREFIX = "user:"
#: Ids of the events of a list operation start with this; hosts' event ids may not, so a
#: list operation never meets an unrelated host event (see ``list_event_id``).
LIST_PREFIX = "list/"

Identifier = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.@-]+$")]
#: Hosts use their own delivery ids (UUIDs, "webhook:123"...): any printable text.
EventId = Annotated[str, Field(min_length=1, max_length=MAX_EVENT_ID, pattern=r"^[^\x00-\x1f]+$")]

#: A field name in an update's ``changed``.
FieldName = Annotated[str, Field(max_length=MAX_CHANGED_NAME)]


def list_event_id(operation: str, entity: EntityType, record_id: str) -> str:
    """The event id of one record of a list operation: ``list/<operation>/<entity>/<id>``.

    Its own namespace: no host event id starts with ``list/``, and the entity is part of
    it, so deal 123 and person 123 of one operation are two events. Record ids have no
    ``/``, so the id reads back unambiguously. ``EventError`` if it would be too long or
    the operation id holds control characters (as an event id may not).
    """
    event_id = f"{LIST_PREFIX}{operation}/{entity}/{record_id}"
    if any(ord(char) < 0x20 for char in operation):
        raise EventError(f"list operation {operation!r}: the operation id may not hold control characters")
    if not operation or len(event_id) > MAX_EVENT_ID:
        raise EventError(
            f"list operation {operation!r}: the operation id must be 1 to "
            f"{MAX_EVENT_ID - len(event_id) + len(operation)} characters long (event ids, "
            f"'{LIST_PREFIX}<operation>/{entity}/{record_id}', are at most {MAX_EVENT_ID})"
        )
    return event_id


def _utc(moment: datetime) -> datetime:
    """An aware datetime; a naive one is taken as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def utc_iso(moment: datetime) -> str:
    """How stores write an instant: UTC ISO 8601 with microseconds and a 4-digit year, so
    the strings sort as the instants do (``strftime('%Y')`` writes year 999 as ``999``)."""
    utc = _utc(moment).astimezone(UTC).replace(tzinfo=None)
    # ``isoformat`` writes 4-digit years too, and costs a third of ``strftime``.
    return utc.isoformat(timespec="microseconds") + "Z"


class Model(BaseModel):
    """Base of every salesbot model: unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Deferred(Model):
    """Base of the models an event's path does not use (the outbox, tokens, webhooks, due
    items, notes): pydantic builds their validators the first time one is used, not when
    ``salesbot_core.models`` is imported, so ``salesbot run`` of one event does not pay
    for them."""

    model_config = ConfigDict(defer_build=True)


class Configurable(Model):
    """A ruleset entry that plugins may add fields to (see ``salesbot_core.fields``).

    The plugins' values are validated by the loader and kept apart from the core fields,
    so the core never depends on a plugin; a plugin reads its own with ``FieldSpec.get``.
    """

    _plugin_fields: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def plugin_fields(self) -> Mapping[str, Any]:
        """The validated values of the plugin-owned fields this entry sets, by key."""
        # Read from pydantic's private dict: ``self._plugin_fields`` goes through
        # ``BaseModel.__getattr__``, and plugins read these once per candidate per event.
        return MappingProxyType(self.__pydantic_private__["_plugin_fields"])  # type: ignore[index]

    def with_plugin_fields(self, values: Mapping[str, Any]) -> Self:
        """A copy holding ``values`` as its plugin-owned fields (the loader sets them)."""
        copy = self.model_copy()
        copy._plugin_fields = dict(values)
        return copy


def known_timezone(name: str) -> str:
    """``name`` if it is an IANA time zone, else a ``ValueError`` quoting it."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {excerpt(name)}") from None
    return name


#: An IANA time zone name, checked when loaded.
TimeZone = Annotated[str, AfterValidator(known_timezone)]


class User(Configurable):
    """A CRM user who can own records and be in a bot's pool."""

    id: Identifier
    name: str = ""
    email: str | None = None
    #: Deactivated users never get a record (they may stay in pools).
    active: bool = True
    #: IANA time zone of the user's working hours, absences and cap periods. A core
    #: field although only plugins read it: several plugins share it (availability,
    #: capacity) and the engine counts usage per calendar period of this zone.
    timezone: TimeZone = "UTC"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def display_name(self) -> str:
        return self.name or self.id


class _Record(Model):
    id: Identifier
    owners: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    #: False once the record is closed (a deal won or lost, a task done): closed records
    #: do not count toward an owner's load.
    open: bool = True
    #: Custom fields of the host's CRM; ruleset conditions can test them.
    fields: dict[str, Any] = Field(default_factory=dict)

    @field_validator("owners")
    @classmethod
    def _no_duplicate_owners(cls, owners: list[str]) -> list[str]:
        if len(set(owners)) != len(owners):
            raise ValueError("an owner is listed twice")
        return owners

    def bot_ids(self) -> list[str]:
        """Ids of the bots set in the Owner field, in order."""
        return [o[len(BOT_PREFIX) :] for o in self.owners if o.startswith(BOT_PREFIX)]

    def condition_fields(self) -> dict[str, Any]:
        """The flat view of the record that ruleset conditions test."""
        data = self.model_dump(exclude={"owners", "tags", "fields"}, exclude_none=True)
        return {**self.fields, **data}


class Deal(_Record):
    """A deal (sales opportunity): linked to persons and at most one company."""

    entity: Literal["deal"] = "deal"
    title: str = ""
    process: str | None = None
    value: float | None = None
    persons: list[Identifier] = Field(default_factory=list)
    company: Identifier | None = None


class Person(_Record):
    """A contact person, optionally working at a company."""

    entity: Literal["person"] = "person"
    name: str = ""
    company: Identifier | None = None


class Company(_Record):
    """A company (organisation)."""

    entity: Literal["company"] = "company"
    name: str = ""


class Link(Model):
    """What a task is about: a deal, a person or a company."""

    entity: Literal["deal", "person", "company"]
    id: Identifier


class Task(_Record):
    """A task, optionally about one deal, person or company."""

    entity: Literal["task"] = "task"
    title: str = ""
    link: Link | None = None


Record = Annotated[Deal | Person | Company | Task, Field(discriminator="entity")]
_RECORD: TypeAdapter[Deal | Person | Company | Task] = TypeAdapter(Record)


#: The key of a stored record (beside the record model's fields) under which the engine
#: keeps which of its owners a bot gave, ``{user: bot id}``: a bot takes back only those.
GIVEN_BY = "given_by"


def record_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """A stored record's own fields, without what the engine keeps beside them
    (``GIVEN_BY``): what its model is validated from."""
    return {key: value for key, value in data.items() if key != GIVEN_BY}


def record_from_dict(data: dict[str, Any]) -> Deal | Person | Company | Task:
    """A record from its stored form (``entity`` says which model)."""
    return _RECORD.validate_python(record_data(data))


def given_by(data: Mapping[str, Any] | None) -> dict[str, str]:
    """Which owners of a stored record a bot gave, ``{user: bot id}``."""
    return dict(data.get(GIVEN_BY) or {}) if data is not None else {}


#: Event fields added after the fingerprint's form was fixed (see ``Event._fingerprinted``).
ADDED_LATER = ("by", "leaving")


class Event(Model):
    """Something happened to a record in the host CRM.

    ``id`` is the host's unique id for this delivery (a webhook id, an outbox row id):
    an event delivered again with the same id is answered from the log, not re-run.

    Besides pydantic's ``ValidationError`` for a wrong shape, validation raises
    ``EventError`` (naming the field) for a payload outside the bounds of
    ``salesbot_core.limits``.
    """

    id: EventId
    kind: EventKind
    account: Identifier = "default"
    record: Record
    #: When the record was saved; the engine's clock when not given. Availability, caps
    #: periods and the audit use it.
    at: datetime | None = None
    #: For updates, the fields the user changed, when the host knows them: a bot fires on
    #: an update only if ``owners`` is among them (a stale copy of the Owner field that
    #: still shows a bot must not assign again).
    changed: list[FieldName] | None = Field(default=None, max_length=MAX_CHANGED)
    #: Who saved the record (a user id), when the host knows it: an SLA is met by an
    #: update its owner made (see ``salesbot_sla_met``).
    by: Identifier | None = None
    #: A ``list`` event only: the user leaving (``Engine.offboard``). Their record goes
    #: to the bot's pick, and the pick is passed on only to linked records they own,
    #: taking them off those too: nobody else's records move.
    leaving: Identifier | None = None
    _canonical: str = PrivateAttr(default="")
    _fingerprint: str = PrivateAttr(default="")

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any, info: ValidationInfo) -> Any:
        if not _from_store(info):
            check_payload(data)
        return data

    @field_validator("at")
    @classmethod
    def _at_in_range(cls, at: datetime | None) -> datetime | None:
        return None if at is None else check_at(at)

    @model_validator(mode="after")
    def _fingerprinted(self, info: ValidationInfo) -> Event:
        if _from_store(info):
            check_lists(self.id, {"owners": self.record.owners, "tags": self.record.tags})
        else:
            # A field added after fingerprints were first stored is written only when set:
            # an event that does not use it keeps the fingerprint it had, so a redelivery
            # across an upgrade is still a duplicate, not an idempotency conflict.
            self._canonical = check_event(self.id, self.json_form())
            self._fingerprint = fingerprint(self._canonical)
        return self

    def json_form(self) -> dict[str, Any]:
        """The event as JSON data, defaults written out, but fields of ``ADDED_LATER``
        only when set: what its fingerprint and a kept payload are made of."""
        unset = {name for name in ADDED_LATER if getattr(self, name) is None}
        return self.model_dump(mode="json", exclude=unset or None)

    @property
    def canonical(self) -> str:
        """The event's canonical JSON (sorted keys, no spaces, defaults written out): what
        its fingerprint is of, and what a store keeps of it (``store.kept_payload``). An
        event built from a stored record (``FROM_STORE``) gets it only when asked."""
        private = self.__pydantic_private__
        assert private is not None
        if not private["_canonical"]:
            private["_canonical"] = canonical_json(self.json_form())
        return str(private["_canonical"])

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the event's canonical JSON, defaults written out: the same payload
        delivered again has the same fingerprint, whichever defaults it spelled out.
        Empty for a list operation's event (see ``FROM_STORE``)."""
        return self.__pydantic_private__["_fingerprint"]  # type: ignore[index]


#: The key of the validation context (``{FROM_STORE: True}``) of an event the engine
#: builds itself from a stored record (a list operation's): the record was bounded and
#: walked when it was stored, and its id, not a fingerprint, tells a repeat
#: (``Engine._handle_in``), so neither the walk nor the fingerprint is done again.
FROM_STORE = "from_store"


def _from_store(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get(FROM_STORE))


PlanName = Literal["automation", "growth", "professional"]


class Plan(Model):
    """What a subscription plan allows."""

    name: PlanName
    max_bots: int | None
    entities: tuple[EntityType, ...]
    multiple_owners: bool


#: The plans of the Sales Bot add-on: Automation has one bot, for deals only; Growth and
#: Professional have bots for all four entities and may switch on multiple owners.
PLANS: dict[str, Plan] = {
    "automation": Plan(name="automation", max_bots=1, entities=("deal",), multiple_owners=False),
    "growth": Plan(name="growth", max_bots=None, entities=ENTITIES, multiple_owners=True),
    "professional": Plan(name="professional", max_bots=None, entities=ENTITIES, multiple_owners=True),
}


class AccountSettings(Model):
    """An account's settings for the Sales Bot add-on."""

    #: The add-on is switched on: off, no bot fires and none is offered as an owner.
    enabled: bool = True
    plan: PlanName = "professional"
    #: Records may have several owners ("multiple role selection" in the CRM).
    multiple_owners: bool = False
    #: IANA time zone of the account's own calendar (bots' schedules).
    timezone: TimeZone = "UTC"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Trigger(Model):
    """When a bot fires."""

    events: list[EventKind] = Field(default_factory=lambda: list(EVENT_KINDS), min_length=1)
    #: Deals only: the sales processes the bot applies to; ``None`` means all of them.
    processes: list[str] | None = Field(default=None, min_length=1)
    #: A durable-rules condition over the record's fields, e.g. ``{"$gte": {"value": 10000}}``.
    where: dict[str, Any] | None = None
    #: Routing (``Engine.route``) a record a user already owns: ``leave`` it to that user
    #: (a person's assignment is never overridden), or ``reassign`` it like an unowned one.
    owned: Literal["leave", "reassign"] = "leave"


class Related(Model):
    """Pass the picked owner on to the records linked with the assigned one."""

    #: A deal's persons.
    persons: bool = False
    #: A deal's or a person's company.
    company: bool = False
    #: Multiple-owner accounts: ``add`` the picked user to the linked record's owners, or
    #: ``replace`` them all with the picked user. Single-owner accounts always replace.
    mode: str = "add"


class Actions(Model):
    """What a bot does besides replacing itself with the picked user."""

    related: Related = Field(default_factory=Related)
    #: Tag added to every record whose owner the bot set.
    tag: str | None = Field(default=None, min_length=1, max_length=100)
    #: Note written on the wall of every record whose owner the bot set (a template).
    note: str | None = Field(default=None, min_length=1)
    #: Notification sent to the new owner (a template).
    notify: str | None = Field(default=None, min_length=1)


class Bot(Configurable):
    """A Sales Bot: a rule with a pool of users that picks the owner of a record."""

    id: Identifier
    name: str = ""
    entity: EntityType = "deal"
    active: bool = True
    users: list[Identifier] = Field(min_length=1)
    #: A default value of the ruleset schema (data, like ``actions.related.mode``'s
    #: ``add``): the core only looks the name up among the registered strategies.
    strategy: str = "round_robin"
    #: Options for the strategy, validated through the strategy's ``options`` model.
    options: dict[str, Any] = Field(default_factory=dict)
    trigger: Trigger = Field(default_factory=Trigger)
    actions: Actions = Field(default_factory=Actions)
    #: Routing without a bot: the account's bots for an entity are tried in ascending
    #: priority (then file order); the first that applies wins.
    priority: int = 0
    #: Who gets the record when nobody in the pool is eligible (a declared user).
    fallback: Identifier | None = None

    @field_validator("users")
    @classmethod
    def _unique_users(cls, users: list[str]) -> list[str]:
        seen: set[str] = set()
        for user in users:
            if user in seen:
                raise ValueError(f"user {user!r} is in the pool twice")
            seen.add(user)
        return users

    @model_validator(mode="after")
    def _processes_only_for_deals(self) -> Bot:
        if self.trigger.processes is not None and self.entity != "deal":
            raise ValueError("trigger.processes applies to deals only")
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.id

    @property
    def owner_ref(self) -> str:
        """How this bot is written in a record's Owner field."""
        return BOT_PREFIX + self.id

    def summary(self) -> dict[str, Any]:
        """What a list of bots shows of each: the CLI's tables and ``--json``, the service."""
        return {
            "id": self.id,
            "name": self.display_name,
            "entity": self.entity,
            "strategy": self.strategy,
            "users": list(self.users),
        }


class RulesetFile(Model):
    """The contents of one ruleset file."""

    account: Identifier = "default"
    #: At most one file per account may hold its settings.
    settings: AccountSettings | None = None
    users: list[User] = Field(default_factory=list)
    bots: list[Bot] = Field(default_factory=list)


class Skip(Model):
    """A pool member who was not a candidate, and why."""

    user: str
    reason: str


#: ``fallback``: nobody in the pool was eligible and the bot's fallback owner got it.
#: ``unassigned``: the record stopped matching the bot, which took back the owner it gave.
Status = Literal["assigned", "fallback", "not_applied", "no_candidate", "unassigned"]


class Decision(Model):
    """What one bot on a record decided: who, and the reasons."""

    bot: str
    status: Status
    owner: str | None = None
    #: ``unassigned``: the owner the bot took back off the record.
    removed: str | None = None
    reason: str = ""
    strategy: str | None = None
    #: The trigger conditions the bot met, in words.
    conditions: list[str] = Field(default_factory=list)
    candidates: list[str] = Field(default_factory=list)
    skipped: list[Skip] = Field(default_factory=list)
    state_before: dict[str, Any] = Field(default_factory=dict)
    state_after: dict[str, Any] = Field(default_factory=dict)
    #: Linked records that got the same owner.
    related: list[Change] = Field(default_factory=list)
    tag: str | None = None
    note: str | None = None
    notification: str | None = None

    def summary(self) -> str:
        """The decision in one line: ``bot 'inbound': assigned -> anna: first in rotation``."""
        return (
            f"bot {self.bot!r}: {self.status.replace('_', ' ')}"
            + (f" -> {self.owner}" if self.owner else "")
            + (f" {self.removed}" if self.removed else "")
            + (f": {self.reason}" if self.reason else "")
        )


class Release(Model):
    """A plugin's word that a record stopped matching the bot that gave one of its owners
    (``salesbot_stopped_matching``): the bot takes that owner back."""

    #: Why, in the outcome and the audit.
    reason: str = Field(min_length=1)
    #: Route the record again by the account's bots (back to the pool), as
    #: ``Engine.route`` does, instead of only taking the owner off.
    reroute: bool = False
    #: Templates (as a bot's ``actions``) of the wall note and of the notification to the
    #: owner taken off; ``owner`` is that user.
    note: str | None = None
    notify: str | None = None


class Change(Model):
    """A linked record whose owners the bot changed too."""

    entity: EntityType
    record_id: str
    owners_before: list[str]
    owners_after: list[str]


class Notification(Deferred):
    """A message to a user, waiting in the outbox until the host delivers it."""

    id: int
    account: str
    user: str
    text: str
    event_id: str
    entity: EntityType
    record_id: str
    created_at: str
    delivered_at: str | None = None


class Token(Deferred):
    """An API token of ``salesbot serve`` as a store keeps it: never its secret, only the
    SHA-256 of it (see ``salesbot_core.tokens``)."""

    #: The account it may act for; ``*`` for an admin token (every account).
    account: str
    name: str
    hash: str
    scopes: list[str]
    created_at: str
    revoked_at: str | None = None


class Endpoint(Deferred):
    """A webhook endpoint as it is listed: everything but its secret."""

    id: str
    account: str
    url: str
    #: What it receives: ``assignment`` (an event changed a record's owners),
    #: ``notification`` (a bot's message to a user).
    events: list[str]
    created_at: str


class Webhook(Endpoint):
    """An endpoint a host registered to receive an account's deliveries (see
    ``salesbot_core.http.delivery``). ``secret`` signs them: it is shown once, when added."""

    secret: str = Field(repr=False)


class Delivery(Deferred):
    """One message to one endpoint, queued with the event that caused it (the outbox
    pattern) and tried until the endpoint takes it or the retries run out."""

    #: Stable across attempts: the receiver's idempotency key (``Salesbot-Delivery``).
    id: str
    account: str
    webhook_id: str
    kind: str
    #: The exact JSON body sent (and signed).
    payload: str
    #: Attempts made so far (a claimed delivery counts the attempt in flight).
    attempts: int
    #: ``pending`` (waiting or in flight), ``delivered`` or ``dead`` (retries ran out).
    status: str
    next_at: str
    last_error: str | None = None
    created_at: str
    delivered_at: str | None = None
    #: The endpoint, joined in when a worker claims the delivery.
    url: str | None = None
    secret: str | None = Field(default=None, repr=False)


class DueItem(Deferred):
    """An assignment waiting for its owner to act (an SLA): if nothing meets it before
    ``due_at``, ``salesbot tick`` hands the record on. One per record; a new assignment
    replaces it (see ``salesbot_due``)."""

    #: Random and unique: the reassignment's event id is made from it.
    key: str
    account: str
    entity: EntityType
    record_id: str
    #: The bot that assigned the record, and whom it gave it to.
    bot: str
    owner: str
    #: When the owner got the record, and when the SLA runs out (UTC ISO 8601).
    assigned_at: str
    due_at: str
    #: How many times the record was already handed on by this SLA.
    reassignments: int = 0


class Escalation(Deferred):
    """What to do with a record whose SLA ran out (``salesbot_sla_missed``)."""

    #: ``next``: a new pick through the same bot, the owner excluded; ``bot:<id>``: a
    #: pick through that bot; ``fallback``: the bot's fallback owner; ``stay``: nothing moves.
    to: str
    #: The wall note, e.g. "reassigned: no contact within 2h".
    note: str
    #: Tell the owner it is taken from.
    notify_previous: bool = False


class Note(Deferred):
    """A note on a record's wall."""

    text: str
    bot: str
    event_id: str
    created_at: str


#: Fields added to an outcome later are written only when set: every other outcome (the
#: log, webhooks, ``--json``) reads as before they existed, so an older salesbot still
#: reads it (a rolling upgrade, a rollback), as ``Event``'s ``ADDED_LATER`` fields.
def _only_when_set() -> Any:
    return Field(default=None, exclude_if=lambda value: value is None)


class Outcome(Model):
    """The engine's answer for one event: the owners before and after, and each bot's decision."""

    event_id: str
    account: str
    entity: EntityType
    record_id: str
    kind: EventKind
    #: When the record was saved (the event's ``at`` or the engine's clock).
    at: datetime | None = None
    owners_before: list[str]
    owners_after: list[str]
    decisions: list[Decision] = Field(default_factory=list)
    #: True when this event id had been processed before and nothing was done again.
    duplicate: bool = False
    #: The version of the account's rules the event was decided under, when the rules are
    #: kept in the store (``salesbot rules push``, the API); None for rules from files.
    rules_version: int | None = _only_when_set()
    #: The user an offboarding took the record from (the event's ``leaving``): which
    #: user a list operation offboards, read back from its outcomes.
    leaving: str | None = _only_when_set()

    @property
    def assigned(self) -> list[Decision]:
        """The decisions that gave the record an owner (picked or fallback)."""
        return [d for d in self.decisions if d.owner is not None]

    def explain(self) -> list[str]:
        """The outcome in words, one line each: what ``salesbot explain`` prints."""
        # The record is named: explain lists the outcomes of linked records too.
        lines = [
            f"event {self.event_id!r} ({self.kind}) on {self.entity} {self.record_id}: "
            f"owners {self.owners_before} -> "
            f"{self.owners_after}" + (" [redelivered, nothing done]" if self.duplicate else "")
        ]
        if self.rules_version is not None:
            lines.append(f"  decided under rules version {self.rules_version}")
        if not self.decisions:
            lines.append("  no bot among the owners")
        for d in self.decisions:
            lines.append(f"  {d.summary()}")
            lines += [f"    condition met: {c}" for c in d.conditions]
            if d.candidates:
                lines.append(f"    candidates: {', '.join(d.candidates)}")
            lines += [f"    skipped {s.user}: {s.reason}" for s in d.skipped]
            if d.strategy and d.status != "not_applied":
                lines.append(
                    f"    strategy {d.strategy}: state {_compact(d.state_before)} -> "
                    f"{_compact(d.state_after if d.owner else d.state_before)}"
                )
            lines += [
                f"    {c.entity} {c.record_id}: owners {c.owners_before} -> {c.owners_after}"
                for c in d.related
            ]
            lines += [
                f"    {label}: {text}"
                for label, text in (("tag", d.tag), ("wall note", d.note), ("notification", d.notification))
                if text
            ]
        return lines


def _compact(state: dict[str, Any]) -> str:
    return json.dumps(state, sort_keys=True, ensure_ascii=False)
