"""``salesbot rules``: an account's rules kept in the store, from the command line.

``pull`` and ``push`` move an account's rules between a folder of ruleset files and the
store, so a repository of files can stay the place people edit (GitOps: one ``push`` per
merge) while the service runs ``--rules-from store``; ``versions``, ``diff`` and
``restore`` show and undo the versions, as the HTTP API and the admin page do.

A push is the API's publish: the files are checked by the code that checks a folder (each
problem names the file, the bot and the field), and become one new version, on the
version read (``--expect-version``: a compare-and-set for scripts). What the store keeps
is what the files say, as written, so a pull gives back the same document and pushing it
again makes no version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..safetext import escape
from ..vocabulary import DEFAULT_PLAN
from .common import (
    WHO,
    add_columns,
    cells,
    conditions_setting,
    echo_json,
    fail,
    json_option,
    print_table,
    with_store_rules,
)

if TYPE_CHECKING:
    from ..engine import Engine
    from ..errors import Problem

account_required = click.option("--account", "-a", required=True, help="The account (tenant).")
#: What an account the store lacks is created with, unless its files say otherwise.
NEW_ACCOUNT: dict[str, Any] = {"plan": DEFAULT_PLAN, "enabled": True}
folder_argument = click.argument("folder", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))


@click.group()
def rules() -> None:
    """Rules kept in the store: pull and push an account's files, and its versions."""


def _account_of(data: Any) -> Any:
    """The account a ruleset file's contents belong to (a file without one: ``default``)."""
    from ..models import RulesetFile

    return (
        data.get("account", RulesetFile.model_fields["account"].default) if isinstance(data, dict) else None
    )


def _account_files(folder: Path, account: str) -> tuple[list[tuple[Path, Any]], list[Problem]]:
    """The ruleset files of ``folder`` that hold ``account``'s rules, with their contents as
    written, and the problems of files that cannot be read (whose account is unknown)."""
    from ..rulesets import max_file_bytes, read_file, scan_folder

    paths, problems = scan_folder(folder)
    found = []
    for path in paths:
        data, file_problems = read_file(path, max_file_bytes())
        problems += file_problems
        data = {} if data is None else data  # an empty file: an empty ruleset, as when loaded
        if not file_problems and _account_of(data) in (account, None):
            found.append((path, data))
    return found, problems


