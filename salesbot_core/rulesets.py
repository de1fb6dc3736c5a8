"""Ruleset files: a folder of YAML or TOML files loaded, validated and compiled as one set.

A set loads whole or not at all: every problem in every file is collected, each naming
the file, the bot and the field, and raised together as ``RulesetError``.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .catalog import Catalog
from .conditions import ConditionCompileError, ConditionSet, check_condition, choose_evaluator
from .errors import Problem, RulesetError
from .fields import Place
from .models import PLANS, AccountSettings, Bot, RulesetFile, User
from .safetext import excerpt
from .strategy import Strategy, option_problems
from .templates import check_template

SUFFIXES = (".yaml", ".yml", ".toml")

# Ruleset files are written by account admins, so they are untrusted input: each one is
# bounded in size, nesting and (with YAML aliases expanded) number of values before it is
# validated, so a small hostile file cannot hang or exhaust the process.

#: The largest ruleset file read, in bytes; ``SALESBOT_MAX_RULESET_BYTES`` or the
#: ``max_bytes`` argument of :func:`load_rulesets` changes it.
MAX_FILE_BYTES = 1024 * 1024
#: The environment variable that overrides :data:`MAX_FILE_BYTES`.
MAX_BYTES_VARIABLE = "SALESBOT_MAX_RULESET_BYTES"
#: The most levels of nested mappings and lists in a file (the top mapping is level 1).
MAX_DEPTH = 32
#: The most values (mappings, lists, keys and scalars) in a file, every use of a YAML
#: alias counted as a full copy of what it names: the "billion laughs" bound.
MAX_NODES = 100_000
#: The longest key quoted in a field path of a nesting problem.
_LABEL_LENGTH = 40


#: The settings of an account no file sets (frozen, so one instance serves them all: the
#: decision asks for them a few times per event).
DEFAULT_SETTINGS = AccountSettings()


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
    #: Each account's rules version, when its rules are kept in the store (see
    #: ``salesbot_core.rulebook``); an account of a folder has none.
    versions: Mapping[str, int] = field(default_factory=dict)
    #: The account of each file, by path, in load order: what an account's admin may be
    #: shown of the folder (a file holds one account's rules).
    files: Mapping[str, str] = field(default_factory=dict)

    def account_settings(self, account: str) -> AccountSettings:
        return self.settings.get(account) or DEFAULT_SETTINGS

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


def field_condition_key(account: str, bot_id: str, key: str, path: str) -> str:
    """The key a condition inside a plugin's bot field (``FieldSpec.conditions``) is
    compiled under: the bot's key, then the field path (ids hold no ``/``)."""
    return f"{condition_key(account, bot_id)}/{key}.{path}"


def _field_conditions(bot: Bot, catalog: Catalog) -> dict[str, Mapping[str, Any]]:
    """The ``where`` conditions the plugins' fields of ``bot`` hold, by field path."""
    return {
        f"{key}.{path}": condition
        for key, spec in catalog.fields_of("bot").items()
        if spec.conditions is not None and key in bot.plugin_fields
        for path, condition in spec.conditions(spec.get(bot)).items()
    }


def max_file_bytes(max_bytes: int | None = None) -> int:
    """The per-file size limit: ``max_bytes``, else ``SALESBOT_MAX_RULESET_BYTES``, else
    :data:`MAX_FILE_BYTES`. Raises ``RulesetError`` if the variable is not a whole number."""
    if max_bytes is not None:
        return max_bytes
    raw = os.environ.get(MAX_BYTES_VARIABLE)
    if raw is None or not raw.strip():
        return MAX_FILE_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise RulesetError(
            [Problem(MAX_BYTES_VARIABLE, f"must be a positive whole number of bytes, not {excerpt(raw)}")]
        )
    return value


