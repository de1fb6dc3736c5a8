"""The bot form of the admin page, as data: a bot of the rulebook to the form's values
and back, the rulebook's problems placed next to the fields, and the texts' preview.

Pure functions, no HTTP, so the round trip (a bot, its form, the same bot) is tested
without a server. The form edits the core's fields and every field a loaded plugin
declares for bots (``salesbot_ruleset_fields``), each shown by the kind of its schema: a
switch, a choice, a line of text or a number, else YAML. A key no loaded plugin declares
is kept as it was, and a field left at its default is not written, so a version's diff
shows only what the admin changed. The condition is built from rows
(``conditionform``) or written as YAML or JSON.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import TypeAdapter

from ..catalog import Catalog
from ..fields import Place
from ..models import EVENT_KINDS, Bot, Related
from ..rulebook import FieldProblem, mapping
from ..rulesets import load_yaml
from ..templates import check_template, record_values, render
from . import conditionform
from .conditionform import Built

#: The defaults the form shows for a new bot: the models' own (the core names no plugin;
#: which strategies and propagation modes exist is the catalog's to say).
DEFAULT_STRATEGY: str = Bot.model_fields["strategy"].default
DEFAULT_MODE: str = Related.model_fields["mode"].default
#: What a routed record already owned by a user gets (``trigger.owned``).
OWNED = ("leave", "reassign")
#: The texts with a preview, and the rulebook field of each.
TEXTS = {"tag": "actions.tag", "note": "actions.note", "notify": "actions.notify"}
#: The form field that shows a problem at a rulebook path (relative to the bot), by its
#: first parts; the longest match wins.
FIELDS = {
    "id": "id",
    "name": "name",
    "entity": "entity",
    "active": "active",
    "users": "users",
    "strategy": "strategy",
    "options": "options",
    "priority": "priority",
    "fallback": "fallback",
    "trigger": "events",
    "trigger.events": "events",
    "trigger.processes": "processes",
    "trigger.where": "where",
    "trigger.owned": "owned",
    "actions": "note",
    "actions.related": "related",
    "actions.tag": "tag",
    "actions.note": "note",
    "actions.notify": "notify",
}
#: How the condition is edited: built from rows, or written as YAML or JSON.
WHERE_MODES = ("builder", "raw")
#: The kinds of plugin field the form shows, by the type of their JSON Schema.
_KINDS = {"boolean": "switch", "integer": "integer", "number": "number", "string": "text"}


@dataclass(frozen=True)
class PluginField:
    """A bot field a plugin declares, as the form shows it: ``kind`` is ``switch``,
    ``choice`` (of ``choices``), ``text``, ``integer``, ``number`` or ``yaml``."""

    key: str
    kind: str
    default: Any
    description: str = ""
    choices: tuple[str, ...] = ()
    #: The keys of a mapping value (a model's fields), as a hint beside its YAML.
    keys: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The form field's name and id (apart from the core's: a plugin may take any key)."""
        return f"plugin-{self.key}"

    def shown(self, value: Any) -> str:
        """A value as the form shows it (``on`` for a switch that is on)."""
        if self.kind == "switch":
            return "on" if value is True else ""
        if self.kind == "yaml":
            return "" if value == self.default else text_of(value, always=True)
        return "" if value is None or value == self.default else str(value)


def plugin_fields(catalog: Catalog, place: Place = "bot") -> list[PluginField]:
    """The bot (or user) fields the loaded plugins declare, by key, each with the kind
    the form shows it as, read from its JSON Schema."""
    found = []
    for key, spec in sorted(catalog.fields_of(place).items()):
        schema = TypeAdapter(spec.type).json_schema()
        kind = _KINDS.get(schema.get("type", ""), "yaml")
        choices = tuple(schema.get("enum", ()))
        if kind == "text" and choices and all(isinstance(c, str) for c in choices):
            kind = "choice"
        found.append(PluginField(key, kind, spec.default, spec.description, choices, _keys(schema)))
    return found


