"""A save of a record owned by a bot, handed to salesbot after commit, and its picks
written back.

The signal only notes the save: the routing runs in ``transaction.on_commit``, so a save
that is rolled back routes nothing, and it reads the record as committed (the admin saves
tags and other many-to-many fields after the record itself). The event id is made of the
record and its ``version`` field, so the same save handed over twice (a retried signal, a
second ``on_commit``) is a duplicate that changes nothing. The write-back uses
``QuerySet.update`` and many-to-many ``add``, which send no ``post_save``: salesbot's own
changes never route the record again.

The records linked to a routed one (its company and persons) are sent first as updates
that change no owner, so salesbot's store knows their owners before it passes the pick on.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from functools import partial
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, models, transaction
from django.db.models.signals import post_save

from salesbot_core import IdempotencyConflict
from salesbot_core.models import BOT_PREFIX, Outcome

from . import outbox
from .backends import backend
from .conf import Config, EntityMap, config
from .models import AppliedOutcome, BotUser
from .sync import account_id, member_ids, user_id

log = logging.getLogger(__name__)

#: Event ids from this app start with it, so they never meet another sender's.
PREFIX = "django"


def connect(config: Config) -> None:
    """Route saves of every mapped model."""
    for mapped in config.entities.values():
        post_save.connect(saved, sender=mapped.model, dispatch_uid=f"salesbot:{mapped.entity}")


def saved(
    sender: type[models.Model], instance: models.Model, created: bool, raw: bool, **kwargs: Any
) -> None:
    """``post_save``: a record owned by a bot is routed once the transaction commits."""
    mapped = config().for_model(sender)
    if raw or mapped is None or not _bots_among(owners_of(mapped, instance)):
        return
    event_id = _event_id(mapped, instance)
    kind = "created" if created else "updated"
    using = kwargs.get("using")
    transaction.on_commit(partial(route, mapped.entity, instance.pk, event_id, kind), using=using)


def _event_id(mapped: EntityMap, instance: models.Model) -> str:
    if mapped.version is None:
        version = uuid.uuid4().hex
    else:
        value = getattr(instance, mapped.version)
        version = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return f"{PREFIX}/{mapped.entity}/{instance.pk}/{version}"


def owners_of(mapped: EntityMap, instance: models.Model) -> list[AbstractBaseUser]:
    """The record's owner and second owner, as users."""
    names = [mapped.owner, *([mapped.co_owner] if mapped.co_owner else [])]
    owners = [getattr(instance, name) for name in names]
    return list(dict.fromkeys(owner for owner in owners if owner is not None))


def _bots_among(users: Iterable[AbstractBaseUser]) -> bool:
    return BotUser.objects.filter(user__in=[u.pk for u in users]).exists()


def _owner_refs(users: Iterable[AbstractBaseUser], account: str, known: set[str]) -> list[str]:
    """How salesbot writes the owners: ``bot:<id>`` for a bot of the account, the user id
    for a member; anyone else (a superuser outside the department) is left out."""
    bots = {link.user_id: link for link in BotUser.objects.filter(user__in=[u.pk for u in users])}
    refs = []
    for user in users:
        link = bots.get(user.pk)
        if link is not None and link.account == account:
            refs.append(link.owner_ref)
        elif link is None and user_id(user) in known:
            refs.append(user_id(user))
    return refs


def account_of(mapped: EntityMap, instance: models.Model) -> str:
    """The salesbot account of a record: its ``account`` field's row."""
    return account_id(getattr(instance, mapped.account) if mapped.account else None)


def record_of(mapped: EntityMap, instance: models.Model, known: set[str]) -> dict[str, Any]:
    """A model instance as a salesbot record."""
    account = account_of(mapped, instance)
    record: dict[str, Any] = {
        "entity": mapped.entity,
        "id": str(instance.pk),
        "owners": _owner_refs(owners_of(mapped, instance), account, known),
    }
    if mapped.tags:
        record["tags"] = sorted({str(tag) for tag in getattr(instance, mapped.tags).all()})
    title_key = "title" if mapped.entity in ("deal", "task") else "name"
    if mapped.title:
        record[title_key] = str(getattr(instance, mapped.title) or "")
    if mapped.process:
        process = getattr(instance, mapped.process)
        record["process"] = None if process is None else str(process)
    if mapped.company and getattr(instance, f"{mapped.company}_id") is not None:
        record["company"] = str(getattr(instance, f"{mapped.company}_id"))
    persons = [getattr(instance, f"{name}_id") for name in mapped.persons]
    if mapped.persons:
        record["persons"] = [str(pk) for pk in persons if pk is not None]
    fields = {key: getattr(instance, name) for key, name in mapped.fields.items()}
    if "value" in fields:  # a record field of salesbot's own, a number
        value = fields.pop("value")
        record["value"] = None if value is None else float(value)
    if fields:
        record["fields"] = {key: _plain(value) for key, value in fields.items()}
    return record


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _linked(mapped: EntityMap, instance: models.Model) -> list[tuple[EntityMap, models.Model]]:
    """The records linked to ``instance`` that are mapped too: its company and persons."""
    entities = config().entities
    found = []
    for entity, names in (("company", [mapped.company]), ("person", list(mapped.persons))):
        for name in names:
            target = getattr(instance, name) if name else None
            if target is not None and entity in entities:
                found.append((entities[entity], target))
    return found


