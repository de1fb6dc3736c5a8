"""Ruleset files: a folder of YAML or TOML files loaded, validated and compiled as one set.

A set loads whole or not at all: every problem in every file is collected, each naming
the file, the bot and the field, and raised together as ``RulesetError``.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .conditions import ConditionCompileError, ConditionSet, check_condition
from .errors import Problem, RulesetError
from .models import PLANS, AccountSettings, Bot, RulesetFile, User
from .registry import Catalog
from .templates import check_template

SUFFIXES = (".yaml", ".yml", ".toml")


@dataclass(frozen=True)
class Rules:
    """A loaded, valid set of bots and users across accounts."""

    bots: Mapping[tuple[str, str], Bot]
    users: Mapping[tuple[str, str], User]
    conditions: ConditionSet
    #: Which file each bot came from, for messages.
    sources: Mapping[tuple[str, str], str] = field(default_factory=dict)
    #: Each account's settings; an account no file sets gets the defaults.
    settings: Mapping[str, AccountSettings] = field(default_factory=dict)

    def account_settings(self, account: str) -> AccountSettings:
        return self.settings.get(account) or AccountSettings()

    def account_bots(self, account: str) -> list[Bot]:
        """The bots of an account, in the order the files list them."""
        return [bot for (acc, _), bot in self.bots.items() if acc == account]

    def bot(self, account: str, bot_id: str) -> Bot | None:
        return self.bots.get((account, bot_id))

    def user(self, account: str, user_id: str) -> User | None:
        return self.users.get((account, user_id))


def condition_key(account: str, bot_id: str) -> str:
    """The key a bot's condition is compiled under."""
    return f"{account}/{bot_id}"


def ruleset_files(folder: Path) -> list[Path]:
    """The ruleset files of a folder, in name order (the order bots are listed in)."""
    if not folder.is_dir():
        raise RulesetError([Problem(str(folder), "no such rulesets folder")])
    return sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())


def folder_fingerprint(folder: Path) -> str:
    """A digest of the ruleset files' names and contents: it changes when any file does."""
    digest = hashlib.sha256()
    try:
        for path in ruleset_files(folder):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    except (RulesetError, OSError):
        digest.update(b"unreadable")
    return digest.hexdigest()