def _keys(schema: Mapping[str, Any]) -> tuple[str, ...]:
    """The properties of an object schema, of the object a nullable one allows, or of a
    list's items."""
    defs = schema.get("$defs", {})
    items = schema.get("items")
    for option in [schema, *schema.get("anyOf", []), *([items] if isinstance(items, dict) else [])]:
        ref = str(option.get("$ref", ""))
        target = defs.get(ref.rsplit("/", 1)[-1], {}) if ref else option
        if isinstance(target.get("properties"), dict):
            return tuple(target["properties"])
    return ()


@dataclass
class BotForm:
    """What the form shows and posts, as text and choices (kept as typed on an error)."""

    id: str = ""
    name: str = ""
    entity: str = "deal"
    active: bool = True
    users: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=lambda: list(EVENT_KINDS))
    processes: str = ""
    owned: str = "leave"
    where: str = ""
    related_persons: bool = False
    related_company: bool = False
    related_mode: str = DEFAULT_MODE
    tag: str = ""
    note: str = ""
    notify: str = ""
    strategy: str = DEFAULT_STRATEGY
    options: str = ""
    priority: str = "0"
    fallback: str = ""
    where_mode: str = "builder"
    cond: Built = field(default_factory=Built)
    #: Each plugin field's value as shown, by key (see ``PluginField.shown``).
    plugins: dict[str, str] = field(default_factory=dict)


def text_of(value: Any, always: bool = False) -> str:
    """A condition or options mapping as the form shows it: YAML, readable and re-readable
    (``always``: an empty or false value too, which a plugin field may hold)."""
    if not value and not always:
        return ""
    return str(yaml.safe_dump(value, allow_unicode=True, sort_keys=False, default_flow_style=False))


def from_bot(bot: Mapping[str, Any], fields: Sequence[PluginField] = ()) -> BotForm:
    """The form of a bot kept in the rulebook, with the plugin ``fields``."""
    trigger = mapping(bot.get("trigger"))
    built = conditionform.rows_of(trigger.get("where")) if isinstance(trigger.get("where"), dict) else None
    actions = mapping(bot.get("actions"))
    related = mapping(actions.get("related"))
    processes = trigger.get("processes")
    return BotForm(
        id=str(bot.get("id", "")),
        name=str(bot.get("name", "")),
        entity=str(bot.get("entity", "deal")),
        active=bot.get("active", True) is not False,
        users=[str(u) for u in bot.get("users", [])] if isinstance(bot.get("users"), list) else [],
        events=list(trigger.get("events", EVENT_KINDS)),
        processes=", ".join(map(str, processes)) if isinstance(processes, list) else "",
        owned=str(trigger.get("owned", "leave")),
        where=text_of(trigger.get("where")),
        related_persons=bool(related.get("persons")),
        related_company=bool(related.get("company")),
        related_mode=str(related.get("mode", DEFAULT_MODE)),
        tag=str(actions.get("tag") or ""),
        note=str(actions.get("note") or ""),
        notify=str(actions.get("notify") or ""),
        strategy=str(bot.get("strategy", DEFAULT_STRATEGY)),
        options=text_of(bot.get("options")),
        priority=str(bot.get("priority", 0)),
        fallback=str(bot.get("fallback") or ""),
        where_mode="builder" if built is not None or not trigger.get("where") else "raw",
        cond=built or Built(),
        plugins={f.key: f.shown(bot.get(f.key, f.default)) for f in fields},
    )


def from_post(
    posted: Mapping[str, Sequence[str]], bot_id: str | None = None, fields: Sequence[PluginField] = ()
) -> BotForm:
    """The form as posted (each field's values as sent); ``bot_id``: the bot being edited.
    In the builder's mode the condition's text is the one its rows make."""

    def one(name: str, default: str = "") -> str:
        values = posted.get(name)
        return values[0] if values else default

    return BotForm(
        id=bot_id if bot_id is not None else one("id").strip(),
        name=one("name").strip(),
        entity=one("entity", "deal"),
        active=one("active") == "on",
        users=list(posted.get("users", [])),
        events=list(posted.get("events", [])),
        processes=one("processes"),
        owned=one("owned", "leave"),
        where=one("where"),
        related_persons=one("related_persons") == "on",
        related_company=one("related_company") == "on",
        related_mode=one("related_mode", DEFAULT_MODE),
        tag=one("tag"),
        note=one("note"),
        notify=one("notify"),
        strategy=one("strategy", DEFAULT_STRATEGY),
        options=one("options"),
        priority=one("priority", "0").strip(),
        fallback=one("fallback"),
        where_mode=one("where_mode", "builder") if one("where_mode") in WHERE_MODES else "builder",
        cond=conditionform.from_post(posted),
        plugins={f.key: one(f.name) for f in fields},
    )