def scan_folder(folder: Path) -> tuple[list[Path], list[Problem]]:
    """The ruleset files of a folder in name order (the order bots are listed in), and the
    problems of entries that look like ruleset files but cannot be loaded.

    A symbolic link is followed only to a file inside the folder: one pointing elsewhere
    could make an error message quote another file's lines (``/etc/shadow`` read as YAML).
    Broken links and suffixes in the wrong case are reported, not skipped silently, so a
    file the admin meant to load never goes missing unnoticed.
    """
    if not folder.is_dir():
        raise RulesetError([Problem(str(folder), "no such rulesets folder")])
    root = folder.resolve()
    files: list[Path] = []
    problems: list[Problem] = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in SUFFIXES or path.name.startswith("."):
            # Hidden files are not rules: editors keep lock and swap files there (Emacs'
            # ".#bots.yaml" is a dangling link while the file is being edited).
            continue
        name = str(path)
        if path.suffix not in SUFFIXES:
            problems.append(Problem(name, f"suffix must be lower case {path.suffix.lower()} to be loaded"))
            continue
        if path.is_symlink():
            try:
                target = path.resolve(strict=True)
            except (OSError, RuntimeError):  # missing target, or a loop (RuntimeError)
                problems.append(Problem(name, "broken symbolic link (its target is missing or loops)"))
                continue
            if not target.is_relative_to(root):
                problems.append(Problem(name, "symbolic link to a file outside the rulesets folder"))
                continue
        if path.is_file():
            files.append(path)
    return files, problems


#: A file modified this close (seconds) to a stat snapshot may be written again within the
#: file system's timestamp granularity without its stats changing: such a snapshot is not
#: trusted to say "unchanged" (the "racy" case, as git handles its index).
STAT_MARGIN = 2.0


def folder_stats(folder: Path, now: float) -> tuple[tuple[str, int, int], ...] | None:
    """The name, size and modification time of each ruleset file of ``folder``, a cheap
    stand-in for its contents: equal stats mean unchanged files. None when the stats can't
    be trusted to say so: a file was modified within ``STAT_MARGIN`` seconds of ``now``
    (Unix time), or the folder can't be read."""
    try:
        files, problems = scan_folder(folder)
        stats = [(p.file + "\0" + p.message, 0, 0) for p in problems]
        for path in files:
            stat = path.stat()
            if stat.st_mtime >= now - STAT_MARGIN:
                return None
            stats.append((path.name, stat.st_size, stat.st_mtime_ns))
    except (RulesetError, OSError):
        return None
    return tuple(stats)


def folder_fingerprint(folder: Path) -> str:
    """A digest of the ruleset files' names and contents: it changes when any file does.

    A file over the size limit is not read (it will not load anyway): its size and
    modification time stand for its contents.
    """
    digest = hashlib.sha256()
    try:
        limit = max_file_bytes()
        files, problems = scan_folder(folder)
        for problem in problems:
            digest.update(problem.file.encode("utf-8", "surrogateescape") + b"\0" + problem.message.encode())
        for path in files:
            stat = path.stat()
            if stat.st_size > limit:
                content = f"{stat.st_size} {stat.st_mtime_ns}".encode()
            else:
                content = path.read_bytes()
            digest.update(path.name.encode("utf-8", "surrogateescape") + b"\0" + content + b"\0")
    except (RulesetError, OSError):
        digest.update(b"unreadable")
    return digest.hexdigest()