def _folder_rulebook(
    engine: Engine, folder: Path, account: str, standing: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The account's rulebook from its files of ``folder`` and the standing they set
    (``settings.plan``, ``settings.enabled``), once the files are valid as a folder is,
    under that standing over ``standing`` (``RulesetError``: file, bot and field)."""
    from ..errors import Problem, RulesetError
    from ..rulebook import OPERATOR_SETTINGS, SECTIONS
    from ..rulesets import build_rules, parse_data

    found, problems = _account_files(folder, account)
    if not found and not problems:
        problems.append(Problem(str(folder), f"no ruleset file of account {account!r}"))
    settings: dict[str, Any] = next(
        (data["settings"] for _, data in found if isinstance(data.get("settings"), dict)), {}
    )
    given = {key: settings[key] for key in OPERATOR_SETTINGS if key in settings}
    parsed = []
    for i, (path, data) in enumerate(found):
        checked = dict(data)
        if data.get("settings") is settings or (not settings and i == 0):
            # Checked under the account's standing, as the store will run them.
            checked["settings"] = {**settings, **standing, **given}
        content, file_problems = parse_data(str(path), checked, engine.catalog)
        problems += file_problems
        if content is not None:
            parsed.append((str(path), content))
    build_rules(parsed, engine.catalog, problems, str(folder), conditions_setting()).conditions.close()
    book = {"settings": settings, **{s: [e for _, d in found for e in d.get(s) or []] for s in SECTIONS}}
    try:
        json.dumps(book, allow_nan=False)
    except (TypeError, ValueError) as exc:  # a TOML date or time has no JSON form
        raise RulesetError([Problem(str(folder), f"a value has no JSON form: {exc}")]) from None
    return book, given


@rules.command()
@folder_argument
@with_store_rules
@account_required
@click.option("--message", "-m", default=None, help="Why: kept with the version.")
@click.option(
    "--expect-version",
    type=click.IntRange(0),
    default=None,
    help="Publish only if the account's current version is this one (0: no version yet).",
)
def push(engine: Engine, folder: Path, account: str, message: str | None, expect_version: int | None) -> None:
    """Publish the account's ruleset files of DIR as one new version of its rules.

    The files are checked as `salesbot validate` checks a folder; any problem is printed
    (file, bot, field) and nothing is written. Files that say what the current version
    says make no version. An account the store lacks is created; the files'
    settings.plan and settings.enabled set its standing (the operator's, not versioned).
    """
    from ..errors import StaleVersion

    rows = engine.store.accounts(account)
    row = rows[0] if rows else None
    current = row.version if row is not None else 0
    if expect_version is not None and expect_version != current:
        raise StaleVersion(account, expect_version, current)
    standing = row.standing if row is not None else dict(NEW_ACCOUNT)
    book, given = _folder_rulebook(engine, folder, account, standing)
    if row is None:
        engine.store.create_account(account, **{**NEW_ACCOUNT, **given})
        click.echo(escape(f"created account {account!r}"))
    elif changed := {key: value for key, value in given.items() if standing[key] != value}:
        engine.store.update_account(account, **changed)
        said = [
            f"plan {value}" if key == "plan" else "enabled" if value else "disabled"
            for key, value in changed.items()
        ]
        click.echo(escape(f"account {account!r}: " + ", ".join(said)))
    version = engine.publish(account, book, current, author=WHO, message=message)
    state = "unchanged" if version == current else "published"
    click.echo(escape(f"account {account!r}: {state}, version {version}"))


def _ordered(entry: Any, fields: Sequence[str]) -> Any:
    """An entry's keys in the order of its model's fields (the order the docs show), then
    any other (a plugin's) by name."""
    if not isinstance(entry, dict):
        return entry
    rank = {name: i for i, name in enumerate(fields)}
    return dict(sorted(entry.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


@rules.command()
@folder_argument
@with_store_rules
@account_required
@click.option("--version", "version", type=click.IntRange(1), default=None, help="An older version.")
@click.option("--force", is_flag=True, help="Replace the account's ruleset files already in DIR.")
def pull(engine: Engine, folder: Path, account: str, version: int | None, force: bool) -> None:
    """Write the account's rules (its current version) as the ruleset file DIR/ACCOUNT.yaml.

    The account's ruleset files already in DIR are left alone (and named) unless --force,
    which replaces them with the one file; `salesbot rules push` publishes it back.
    """
    import yaml

    from ..models import AccountSettings, Bot, User

    row = engine.account(account)
    number, book = engine.rulebook(account, version)
    target = folder / f"{account}.yaml"
    there = [path for path, _ in _account_files(folder, account)[0]] if folder.is_dir() else []
    there += [target] if target.exists() and target not in there else []
    if there and not force:
        fail(
            f"{folder} already holds ruleset files of account {account!r} "
            f"({', '.join(path.name for path in there)}): pass --force to replace them"
        )
    document = {
        "account": account,
        # The operator's settings first: they are not the version's, and a push sets them.
        "settings": _ordered(
            {**row.standing, **book.get("settings", {})},
            list(dict.fromkeys(["plan", "enabled", *AccountSettings.model_fields])),
        ),
        "users": [_ordered(user, list(User.model_fields)) for user in book["users"]],
        "bots": [_ordered(bot, list(Bot.model_fields)) for bot in book["bots"]],
    }
    header = (
        f"# The rules of account {account!r}, version {number}, as `salesbot rules pull` wrote them.\n"
        f"# Publish a change with: salesbot rules push --account {account} DIR\n"
    )
    folder.mkdir(parents=True, exist_ok=True)
    for path in there:
        if path != target:
            path.unlink()
            click.echo(escape(f"removed {path}"))
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    target.write_text(header + text, encoding="utf-8")
    click.echo(escape(f"wrote {target} (account {account!r}, version {number})"))


@rules.command()
@with_store_rules
@account_required
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Newest first.")
@json_option
def versions(engine: Engine, account: str, limit: int, as_json: bool) -> None:
    """The account's versions of its rules, newest first: who, when and why."""
    from rich.table import Table

    kept = engine.versions(account, limit)
    rows = [v.summary() for v in kept]
    if as_json:
        echo_json({"account": account, "version": engine.account(account).version, "versions": rows})
        return
    columns = ["version", "created", "author", "message", "restored from"]
    values = [
        [r["version"], r["created_at"], r["author"] or "", r["message"] or "", r["restored_from"] or ""]
        for r in rows
    ]
    table = Table(title=f"versions of account {escape(account)!r}")
    add_columns(table, columns, ["version", "created"], values)
    for value in values:
        table.add_row(*cells(*value))
    print_table(table)


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


@rules.command()
@click.argument("version", type=click.IntRange(1))
@with_store_rules
@account_required
@click.option("--against", type=click.IntRange(0), default=None, help="Default: the version before.")
@json_option
def diff(engine: Engine, version: int, account: str, against: int | None, as_json: bool) -> None:
    """What VERSION of the account's rules changed, field by field."""
    changes = engine.version_diff(account, version, against)
    if as_json:
        echo_json({"account": account, "version": version, "against": against, "changes": changes})
        return
    for change in changes:
        if change["op"] == "changed" or change["op"] == "reordered":
            shown = f"{_value(change['before'])} -> {_value(change['after'])}"
        else:
            shown = _value(change.get("after", change.get("before")))
        click.echo(escape(f"{change['op']} {change['path']}: {shown}"))
    if not changes:
        click.echo("no changes")


@rules.command()
@click.argument("version", type=click.IntRange(1))
@with_store_rules
@account_required
@click.option("--message", "-m", default=None, help="Why (default: restore version VERSION).")
def restore(engine: Engine, version: int, account: str, message: str | None) -> None:
    """Publish VERSION of the account's rules again, as a new version."""
    current = engine.account(account).version
    published = engine.restore(account, version, current, author=WHO, message=message)
    click.echo(escape(f"account {account!r}: version {version} restored as version {published}"))
