"""An account's rules as data: one document of settings, users and bots, edited and versioned.

A rulebook is what one account's ruleset files hold, as JSON: ``{"settings": {...},
"users": [...], "bots": [...]}`` (no ``account`` key: the account is where it is kept).
The store keeps each published rulebook whole, as a numbered version, so any version can
be shown, compared and restored; the edits here are pure functions from a rulebook to a
new one, and ``check`` validates a rulebook by the very code that validates files
(``rulesets.parse_data`` and ``rulesets.build_rules``), so a bot is valid in a file
exactly when it is valid over the API.

The plan and the add-on's activation (``settings.plan``, ``settings.enabled``) are the
operator's, kept beside the versions (``Store.accounts``): a restore never changes what
an account pays for, and an account's own admin cannot raise its plan.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .catalog import Catalog
from .errors import Problem, RulesetError, SalesbotError
from .limits import canonical_json
from .models import AccountSettings
from .rulesets import Rules, build_rules, parse_data
from .safetext import excerpt

#: The settings an account's operator sets, never its rules.
OPERATOR_SETTINGS = ("plan", "enabled")
#: The sections of a rulebook whose entries have ids.
SECTIONS = ("users", "bots")

Rulebook = dict[str, Any]


class NotFound(SalesbotError):
    """No such bot, user, version or draft in the account."""


class UserInPools(SalesbotError):
    """A user that bots' pools (or fallbacks) name cannot be removed on its own."""

    def __init__(self, user: str, bots: list[str]):
        self.user, self.bots = user, bots
        super().__init__(
            f"user {excerpt(user)} is in the pool of bot(s) {', '.join(map(excerpt, bots))}: remove the "
            "user from those pools first, or delete with from_pools=true to do both in one version"
        )


@dataclass(frozen=True)
class FieldProblem:
    """A problem of a rulebook, at a field path such as ``bots[2].users[0]``."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class RulebookError(SalesbotError):
    """A rulebook is invalid: each problem names its field. Nothing was written."""

    def __init__(self, problems: list[FieldProblem], account: str | None = None):
        self.account, self.problems = account, problems
        where = f"account {excerpt(account)}: " if account is not None else ""
        super().__init__(where + "; ".join(map(str, problems)))


def empty() -> Rulebook:
    return {"users": [], "bots": []}


def normalized(data: Mapping[str, Any]) -> Rulebook:
    """A rulebook as it is kept: a deep copy without the ``account`` key and the
    operator's settings, with both sections present."""
    book: Rulebook = copy.deepcopy({k: v for k, v in data.items() if k != "account"})
    settings = book.get("settings")
    if isinstance(settings, dict):
        kept = {k: v for k, v in settings.items() if k not in OPERATOR_SETTINGS}
        if kept:
            book["settings"] = kept
        else:
            del book["settings"]
    for section in SECTIONS:
        book.setdefault(section, [])
    return book


def dumps(book: Mapping[str, Any]) -> str:
    """The one JSON text of a rulebook (sorted keys): equal rulebooks, equal texts."""
    return canonical_json(book)


def loads(text: str | None) -> Rulebook:
    return normalized(json.loads(text)) if text else empty()


def mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is a mapping (a section as written), else an empty one."""
    return value if isinstance(value, dict) else {}


def _entries(book: Mapping[str, Any], section: str) -> list[Any]:
    entries = book.get(section)
    return entries if isinstance(entries, list) else []


def _index(book: Mapping[str, Any], section: str, entry_id: str) -> int | None:
    for i, entry in enumerate(_entries(book, section)):
        if isinstance(entry, dict) and entry.get("id") == entry_id:
            return i
    return None


def entry(book: Mapping[str, Any], section: str, entry_id: str) -> dict[str, Any]:
    """The bot or user of that id (``NotFound`` if none)."""
    i = _index(book, section, entry_id)
    if i is None:
        raise NotFound(f"no {section[:-1]} {excerpt(entry_id)}")
    return dict(_entries(book, section)[i])


def put(book: Mapping[str, Any], section: str, entry_id: str, data: Mapping[str, Any]) -> Rulebook:
    """The rulebook with the bot or user ``entry_id`` replaced by ``data`` (kept in its
    place, so a bot keeps its rank among the account's), or added at the end. ``data``'s
    own ``id``, if any, must be ``entry_id``."""
    if "id" in data and data["id"] != entry_id:
        raise RulebookError([FieldProblem("id", f"must be {excerpt(entry_id)}, the id in the path")])
    new = normalized(book)
    item = {"id": entry_id, **copy.deepcopy(dict(data))}
    i = _index(new, section, entry_id)
    if i is None:
        new[section].append(item)
    else:
        new[section][i] = item
    return new


def remove(book: Mapping[str, Any], section: str, entry_id: str) -> Rulebook:
    """The rulebook without the bot or user ``entry_id`` (``NotFound`` if none)."""
    new = normalized(book)
    i = _index(new, section, entry_id)
    if i is None:
        raise NotFound(f"no {section[:-1]} {excerpt(entry_id)}")
    del new[section][i]
    return new


def naming(book: Mapping[str, Any], user: str) -> list[str]:
    """The ids of the bots whose pool or fallback names ``user``."""
    return [
        str(bot.get("id"))
        for bot in _entries(book, "bots")
        if isinstance(bot, dict) and (user in _pool(bot) or bot.get("fallback") == user)
    ]


def _pool(bot: Mapping[str, Any]) -> list[Any]:
    users = bot.get("users")
    return users if isinstance(users, list) else []


def remove_user(book: Mapping[str, Any], user: str, from_pools: bool = False) -> Rulebook:
    """The rulebook without ``user``: ``UserInPools`` while bots name it, unless
    ``from_pools``, which takes it out of their pools and fallbacks in the same edit."""
    bots = naming(book, user)
    if bots and not from_pools:
        raise UserInPools(user, bots)
    new = remove(book, "users", user)
    for bot in _entries(new, "bots"):
        if isinstance(bot, dict) and bot.get("id") in bots:
            if isinstance(bot.get("users"), list):
                bot["users"] = [u for u in bot["users"] if u != user]
            if bot.get("fallback") == user:
                del bot["fallback"]
    return new


def sync_users(
    book: Mapping[str, Any], users: Sequence[Mapping[str, Any]]
) -> tuple[Rulebook, dict[str, list[str]]]:
    """The team as the CRM's directory has it: each given user added or updated (the
    fields given replace the kept ones; fields set only here, such as working hours,
    stay), and every kept user the directory no longer has deactivated (kept, as pools
    and the log may name them). Returns the rulebook and what changed, by user id."""
    new = normalized(book)
    report: dict[str, list[str]] = {"added": [], "updated": [], "deactivated": [], "unchanged": []}
    given: set[str] = set()
    for data in users:
        user_id = str(data.get("id"))
        given.add(user_id)
        i = _index(new, "users", user_id)
        if i is None:
            new["users"].append(copy.deepcopy(dict(data)))
            report["added"].append(user_id)
            continue
        merged = {**new["users"][i], **copy.deepcopy(dict(data))}
        report["updated" if merged != new["users"][i] else "unchanged"].append(user_id)
        new["users"][i] = merged
    for i, user in enumerate(new["users"]):
        if isinstance(user, dict) and user.get("id") not in given and user.get("active", True) is not False:
            new["users"][i] = {**user, "active": False}
            report["deactivated"].append(str(user.get("id")))
    return new, report


def put_settings(book: Mapping[str, Any], settings: Mapping[str, Any]) -> Rulebook:
    """The rulebook with these settings (the operator's are not the account's to set)."""
    taken = sorted(set(settings) & set(OPERATOR_SETTINGS))
    if taken:
        raise RulebookError(
            [
                FieldProblem(f"settings.{key}", "is set by the operator, not in the account's rules")
                for key in taken
            ]
        )
    new = normalized(book)
    new["settings"] = copy.deepcopy(dict(settings))
    return normalized(new)


def field_path(problem: Problem, book: Mapping[str, Any]) -> str:
    """Where a problem is, as a path into the rulebook: ``bots[2].users[0]``."""
    path = ""
    if problem.bot is not None:
        i = _index(book, "bots", problem.bot)
        if i is None and problem.bot.startswith("#") and problem.bot[1:].isdigit():
            i = int(problem.bot[1:]) - 1  # an entry without a valid id: its position
        path = f"bots[{i}]" if i is not None else f"bots[{excerpt(problem.bot)}]"
    for part in (problem.field or "").split("."):
        if not part:
            continue
        if part.isdigit():
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "(rules)"


def file_name(account: str) -> str:
    """What an account's rules in the store are called in problems, where a file's path is."""
    return f"account {account}"


def as_file(account: str, book: Mapping[str, Any], plan: str, enabled: bool) -> dict[str, Any]:
    """A rulebook as the ruleset file it stands for: its account, and the operator's plan
    and activation among its settings."""
    data = dict(normalized(book))
    data["settings"] = {**mapping(data.get("settings")), "plan": plan, "enabled": enabled}
    return {"account": account, **data}


def check(
    account: str,
    book: Mapping[str, Any],
    catalog: Catalog,
    *,
    plan: str = "professional",
    enabled: bool = True,
    conditions: str | None = None,
    isolated: bool = False,
    version: int | None = None,
) -> Rules:
    """The rules of a rulebook, validated and compiled as a ruleset file is, with the
    account's plan and activation; ``RulebookError`` naming each field if invalid."""
    data = as_file(account, book, plan, enabled)
    name = file_name(account)
    parsed, problems = parse_data(name, data, catalog)
    try:
        return build_rules(
            [(name, parsed)] if parsed is not None else [],
            catalog,
            problems,
            name,
            conditions,
            isolated,
            {account: version} if version is not None else None,
        )
    except RulesetError as exc:
        placed = [FieldProblem(field_path(p, data), p.message) for p in exc.problems]
        raise RulebookError(placed, account) from None