def _read(path: Path, max_bytes: int) -> str:
    """The text of a file of at most ``max_bytes`` bytes; ``ValueError`` if it is larger.

    The size is checked before reading, and the read itself is bounded too, in case the
    file grows in between.
    """
    with path.open("rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        raw = b"" if size > max_bytes else stream.read(max_bytes + 1)
    if size > max_bytes or len(raw) > max_bytes:
        raise ValueError(
            f"the file is larger than {max_bytes} bytes, the most a ruleset file may hold "
            f"(set {MAX_BYTES_VARIABLE} to change it)"
        )
    return raw.decode("utf-8")


#: A value's children as (key, child) pairs; ``None`` for a scalar. The key is the
#: mapping key or list index naming the child in a field path (``None`` for a key itself).
_Children = Callable[[Any], list[tuple[str | int | None, Any]] | None]


def _yaml_children(node: yaml.Node) -> list[tuple[str | int | None, Any]] | None:
    if isinstance(node, yaml.MappingNode):
        pairs: list[tuple[str | int | None, Any]] = []
        for key, value in node.value:
            pairs += [(None, key), (key.value if isinstance(key, yaml.ScalarNode) else "?", value)]
        return pairs
    if isinstance(node, yaml.SequenceNode):
        return list(enumerate(node.value))
    return None


def _data_children(value: Any) -> list[tuple[str | int | None, Any]] | None:
    if isinstance(value, dict):
        return [(None, key) for key in value] + [(str(key), item) for key, item in value.items()]
    if isinstance(value, list):
        return list(enumerate(value))
    return None


def _shape_problem(name: str, root: Any, children: _Children) -> Problem | None:
    """Why a parsed file is too big or too deep to load, or ``None``.

    YAML aliases make the parsed value a graph in which one node can be reached many
    times: a 900-byte file can stand for 10^10 values. Every node's expanded size and
    height is computed once (memoised by identity) in an explicit-stack walk, so the
    check is linear in the file and never recurses however deep the file nests.
    """
    measured: dict[int, tuple[int, int]] = {}  # id -> (size capped at MAX_NODES + 1, height)
    started: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finish = stack.pop()
        kids = children(node)
        if kids is None or id(node) in measured:
            continue
        if finish:
            size, height = 1, 0
            for _, kid in kids:
                kid_size, kid_height = measured.get(id(kid), (1, 0))  # a scalar: (1, 0)
                size, height = min(size + kid_size, MAX_NODES + 1), max(height, kid_height)
            measured[id(node)] = (size, height + 1)
        elif id(node) in started:  # reached again before it was measured: it holds itself
            return Problem(name, "a value contains itself through an alias")
        else:
            started.add(id(node))
            stack.append((node, True))
            stack += [(kid, False) for _, kid in kids]
    size, height = measured.get(id(root), (1, 0))
    if height > MAX_DEPTH:
        # The path down to the first level too deep, along the deepest branch.
        path: list[str] = []
        node = root
        for _ in range(MAX_DEPTH):
            label, node = max(children(node) or [], key=lambda kid: measured.get(id(kid[1]), (1, 0))[1])
            text = "?" if label is None else str(label)
            path.append(text[:_LABEL_LENGTH] + ("…" if len(text) > _LABEL_LENGTH else ""))
        return Problem(name, f"nested deeper than {MAX_DEPTH} levels", field=".".join(path))
    if size > MAX_NODES:
        return Problem(name, f"the file holds more than {MAX_NODES} values, each alias counted as a copy")
    return None


class _TooDeep(Exception):
    """A file nests deeper than the parser can go (or than MAX_DEPTH, for YAML [ and {)."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, giving up at ``4 * MAX_DEPTH`` nested ``[`` or ``{``: its
    scanner slows down with every open flow collection (10,000 took seconds). Up to that
    depth the file is parsed, so the problem can name the path of the too-deep value."""

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        if self.flow_level >= 4 * MAX_DEPTH:
            raise _TooDeep
        super().fetch_flow_collection_start(TokenClass)


def _load_yaml(name: str, text: str) -> tuple[Any, Problem | None]:
    """Parse YAML, checking its node graph (aliases unexpanded) before building values."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        problem = _shape_problem(name, node, _yaml_children)
        if problem is not None:
            return None, problem
        return loader.construct_document(node), None
    finally:
        loader.dispose()


def _unreadable(name: str, exc: Exception) -> Problem:
    """Why a text could not be parsed, without quoting it."""
    if isinstance(exc, (RecursionError, _TooDeep)):
        # The parsers recurse per level of nesting; far past MAX_DEPTH they run out of stack.
        return Problem(name, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(exc, yaml.YAMLError):
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        # Only the first line: the rest of str(exc) quotes the file's text.
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return Problem(name, f"YAML syntax error{where}: {reason}")
    # A ValueError: an integer of more than 4300 digits.
    return Problem(name, f"a value cannot be read: {str(exc).split(';')[0]}")


def load_yaml(name: str, text: str) -> tuple[Any, Problem | None]:
    """Parse untrusted YAML (a ruleset file, or a condition typed into the admin page's
    form) with the limits of a ruleset file: its value, or the problem that stopped it."""
    try:
        return _load_yaml(name, text)
    except (RecursionError, _TooDeep, yaml.YAMLError, ValueError) as exc:
        return None, _unreadable(name, exc)


def parse_file(
    path: Path, max_bytes: int = MAX_FILE_BYTES, catalog: Catalog | None = None
) -> tuple[RulesetFile | None, list[Problem]]:
    """Read and validate one ruleset file on its own; the plugin-owned fields of its
    users and bots are validated through the ``catalog``'s field specs (without one,
    any such field is unknown)."""
    data, problems = read_file(path, max_bytes)
    if problems:
        return None, problems
    return parse_data(str(path), {} if data is None else data, catalog)


def read_file(path: Path, max_bytes: int = MAX_FILE_BYTES) -> tuple[Any, list[Problem]]:
    """The parsed contents of one ruleset file as written (not validated: see
    ``parse_data``), bounded in size and nesting, or the problem that stops it being
    read. ``salesbot rules push`` keeps these contents, not the validated model, so an
    account's rules in the store are what its files say."""
    name = str(path)
    try:
        text = _read(path, max_bytes)
    except ValueError as exc:  # too large (UnicodeDecodeError is a ValueError too)
        reason = str(exc) if not isinstance(exc, UnicodeDecodeError) else f"cannot read the file: {exc}"
        return None, [Problem(name, reason)]
    except OSError as exc:
        return None, [Problem(name, f"cannot read the file: {exc}")]
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
            problem = _shape_problem(name, data, _data_children)
        else:
            data, problem = _load_yaml(name, text)
        if problem is not None:
            return None, [problem]
    except tomllib.TOMLDecodeError as exc:
        return None, [Problem(name, f"TOML syntax error: {exc}")]
    except (RecursionError, _TooDeep, yaml.YAMLError, ValueError) as exc:
        return None, [_unreadable(name, exc)]
    return data, []