def mirrors(
    account: str, prefix: str, records: Iterable[tuple[EntityMap, models.Model]]
) -> list[dict[str, Any]]:
    """Each record as it stands, as an update that changes no owner: once handled,
    salesbot's store knows its owners and tags, and no bot fires on it."""
    known = member_ids(config(), account)
    return [
        {
            "id": f"{prefix}/mirror/{mapped.entity}/{instance.pk}",
            "kind": "updated",
            "account": account,
            "changed": [],
            "record": record_of(mapped, instance, known),
        }
        for mapped, instance in records
    ]


def send_mirrors(events: Iterable[dict[str, Any]]) -> None:
    """Handle mirror events; one already sent with other contents (the record changed
    since a first delivery) is left as it was."""
    for event in events:
        try:
            backend().handle(event)
        except IdempotencyConflict:
            continue


def route(entity: str, pk: Any, event_id: str, kind: str) -> Outcome | None:
    """Hand one committed save to salesbot and write its picks back."""
    mapped = config().entities[entity]
    instance = mapped.model._default_manager.filter(pk=pk).first()
    if instance is None:  # deleted before the commit
        return None
    backend().refresh()
    account = account_of(mapped, instance)
    # The same save again (a retried signal): the record now holds salesbot's own
    # write-back, so its payload differs from the first delivery's; the first stands.
    if backend().seen(account, entity, str(pk), event_id):
        return None
    event = {
        "id": event_id,
        "kind": kind,
        "account": account,
        "record": record_of(mapped, instance, member_ids(config(), account)),
    }
    return outbox.send(mapped, instance, [*mirrors(account, event_id, _linked(mapped, instance)), event])


def assign(mapped: EntityMap, records: Iterable[models.Model], bot: BotUser) -> list[Outcome]:
    """The list operation: ``bot`` picks an owner for each of ``records``, exactly once."""
    backend().refresh()
    operation = uuid.uuid4().hex
    selected = [r for r in records if account_of(mapped, r) == bot.account]
    linked = [pair for r in selected for pair in _linked(mapped, r)]
    send_mirrors(mirrors(bot.account, f"{PREFIX}/{operation}", [(mapped, r) for r in selected]))
    send_mirrors(mirrors(bot.account, f"{PREFIX}/{operation}/linked", linked))
    ids = [str(r.pk) for r in selected]
    outcomes = backend().assign_list(bot.account, mapped.entity, ids, bot.bot, operation)
    by_id = {str(r.pk): r for r in selected}
    for outcome in outcomes:
        apply(bot.account, mapped, by_id[outcome.record_id], outcome)
    return outcomes


def _users(refs: Iterable[str], account: str) -> list[AbstractBaseUser]:
    """The Django users of salesbot owner refs (a bot ref is its bot's user)."""
    refs = list(refs)
    people = [r for r in refs if not r.startswith(BOT_PREFIX)]
    users = {user_id(u): u for u in get_user_model()._default_manager.filter(pk__in=people)}
    bots = {
        link.owner_ref: link.user
        for link in BotUser.objects.select_related("user").filter(
            account=account, bot__in=[r[len(BOT_PREFIX) :] for r in refs if r.startswith(BOT_PREFIX)]
        )
    }
    return [bots[r] if r.startswith(BOT_PREFIX) else users[r] for r in refs]


def _set_owners(mapped: EntityMap, pk: Any, owners: list[AbstractBaseUser]) -> None:
    values = {mapped.owner: owners[0] if owners else None}
    if mapped.co_owner:
        values[mapped.co_owner] = owners[1] if len(owners) > 1 else None
    mapped.model._default_manager.filter(pk=pk).update(**values)


def _add_tag(mapped: EntityMap, instance: models.Model, tag: str) -> None:
    if not mapped.tags:
        return
    hook = config().tag
    if hook is not None:
        hook(instance, mapped.tags, tag)
        return
    related = mapped.related_model(mapped.tags)
    getattr(instance, mapped.tags).add(related._default_manager.get_or_create(name=tag)[0])


def apply(account: str, mapped: EntityMap, instance: models.Model, outcome: Outcome) -> None:
    """Write an outcome back, once: owners of the record and of its linked records, the
    tag, the wall note and the notification, through the mapping's writers. An outcome
    whose event id was written back before (the answer, then its webhook) is skipped."""
    try:
        with transaction.atomic():
            _, new = AppliedOutcome.objects.get_or_create(event_id=outcome.event_id)
            if new:
                _write_back(account, mapped, instance, outcome)
    except IntegrityError:  # written back by another thread meanwhile
        return


def _write_back(account: str, mapped: EntityMap, instance: models.Model, outcome: Outcome) -> None:
    settings = config()
    if outcome.owners_after != outcome.owners_before:
        _set_owners(mapped, instance.pk, _users(outcome.owners_after, account))
    bots = {link.bot: link.user for link in BotUser.objects.select_related("user").filter(account=account)}
    for decision in outcome.decisions:
        if decision.owner is None:
            continue
        owner = _users([decision.owner], account)[0]
        targets: list[tuple[EntityMap, models.Model]] = [(mapped, instance)]
        for change in decision.related:
            linked = settings.entities.get(change.entity)
            if linked is None:
                continue
            record = linked.model._default_manager.get(pk=change.record_id)
            _set_owners(linked, record.pk, _users(change.owners_after, account))
            targets.append((linked, record))
        for target_map, target in targets:
            if decision.tag:
                _add_tag(target_map, target, decision.tag)
            if decision.note and settings.note is not None:
                settings.note(target, decision.note, bots.get(decision.bot), owner)
        if decision.notification and settings.notify is not None:
            settings.notify(owner, decision.notification, instance)
