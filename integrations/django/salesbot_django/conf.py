"""The ``SALESBOT`` setting, read into typed objects.

The host's models stay untouched: everything the app knows about them (which model is a
deal, which field holds its owner...) comes from this mapping. Reading it once, up front,
turns a misspelt key or field into an ``ImproperlyConfigured`` that names it, instead of
an ``AttributeError`` on some user's first save.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import models
from django.utils.module_loading import import_string

from salesbot_core.vocabulary import ENTITIES

MODES = ("embedded", "http")
_ENTITY_KEYS = {
    "model",
    "owner",
    "co_owner",
    "title",
    "process",
    "company",
    "persons",
    "tags",
    "account",
    "version",
    "fields",
}
_KEYS = {
    "MODE",
    "STORE",
    "RULES_DIR",
    "ENTITIES",
    "ACCOUNT_MODEL",
    "ACCOUNTS",
    "BOTS",
    "BOT_GROUPS",
    "NOTE",
    "NOTIFY",
    "TAG",
    "URL",
    "TOKEN",
    "SIGNING_SECRET",
    "WEBHOOK_SECRET",
    "TIMEOUT",
}


@dataclass(frozen=True)
class EntityMap:
    """How one Django model is one salesbot entity: the names of its fields."""

    entity: str
    model: type[models.Model]
    owner: str
    #: The second owner (multiple-owner accounts): the first owner a bot adds beside
    #: another goes here.
    co_owner: str | None = None
    title: str | None = None
    process: str | None = None
    #: Foreign keys to the linked company and persons, passed on the pick.
    company: str | None = None
    persons: tuple[str, ...] = ()
    #: A many-to-many field to a model with a ``name``: the bot's tag is added there.
    tags: str | None = None
    #: A foreign key to the account model (departments): the record's salesbot account.
    account: str | None = None
    #: A field that changes at every save (``auto_now``): with the primary key it makes
    #: the event id, so a signal delivered twice for one save is a duplicate. Without
    #: one, each save gets a random id.
    version: str | None = None
    #: Other salesbot record fields (``value``...) read from model fields.
    fields: Mapping[str, str] = field(default_factory=dict)

    def related_model(self, name: str) -> type[models.Model]:
        """The model a relation field of this model points to."""
        return self.model._meta.get_field(name).related_model  # type: ignore[return-value]


@dataclass(frozen=True)
class Config:
    """The whole ``SALESBOT`` setting, checked."""

    mode: str
    store: str
    rules_dir: Path
    entities: Mapping[str, EntityMap]
    #: A model whose rows are the accounts (Django CRM: departments, a ``Group``); its
    #: users are the group's members. ``None``: one account, ``default``, of all staff.
    account_model: type[models.Model] | None
    #: Account settings (``multiple_owners``, ``plan``...) by account name.
    accounts: Mapping[str, Mapping[str, Any]]
    #: Bots as in a ruleset file, plus ``account`` (the account's name); ``users`` are
    #: usernames.
    bots: tuple[Mapping[str, Any], ...]
    #: Groups a bot's user joins besides its account, so the host offers it as an owner.
    bot_groups: tuple[str, ...]
    note: Callable[..., None] | None
    notify: Callable[..., None] | None
    tag: Callable[..., None] | None
    #: HTTP mode: the ``salesbot serve`` base URL, a token that acts for every account
    #: (``salesbot token create --admin``), the secret its requests are signed with (if
    #: the accounts sign theirs), and the secret of the webhook endpoint it delivers to.
    url: str | None = None
    token: str | None = None
    signing_secret: str | None = None
    webhook_secret: str | None = None
    timeout: float = 10.0

    def for_model(self, model: type[models.Model]) -> EntityMap | None:
        """The mapping of ``model`` (or of the model a proxy stands for), if mapped."""
        concrete = model._meta.concrete_model
        return next((m for m in self.entities.values() if m.model is concrete), None)


def _problem(key: str | tuple[str, ...], message: str) -> ImproperlyConfigured:
    """An error naming the setting's key, ``SALESBOT['ENTITIES']['deal']``, and what is wrong."""
    path = "".join(f"[{part!r}]" for part in ((key,) if isinstance(key, str) else key))
    return ImproperlyConfigured(f"SALESBOT{path}: {message}")