def parse_data(
    name: str, data: Any, catalog: Catalog | None = None
) -> tuple[RulesetFile | None, list[Problem]]:
    """Validate the parsed contents of one ruleset (a file's, or an account's rules kept
    in the store, see ``salesbot_core.rulebook``), ``name`` standing for its file in
    problems. The caller bounds its size and depth first (files: ``parse_file``)."""
    if not isinstance(data, dict):
        return None, [Problem(name, "a ruleset file must be a mapping with 'bots' and 'users'")]
    core, plugin_values, problems = _split_plugin_fields(name, data, catalog)
    try:
        content = RulesetFile.model_validate(core)
    except ValidationError as exc:
        return None, problems + [_problem(name, data, err) for err in exc.errors()]
    if problems:
        return None, problems
    return content.model_copy(
        update={
            section: [entry.with_plugin_fields(plugin_values[section, i]) for i, entry in enumerate(entries)]
            for section, entries in (("users", content.users), ("bots", content.bots))
        }
    ), []


#: The list of a ruleset file each place of plugin fields is in.
_SECTIONS: tuple[tuple[str, Place], ...] = (("users", "user"), ("bots", "bot"))


def _split_plugin_fields(
    name: str, data: dict[str, Any], catalog: Catalog | None
) -> tuple[dict[str, Any], dict[tuple[str, int], dict[str, Any]], list[Problem]]:
    """The file without its plugin-owned fields (for the core model), each entry's
    plugin values validated through their owners' specs, and the problems found.

    A key that a blocked plugin would own is a problem naming that plugin; any other
    unknown key is left for the core model to report as an unknown field.
    """
    core = dict(data)
    values: dict[tuple[str, int], dict[str, Any]] = {}
    problems: list[Problem] = []
    for section, place in _SECTIONS:
        entries = data.get(section)
        if not isinstance(entries, list):
            continue
        specs = catalog.fields_of(place) if catalog else {}
        stripped: list[Any] = []
        for i, entry in enumerate(entries):
            values[section, i] = {}
            if not isinstance(entry, dict):
                stripped.append(entry)
                continue
            kept = {}
            for key, raw in entry.items():
                spec = specs.get(key) if isinstance(key, str) else None
                missing = (
                    catalog.not_loaded(f"{place} field", key) if catalog and isinstance(key, str) else None
                )
                if spec is not None:
                    try:
                        values[section, i][key] = spec.validate(raw)
                    except ValidationError as exc:
                        problems += [
                            _problem(name, data, {**err, "loc": (section, i, key, *err["loc"])})
                            for err in exc.errors()
                        ]
                elif missing is not None:
                    problems.append(
                        _problem(name, data, {"loc": (section, i, key), "msg": missing, "type": "not_loaded"})
                    )
                else:
                    kept[key] = raw
            stripped.append(kept)
        core[section] = stripped
    return core, values, problems


def _problem(name: str, data: dict[str, Any], err: Mapping[str, Any]) -> Problem:
    loc = list(err["loc"])
    bot = None
    if len(loc) >= 2 and loc[0] == "bots" and isinstance(loc[1], int):
        raw = data.get("bots")
        item = raw[loc[1]] if isinstance(raw, list) and loc[1] < len(raw) else None
        # The id as written (it may be the invalid value): Problem prints it as an excerpt.
        bot = str(item["id"]) if isinstance(item, dict) and "id" in item else f"#{loc[1] + 1}"
        loc = loc[2:]
    message = str(err["msg"])
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    return Problem(name, message, bot=bot, field=".".join(str(part) for part in loc) or None)


