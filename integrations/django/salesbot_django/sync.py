"""The host's users, departments and bots, written as salesbot ruleset files.

salesbot decides from its rules (users, pools, bots); in a Django project the users and
departments live in the host's tables. Until the rules can be published through the
store's API, this module derives one ruleset file per account from the database and the
``BOTS`` setting, rewrites a file only when its contents change, and the engine loads
them (``Engine.reload``). It also keeps one Django user per bot, so the host offers the
bot in its Owner field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction
from django.utils.text import slugify

from .conf import Config
from .models import BotUser

DEFAULT_ACCOUNT = "default"


def account_id(row: models.Model | str | None) -> str:
    """The salesbot account of an account row (a department) or of its name: the name,
    slugified."""
    return DEFAULT_ACCOUNT if row is None else slugify(str(row))


def user_id(user: AbstractBaseUser) -> str:
    """A Django user's salesbot user id: its primary key, which a rename does not change."""
    return str(user.pk)


def bot_username(bot: Mapping[str, Any]) -> str:
    """The username the host shows in its Owner field: ``Sales Bot: <bot name>``."""
    return f"Sales Bot: {bot.get('name') or bot['id']}"


def _accounts(config: Config) -> dict[str, models.Model | None]:
    if config.account_model is None:
        return {DEFAULT_ACCOUNT: None}
    return {account_id(row): row for row in config.account_model._default_manager.order_by("pk")}


def _members(row: models.Model | None) -> Iterable[AbstractBaseUser]:
    users = get_user_model()._default_manager.filter(salesbot_bot__isnull=True).order_by("pk")
    if row is None:
        return users.filter(is_staff=True)
    if not isinstance(row, Group):
        raise ImproperlyConfigured("SALESBOT['ACCOUNT_MODEL']: must be auth.Group or a subclass of it")
    return users.filter(groups=row)


def member_ids(config: Config, account: str) -> set[str]:
    """The salesbot user ids of an account's members: the owners salesbot knows there."""
    accounts = _accounts(config)
    return {user_id(user) for user in _members(accounts[account])} if account in accounts else set()


def _name(user: AbstractBaseUser) -> str:
    full = user.get_full_name() if hasattr(user, "get_full_name") else ""
    return full or user.get_username()


def rulesets(config: Config) -> dict[str, dict[str, Any]]:
    """Each account's ruleset file, as data: its users (the account's members), its
    settings and its bots, their pools written as user ids."""
    accounts = _accounts(config)
    names = {account: DEFAULT_ACCOUNT if row is None else str(row) for account, row in accounts.items()}
    files: dict[str, dict[str, Any]] = {}
    for account, row in accounts.items():
        members = list(_members(row))
        by_username = {user.get_username(): user_id(user) for user in members}
        bots = []
        for bot in config.bots:
            if account_id_of_bot(bot, accounts) != account:
                continue
            missing = [name for name in bot["users"] if name not in by_username]
            if missing:
                raise ImproperlyConfigured(
                    f"SALESBOT['BOTS'] bot {bot['id']!r}: {', '.join(map(repr, missing))} "
                    f"not a user of account {names[account]!r}"
                )
            spec = {key: value for key, value in bot.items() if key != "account"}
            bots.append({**spec, "users": [by_username[name] for name in bot["users"]]})
        files[account] = {
            "account": account,
            "settings": dict(config.accounts.get(names[account], {})),
            "users": [
                {"id": user_id(u), "name": _name(u), "email": u.email or None, "active": u.is_active}
                for u in members
            ],
            "bots": bots,
        }
    return files


def account_id_of_bot(bot: Mapping[str, Any], accounts: Mapping[str, models.Model | None]) -> str:
    """The account a bot of the ``BOTS`` setting belongs to (its ``account``, a name)."""
    if "account" not in bot:
        return DEFAULT_ACCOUNT
    wanted = account_id(bot["account"])
    if wanted not in accounts:
        raise ImproperlyConfigured(f"SALESBOT['BOTS'] bot {bot['id']!r}: no account {bot['account']!r}")
    return wanted


@transaction.atomic
def bot_users(config: Config) -> dict[tuple[str, str], AbstractBaseUser]:
    """One Django user per bot, ``(account, bot id)`` to user, made or updated.

    Active and staff (hosts offer only those as owners), with an unusable password: it
    cannot sign in. It joins its account's group and ``BOT_GROUPS``.
    """
    accounts = _accounts(config)
    made = {}
    for bot in config.bots:
        account = account_id_of_bot(bot, accounts)
        link = BotUser.objects.select_related("user").filter(account=account, bot=bot["id"]).first()
        if link is None:
            user = get_user_model()(username=bot_username(bot), is_active=True, is_staff=True)
            user.set_unusable_password()
            user.save()
            link = BotUser.objects.create(user=user, account=account, bot=bot["id"])
        user = link.user
        if user.get_username() != bot_username(bot):
            setattr(user, user.USERNAME_FIELD, bot_username(bot))
            user.save()
        groups = [Group.objects.get_or_create(name=name)[0] for name in config.bot_groups]
        row = accounts[account]
        user.groups.add(*groups, *([row] if row is not None else []))
        made[(account, bot["id"])] = user
    return made


def write(config: Config, files: Mapping[str, Mapping[str, Any]]) -> bool:
    """Write each account's file into ``RULES_DIR`` (JSON, which is YAML), replacing it
    atomically; True if any changed. Files of accounts no longer there are removed."""
    folder = config.rules_dir
    folder.mkdir(parents=True, exist_ok=True)
    changed = False
    wanted = {f"{account}.yaml": content for account, content in files.items()}
    for path in folder.glob("*.yaml"):
        if path.name not in wanted:
            path.unlink()
            changed = True
    for name, content in wanted.items():
        text = json.dumps(content, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        path = folder / name
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        _replace(path, text)
        changed = True
    return changed


def _replace(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def sync(config: Config) -> bool:
    """Bring the bots' users and the ruleset files up to date; True if a file changed."""
    bot_users(config)
    return write(config, rulesets(config))