def parse_file(path: Path) -> tuple[RulesetFile | None, list[Problem]]:
    """Read and validate one ruleset file on its own."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(name, f"cannot read the file: {exc}")]
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        else:
            data = yaml.safe_load(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [Problem(name, f"TOML syntax error: {exc}")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        return None, [Problem(name, f"YAML syntax error{where}: {reason}")]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [Problem(name, "a ruleset file must be a mapping with 'bots' and 'users'")]
    try:
        return RulesetFile.model_validate(data), []
    except ValidationError as exc:
        return None, [_problem(name, data, err) for err in exc.errors()]


def _problem(name: str, data: dict[str, Any], err: Mapping[str, Any]) -> Problem:
    loc = list(err["loc"])
    bot = None
    if len(loc) >= 2 and loc[0] == "bots" and isinstance(loc[1], int):
        raw = data.get("bots")
        item = raw[loc[1]] if isinstance(raw, list) and loc[1] < len(raw) else None
        bot = str(item["id"]) if isinstance(item, dict) and "id" in item else f"#{loc[1] + 1}"
        loc = loc[2:]
    message = str(err["msg"])
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    return Problem(name, message, bot=bot, field=".".join(str(part) for part in loc) or None)


def load_rulesets(folder: Path | str, catalog: Catalog) -> Rules:
    """Load every ruleset file of ``folder``; raise ``RulesetError`` listing all problems."""
    folder = Path(folder)
    problems: list[Problem] = []
    parsed: list[tuple[str, RulesetFile]] = []
    for path in ruleset_files(folder):
        content, file_problems = parse_file(path)
        problems += file_problems
        if content is not None:
            parsed.append((str(path), content))

    settings: dict[str, AccountSettings] = {}
    settings_sources: dict[str, str] = {}
    for name, content in parsed:
        if content.settings is None:
            continue
        if content.account in settings:
            problems.append(
                Problem(
                    name,
                    f"account {content.account!r} already has its settings "
                    f"in {settings_sources[content.account]}",
                    field="settings",
                )
            )
            continue
        settings[content.account] = content.settings
        settings_sources[content.account] = name

    users: dict[tuple[str, str], User] = {}
    user_sources: dict[tuple[str, str], str] = {}
    for name, content in parsed:
        for i, user in enumerate(content.users):
            key = (content.account, user.id)
            if key in users:
                problems.append(
                    Problem(
                        name,
                        f"user {user.id!r} is already declared in {user_sources[key]}",
                        field=f"users.{i}.id",
                    )
                )
            users[key] = user
            user_sources.setdefault(key, name)

    bots: dict[tuple[str, str], Bot] = {}
    sources: dict[tuple[str, str], str] = {}
    for name, content in parsed:
        for bot in content.bots:
            key = (content.account, bot.id)
            if key in bots:
                problems.append(
                    Problem(name, f"bot id is already used in {sources[key]}", bot=bot.id, field="id")
                )
                continue
            bots[key] = bot
            sources[key] = name
            problems += _check_bot(name, content.account, bot, users, catalog)
    problems += _check_plans(bots, sources, settings, settings_sources)

    conditions: dict[str, dict[str, Any]] = {
        condition_key(*key): bot.trigger.where for key, bot in bots.items() if bot.trigger.where is not None
    }
    if problems:
        raise RulesetError(sorted(problems, key=lambda p: p.file))
    try:
        condition_set = ConditionSet(conditions)
    except ConditionCompileError as exc:
        by_key = {condition_key(*key): key for key in bots}
        raise RulesetError(
            [
                Problem(sources[by_key[k]], msg, bot=by_key[k][1], field="trigger.where")
                if k in by_key
                else Problem(str(folder), msg)
                for k, msg in exc.errors.items()
            ]
        ) from None
    return Rules(bots=bots, users=users, conditions=condition_set, sources=sources, settings=settings)


def _check_bot(
    name: str,
    account: str,
    bot: Bot,
    users: Mapping[tuple[str, str], User],
    catalog: Catalog,
) -> list[Problem]:
    """Checks that need more than the bot itself: users, plugins' names, conditions, texts."""
    problems = [
        Problem(
            name,
            f"unknown user {user!r}: declare it under 'users' in a ruleset file of account {account!r}",
            bot=bot.id,
            field=f"users.{i}",
        )
        for i, user in enumerate(bot.users)
        if (account, user) not in users
    ]
    if bot.fallback is not None and (account, bot.fallback) not in users:
        problems.append(
            Problem(
                name,
                f"unknown user {bot.fallback!r}: declare it under 'users' in a "
                f"ruleset file of account {account!r}",
                bot=bot.id,
                field="fallback",
            )
        )
    if bot.sticky and "company" not in getattr(catalog.entities.get(bot.entity), "related", {}):
        problems.append(
            Problem(
                name, f"{bot.entity} records have no linked company to stick to", bot=bot.id, field="sticky"
            )
        )
    strategy = catalog.strategies.get(bot.strategy)
    if strategy is None:
        known = ", ".join(sorted(catalog.strategies)) or "none"
        problems.append(
            Problem(
                name, f"unknown strategy {bot.strategy!r}; available: {known}", bot=bot.id, field="strategy"
            )
        )
    else:
        problems += [
            Problem(name, msg, bot=bot.id, field="options") for msg in strategy.validate_options(bot.options)
        ]
    handler = catalog.entities.get(bot.entity)
    if handler is None:
        problems.append(Problem(name, f"no plugin handles {bot.entity} records", bot=bot.id, field="entity"))
    else:
        related = bot.actions.related
        problems += [
            Problem(
                name,
                f"{bot.entity} records have no linked {option}",
                bot=bot.id,
                field=f"actions.related.{option}",
            )
            for option in ("persons", "company")
            if getattr(related, option) and option not in handler.related
        ]
    if bot.actions.related.mode not in catalog.propagation_modes:
        known = ", ".join(sorted(catalog.propagation_modes)) or "none"
        problems.append(
            Problem(
                name,
                f"unknown mode {bot.actions.related.mode!r}; available: {known}",
                bot=bot.id,
                field="actions.related.mode",
            )
        )
    for action in ("note", "notify"):
        text = getattr(bot.actions, action)
        if text is not None:
            problems += [
                Problem(name, msg, bot=bot.id, field=f"actions.{action}") for msg in check_template(text)
            ]
    if bot.trigger.where is not None:
        problems += [
            Problem(name, msg, bot=bot.id, field="trigger.where" + (f".{path}" if path else ""))
            for path, msg in check_condition(bot.trigger.where)
        ]
    return problems


def _check_plans(
    bots: Mapping[tuple[str, str], Bot],
    sources: Mapping[tuple[str, str], str],
    settings: Mapping[str, AccountSettings],
    settings_sources: Mapping[str, str],
) -> list[Problem]:
    """What each account's plan allows: how many bots, for which entities, multiple owners."""
    problems: list[Problem] = []
    for account, account_settings in settings.items():
        plan = PLANS[account_settings.plan]
        if account_settings.multiple_owners and not plan.multiple_owners:
            problems.append(
                Problem(
                    settings_sources[account],
                    f"plan {plan.name!r} does not allow multiple owners",
                    field="settings.multiple_owners",
                )
            )
    first: dict[str, tuple[str, str]] = {}
    counts: dict[str, int] = {}
    for (account, bot_id), bot in bots.items():
        plan = PLANS[(settings.get(account) or AccountSettings()).plan]
        name = sources[(account, bot_id)]
        if bot.entity not in plan.entities:
            problems.append(
                Problem(
                    name,
                    f"plan {plan.name!r} allows bots for {' and '.join(plan.entities)} records only",
                    bot=bot_id,
                    field="entity",
                )
            )
        counts[account] = counts.get(account, 0) + 1
        first.setdefault(account, (bot_id, name))
        if plan.max_bots is not None and counts[account] > plan.max_bots:
            problems.append(
                Problem(
                    name,
                    f"plan {plan.name!r} allows {plan.max_bots} bot(s) per "
                    f"account; {first[account][0]!r} in {first[account][1]} "
                    "is already one",
                    bot=bot_id,
                )
            )
    return problems