def load_rulesets(
    folder: Path | str,
    catalog: Catalog,
    max_bytes: int | None = None,
    conditions: str | None = None,
    isolated: bool = False,
) -> Rules:
    """Load every ruleset file of ``folder``; raise ``RulesetError`` listing all problems.

    ``max_bytes`` bounds each file's size (default: see :func:`max_file_bytes`).
    ``conditions`` names the condition evaluator (see
    :func:`salesbot_core.conditions.choose_evaluator`); ``EvaluatorError`` if it cannot run.
    ``isolated``: the files came from outside, so their conditions are compiled in a
    child process first (see :class:`salesbot_core.conditions.ConditionSet`).
    """
    folder = Path(folder)
    limit = max_file_bytes(max_bytes)
    paths, problems = scan_folder(folder)
    parsed: list[tuple[str, RulesetFile]] = []
    for path in paths:
        content, file_problems = parse_file(path, limit, catalog)
        problems += file_problems
        if content is not None:
            parsed.append((str(path), content))
    return build_rules(parsed, catalog, problems, str(folder), conditions, isolated)


def build_rules(
    parsed: list[tuple[str, RulesetFile]],
    catalog: Catalog,
    problems: list[Problem] | None = None,
    where: str = "rules",
    conditions: str | None = None,
    isolated: bool = False,
    versions: Mapping[str, int] | None = None,
) -> Rules:
    """Check parsed rulesets together (users, bots, plans across files) and compile their
    conditions; raise ``RulesetError`` with ``problems`` (found while parsing) and every
    new one. ``where`` names the whole set in a problem no file can be blamed for;
    ``versions`` are the accounts' rules versions when the rules came from the store."""
    evaluator = choose_evaluator(conditions)
    problems = list(problems or [])
    settings: dict[str, AccountSettings] = {}
    settings_sources: dict[str, str] = {}
    for name, content in parsed:
        if content.settings is None:
            continue
        if content.account in settings:
            problems.append(
                Problem(
                    name,
                    f"account {excerpt(content.account)} already has its settings "
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
                        f"user {excerpt(user.id)} is already declared in {user_sources[key]}",
                        field=f"users.{i}.id",
                    )
                )
            users[key] = user
            user_sources.setdefault(key, name)
            problems += [
                Problem(name, msg, field=f"users.{i}.{field_key}")
                for field_key, spec in catalog.fields_of("user").items()
                if spec.check is not None
                for msg in spec.check(spec.get(user), user, catalog)
            ]

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
    problems += _check_bot_refs(bots, sources, catalog)
    problems += _check_plans(bots, sources, settings, settings_sources)

    wheres: dict[str, Mapping[str, Any]] = {
        condition_key(*key): bot.trigger.where for key, bot in bots.items() if bot.trigger.where is not None
    }
    # Conditions of plugin fields: compiled with the bots' own, found by bot and field path.
    field_paths: dict[str, tuple[tuple[str, str], str]] = {}
    for key, bot in bots.items():
        for where, condition in _field_conditions(bot, catalog).items():
            compiled = field_condition_key(*key, *where.split(".", 1))
            wheres[compiled] = condition
            field_paths[compiled] = (key, where)
    # Whose problems they are: a Problem names its file, and the file its account.
    accounts = {name: content.account for name, content in parsed}
    if problems:
        raise RulesetError(sorted(problems, key=lambda p: p.file), accounts)
    try:
        condition_set = ConditionSet(wheres, evaluator, isolated)
    except ConditionCompileError as exc:
        by_key = {condition_key(*key): (key, "trigger.where") for key in bots} | field_paths
        raise RulesetError(
            [
                Problem(sources[by_key[k][0]], msg, bot=by_key[k][0][1], field=by_key[k][1])
                if k in by_key
                else Problem(where, msg)
                for k, msg in exc.errors.items()
            ],
            accounts,
        ) from None
    return Rules(
        bots=bots,
        users=users,
        conditions=condition_set,
        sources=sources,
        settings=settings,
        versions=dict(versions or {}),
        files=accounts,
    )