def set_field(target: dict[str, Any], key: str, value: Any, default: Any) -> None:
    """Write ``value``; a default is not written (but kept where the bot said it already)."""
    if value != default:
        target[key] = value
    elif key in target and target[key] != default:
        del target[key]


def _value(text: str, name: str, problems: list[FieldProblem]) -> Any:
    """A YAML or JSON value typed in a text area; None when empty (or unreadable: the
    problem is added)."""
    if not text.strip():
        return None
    value, problem = load_yaml(name, text)
    if problem is not None:
        problems.append(FieldProblem(name, f"not readable YAML or JSON: {problem.message}"))
        return None
    return value


def _mapping(text: str, name: str, problems: list[FieldProblem]) -> dict[str, Any] | None:
    """A YAML or JSON mapping typed in a text area; None when empty (or unreadable: the
    problem is added)."""
    value = _value(text, name, problems)
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(FieldProblem(name, "must be a mapping (key: value), as YAML or JSON"))
        return None
    return value


def where_of(form: BotForm, problems: list[FieldProblem]) -> dict[str, Any] | None:
    """The condition the form says: its rows' in the builder's mode, else its text."""
    if form.where_mode == "builder":
        condition, found = conditionform.condition_of(form.cond)
        problems += found
        return condition
    return _mapping(form.where, conditionform.FIELD, problems)


def plugin_value(spec: PluginField, text: str, problems: list[FieldProblem]) -> Any:
    """A plugin field's value as typed (its default when left empty)."""
    if spec.kind == "switch":
        return text == "on"
    if not text.strip():
        return spec.default
    if spec.kind in ("integer", "number"):
        try:
            return int(text) if spec.kind == "integer" else float(text)
        except ValueError:
            problems.append(
                FieldProblem(spec.key, f"must be a {'whole ' if spec.kind == 'integer' else ''}number")
            )
            return spec.default
    if spec.kind == "yaml":
        return _value(text, spec.key, problems)
    return text


def set_plugin_field(
    target: dict[str, Any], spec: PluginField, text: str, problems: list[FieldProblem]
) -> None:
    """Write a plugin field's value as typed into a bot or user (its default: left out)."""
    # A tuple default (an empty list a plugin cannot share) is the list a rulebook keeps.
    value, default = (
        list(v) if isinstance(v, tuple) else v for v in (plugin_value(spec, text, problems), spec.default)
    )
    set_field(target, spec.key, value, default)


def to_bot(
    form: BotForm, kept: Mapping[str, Any], fields: Sequence[PluginField] = ()
) -> tuple[dict[str, Any], list[FieldProblem]]:
    """The bot the form describes, over the ``kept`` one (its other keys stay), and the
    problems the form itself finds (unreadable YAML, a priority that is no number, a
    condition row without a value); the rest is checked with the whole rulebook."""
    problems: list[FieldProblem] = []
    bot = copy.deepcopy(dict(kept))
    bot.pop("id", None)
    set_field(bot, "name", form.name, "")
    bot["entity"] = form.entity
    set_field(bot, "active", form.active, True)
    bot["users"] = list(form.users)
    set_field(bot, "strategy", form.strategy, DEFAULT_STRATEGY)
    set_field(bot, "options", _mapping(form.options, "options", problems) or {}, {})
    try:
        set_field(bot, "priority", int(form.priority or "0"), 0)
    except ValueError:
        problems.append(FieldProblem("priority", f"must be a whole number, not {form.priority!r}"))
    set_field(bot, "fallback", form.fallback or None, None)
    for spec in fields:
        if spec.key in form.plugins:
            set_plugin_field(bot, spec, form.plugins[spec.key], problems)

    trigger = dict(bot.get("trigger") or {})
    set_field(trigger, "events", list(form.events), list(EVENT_KINDS))
    processes = [p.strip() for p in form.processes.split(",") if p.strip()]
    set_field(trigger, "processes", processes or None, None)
    set_field(trigger, "where", where_of(form, problems), None)
    set_field(trigger, "owned", form.owned, "leave")
    set_field(bot, "trigger", trigger, {})

    actions = dict(bot.get("actions") or {})
    related = dict(actions.get("related") or {})
    set_field(related, "persons", form.related_persons, False)
    set_field(related, "company", form.related_company, False)
    set_field(related, "mode", form.related_mode, DEFAULT_MODE)
    set_field(actions, "related", related, {})
    for name, path in TEXTS.items():
        set_field(actions, path.split(".")[1], getattr(form, name) or None, None)
    set_field(bot, "actions", actions, {})
    for key in ("trigger", "actions"):
        if bot.get(key) == {} or bot.get(key) is None:
            bot.pop(key, None)
    return bot, problems