def settings_of(book: Mapping[str, Any], plan: str, enabled: bool) -> AccountSettings:
    """The account settings a valid rulebook sets, with the operator's plan and activation."""
    settings = mapping(book.get("settings"))
    return AccountSettings.model_validate({**settings, "plan": plan, "enabled": enabled})


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What changed from one rulebook to another, field by field: each change has ``op``
    (``added``, ``removed``, ``changed`` or ``reordered``), a readable ``path``
    (``bots.inbound.users``), and the ``before`` and ``after`` values where they exist."""
    changes: list[dict[str, Any]] = []
    old_settings, new_settings = before.get("settings") or {}, after.get("settings") or {}
    for key in sorted(set(old_settings) | set(new_settings)):
        if old_settings.get(key) != new_settings.get(key):
            changes.append(
                _change(
                    f"settings.{key}",
                    key in old_settings,
                    old_settings.get(key),
                    key in new_settings,
                    new_settings.get(key),
                )
            )
    for section in SECTIONS:
        old = {e.get("id"): e for e in _entries(before, section) if isinstance(e, dict)}
        new = {e.get("id"): e for e in _entries(after, section) if isinstance(e, dict)}
        for entry_id, item in new.items():
            if entry_id not in old:
                changes.append({"op": "added", "path": f"{section}.{entry_id}", "after": item})
                continue
            was = old[entry_id]
            for key in sorted(set(was) | set(item)):
                if was.get(key) != item.get(key):
                    changes.append(
                        _change(
                            f"{section}.{entry_id}.{key}",
                            key in was,
                            was.get(key),
                            key in item,
                            item.get(key),
                        )
                    )
        changes += [
            {"op": "removed", "path": f"{section}.{entry_id}", "before": item}
            for entry_id, item in old.items()
            if entry_id not in new
        ]
        kept_old = [i for i in old if i in new]
        kept_new = [i for i in new if i in old]
        if kept_old != kept_new:
            changes.append({"op": "reordered", "path": section, "before": kept_old, "after": kept_new})
    return changes


def _change(path: str, had: bool, old: Any, has: bool, new: Any) -> dict[str, Any]:
    if not had:
        return {"op": "added", "path": path, "after": new}
    if not has:
        return {"op": "removed", "path": path, "before": old}
    return {"op": "changed", "path": path, "before": old, "after": new}