def _check_bot(
    name: str,
    account: str,
    bot: Bot,
    users: Mapping[tuple[str, str], User],
    catalog: Catalog,
) -> list[Problem]:
    """Checks that need more than the bot itself: users, plugins' names and fields,
    conditions, texts."""
    problems = [
        Problem(
            name,
            f"unknown user {excerpt(user)}: declare it under 'users' in a ruleset file "
            f"of account {excerpt(account)}",
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
                f"unknown user {excerpt(bot.fallback)}: declare it under 'users' in a "
                f"ruleset file of account {excerpt(account)}",
                bot=bot.id,
                field="fallback",
            )
        )
    for key, spec in catalog.fields_of("bot").items():
        if spec.check is not None:
            problems += [
                Problem(name, msg, bot=bot.id, field=key) for msg in spec.check(spec.get(bot), bot, catalog)
            ]
    strategy = catalog.strategies.get(bot.strategy)
    if strategy is None:
        problems.append(
            Problem(
                name,
                catalog.not_loaded("strategy", bot.strategy)
                or f"unknown strategy {excerpt(bot.strategy)}; available: {_names(catalog.strategies)}",
                bot=bot.id,
                field="strategy",
            )
        )
    else:
        problems += _check_options(name, bot, strategy, catalog)
    handler = catalog.entities.get(bot.entity)
    if handler is None:
        problems.append(
            Problem(
                name,
                catalog.not_loaded("entity", bot.entity) or f"no plugin handles {bot.entity} records",
                bot=bot.id,
                field="entity",
            )
        )
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
    mode = bot.actions.related.mode
    # Checked only for a bot that passes owners on: the default mode must not make every
    # bot depend on the plugin that provides it. Checked in single-owner accounts too
    # (which always replace), so that a typo is found before multiple owners are on.
    passes_on = bot.actions.related.persons or bot.actions.related.company
    if passes_on and mode not in catalog.propagation_modes:
        problems.append(
            Problem(
                name,
                catalog.not_loaded("propagation mode", mode)
                or f"unknown mode {excerpt(mode)}; available: {_names(catalog.propagation_modes)}",
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
    conditions = dict(_field_conditions(bot, catalog))
    if bot.trigger.where is not None:
        conditions["trigger.where"] = bot.trigger.where
    for where, condition in conditions.items():
        problems += [
            Problem(name, msg, bot=bot.id, field=where + (f".{path}" if path else ""))
            for path, msg in check_condition(condition)
        ]
    return problems


def _check_bot_refs(
    bots: Mapping[tuple[str, str], Bot], sources: Mapping[tuple[str, str], str], catalog: Catalog
) -> list[Problem]:
    """Bot ids named inside plugins' bot fields (``FieldSpec.bot_refs``) that are no bot of
    the account: checked once all files are read, as a bot may name one of a later file."""
    problems: list[Problem] = []
    for (account, bot_id), bot in bots.items():
        for key, spec in catalog.fields_of("bot").items():
            if spec.bot_refs is None or key not in bot.plugin_fields:
                continue
            problems += [
                Problem(
                    sources[(account, bot_id)],
                    f"unknown bot {excerpt(other)}: no bot of account {excerpt(account)} has this id",
                    bot=bot_id,
                    field=f"{key}.{path}",
                )
                for path, other in spec.bot_refs(spec.get(bot)).items()
                if (account, other) not in bots
            ]
    return problems


def _path(parts: Iterable[str | int]) -> str:
    """A field path, each part cut short: a key may be as long as the admin wrote it."""
    texts = (str(part) for part in parts)
    return ".".join(text[:_LABEL_LENGTH] + ("…" if len(text) > _LABEL_LENGTH else "") for text in texts)


def _names(provided: Mapping[str, Any]) -> str:
    return ", ".join(sorted(provided)) or "none"


def _check_options(name: str, bot: Bot, strategy: Strategy, catalog: Catalog) -> list[Problem]:
    """The bot's ``options``, through the strategy's options model and its checks."""
    problems = [
        Problem(name, msg, bot=bot.id, field=_path(("options", *path.split("."))) if path else "options")
        for path, msg in option_problems(strategy, bot.options)
    ]
    if strategy.check is not None and not problems:
        problems += [Problem(name, msg, bot=bot.id, field=path) for path, msg in strategy.check(bot, catalog)]
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
                    f"account; {excerpt(first[account][0])} in {first[account][1]} "
                    "is already one",
                    bot=bot_id,
                )
            )
    return problems