def place(
    problems: Sequence[FieldProblem],
    index: int,
    fields: Sequence[PluginField] = (),
    section: str = "bots",
    form_fields: Mapping[str, str] = FIELDS,
    whole_path: bool = False,
) -> tuple[dict[str, list[str]], list[str]]:
    """The problems of the bot (or the ``section``'s entry) at ``bots[index]`` by form
    field (``form_fields``, and the plugin ``fields``), each worded with its path in the
    bot (``users[0]: unknown user 'ghost'``); the others (another bot's, the account's)
    as they are, for the top of the form. ``whole_path``: each worded with its path in the
    rulebook instead (``users[1].timezone: ...``)."""
    names = {**form_fields, **{spec.key: spec.name for spec in fields}}
    entry_path = re.compile(rf"^{re.escape(section)}\[(\d+)\]\.?")
    by_field: dict[str, list[str]] = {}
    others: list[str] = []
    for problem in problems:
        found = entry_path.match(problem.field)
        if found is None and problem.field.split(".")[0] in names:  # the form's own, relative already
            rest = problem.field
        elif found is not None and int(found.group(1)) == index:
            rest = problem.field[found.end() :]
        else:
            others.append(str(problem))
            continue
        parts = re.sub(r"\[\d+\]", "", rest).split(".")
        name = next(
            (names[".".join(parts[:n])] for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in names),
            None,
        )
        if name is None:
            others.append(str(problem))
            continue
        shown = str(problem) if whole_path else f"{rest}: {problem.message}" if rest else problem.message
        by_field.setdefault(name, []).append(shown)
    return by_field, others


#: The record a preview renders the texts for: made up, with the usual fields.
SAMPLE: dict[str, dict[str, Any]] = {
    "deal": {"id": "d-1001", "title": "Sample deal", "value": 12000, "process": "sales", "currency": "EUR"},
    "person": {"id": "p-1001", "name": "Sample person", "email": "sample@example.com"},
    "company": {"id": "c-1001", "name": "Sample company"},
    "task": {"id": "t-1001", "title": "Sample task"},
}


@dataclass(frozen=True)
class Preview:
    """A text rendered for a sample record, or why it cannot be."""

    text: str | None
    problems: list[str]

    def as_json(self) -> str:
        return json.dumps({"text": self.text, "problems": self.problems}, ensure_ascii=False)


def preview(
    text: str, bot: Mapping[str, Any], owner: Mapping[str, Any] | None, limit: int | None = None
) -> Preview:
    """``text`` (a tag, wall note or notification) as the bot would write it for a sample
    record of its entity, picked for ``owner`` (the pool's first user)."""
    problems = check_template(text)
    if problems:
        return Preview(None, problems)
    entity = str(bot.get("entity", "deal"))
    record = {"entity": entity, **SAMPLE.get(entity, SAMPLE["deal"])}
    values = {
        "bot": {"id": bot.get("id"), "name": bot.get("name") or bot.get("id"), "entity": entity},
        "owner": dict(owner or {"id": "someone", "name": "Someone"}),
        "record": record_values(record),
    }
    values["owner"].setdefault("name", values["owner"].get("id"))
    return Preview(render(text, values, limit), [])