def _model(key: str | tuple[str, ...], label: str) -> type[models.Model]:
    try:
        return apps.get_model(label)
    except (LookupError, ValueError):
        raise _problem(key, f"no installed model {label!r} (write 'app_label.Model')") from None


def _callable(key: str, path: str | None) -> Callable[..., None] | None:
    if path is None:
        return None
    try:
        return import_string(path)
    except ImportError as exc:
        raise _problem(key, f"cannot import {path!r}: {exc}") from None


def _entity(entity: str, spec: Mapping[str, Any]) -> EntityMap:
    key = ("ENTITIES", entity)
    if entity not in ENTITIES:
        raise _problem("ENTITIES", f"{entity!r} is not a salesbot entity ({', '.join(ENTITIES)})")
    unknown = set(spec) - _ENTITY_KEYS
    if unknown:
        raise _problem(key, f"unknown keys {sorted(unknown)}")
    if "model" not in spec or "owner" not in spec:
        raise _problem(key, "'model' and 'owner' are required")
    model = _model(key, spec["model"])
    mapped = EntityMap(
        entity=entity,
        model=model,
        owner=spec["owner"],
        co_owner=spec.get("co_owner"),
        title=spec.get("title"),
        process=spec.get("process"),
        company=spec.get("company"),
        persons=tuple(spec.get("persons", ())),
        tags=spec.get("tags"),
        account=spec.get("account"),
        version=spec.get("version"),
        fields=dict(spec.get("fields", {})),
    )
    named = [mapped.owner, mapped.co_owner, mapped.company, *mapped.persons, mapped.tags, mapped.account]
    for name in [n for n in named if n] + [mapped.version, *mapped.fields.values()]:
        if name is None:
            continue
        try:
            model._meta.get_field(name)
        except FieldDoesNotExist:
            raise _problem(key, f"{spec['model']} has no field {name!r}") from None
    return mapped


def load(raw: Mapping[str, Any]) -> Config:
    """``raw`` (a ``SALESBOT`` setting) checked into a ``Config``."""
    unknown = set(raw) - _KEYS
    if unknown:
        raise ImproperlyConfigured(f"SALESBOT: unknown keys {sorted(unknown)}")
    mode = raw.get("MODE", "embedded")
    if mode not in MODES:
        raise _problem("MODE", f"{mode!r} is not one of {', '.join(MODES)}")
    if not raw.get("ENTITIES"):
        raise _problem("ENTITIES", "map at least one model")
    account_model = raw.get("ACCOUNT_MODEL")
    if mode == "http" and not (raw.get("URL") and raw.get("TOKEN")):
        raise _problem("URL", "the http mode needs the service's 'URL' and a 'TOKEN'")
    return Config(
        mode=mode,
        store=str(raw.get("STORE", "salesbot.db")),
        rules_dir=Path(raw.get("RULES_DIR", "salesbot-rules")),
        entities={entity: _entity(entity, spec) for entity, spec in raw["ENTITIES"].items()},
        account_model=_model("ACCOUNT_MODEL", account_model) if account_model else None,
        accounts=dict(raw.get("ACCOUNTS", {})),
        bots=tuple(raw.get("BOTS", ())),
        bot_groups=tuple(raw.get("BOT_GROUPS", ())),
        note=_callable("NOTE", raw.get("NOTE")),
        notify=_callable("NOTIFY", raw.get("NOTIFY")),
        tag=_callable("TAG", raw.get("TAG")),
        url=raw.get("URL"),
        token=raw.get("TOKEN"),
        signing_secret=raw.get("SIGNING_SECRET"),
        webhook_secret=raw.get("WEBHOOK_SECRET"),
        timeout=float(raw.get("TIMEOUT", 10.0)),
    )


@cache
def config() -> Config:
    """The project's ``SALESBOT`` setting, checked once (again after a test overrides it)."""
    return load(getattr(settings, "SALESBOT", {}))


def _forget(setting: str, **kwargs: Any) -> None:
    if setting == "SALESBOT":
        config.cache_clear()


setting_changed.connect(_forget)
