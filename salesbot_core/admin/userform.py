"""The user form of the admin page: a user's name, e-mail, time zone, and every user field
the loaded plugins declare (shown by the type of its JSON Schema, as the bot form shows a
plugin's bot fields: ``botform.plugin_fields``), as text that is published as the user's
entry in the account's rulebook.

The form checks only what it reads itself (YAML that does not parse); the rest (a time
zone ``zoneinfo`` does not know, working hours that end before they start) is checked with
the whole rulebook, by the code that checks ruleset files, each problem at its path
(``users[1].timezone: ...``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..rulebook import FieldProblem
from .botform import PluginField, set_field, set_plugin_field

#: The form field that shows a problem at a rulebook path (relative to the user).
FIELDS = {"id": "id", "name": "name", "email": "email", "timezone": "timezone", "active": "id"}
#: The most characters of a summary on the users page (a long absence list is cut).
MAX_SUMMARY = 200


@dataclass
class UserForm:
    """What the form shows and posts, as text (kept as typed on an error)."""

    id: str = ""
    name: str = ""
    email: str = ""
    timezone: str = "UTC"
    #: Each plugin field's value as shown, by key (see ``PluginField.shown``).
    plugins: dict[str, str] = field(default_factory=dict)


def from_user(user: Mapping[str, Any], fields: Sequence[PluginField] = ()) -> UserForm:
    """The form of a user kept in the rulebook, with the plugin ``fields``."""
    return UserForm(
        id=str(user.get("id", "")),
        name=str(user.get("name") or ""),
        email=str(user.get("email") or ""),
        timezone=str(user.get("timezone") or "UTC"),
        plugins={f.key: f.shown(user.get(f.key, f.default)) for f in fields},
    )


def from_post(
    posted: Mapping[str, Sequence[str]], user_id: str | None = None, fields: Sequence[PluginField] = ()
) -> UserForm:
    """The form as posted; ``user_id``: the user being edited (a new one's is posted)."""

    def one(name: str, default: str = "") -> str:
        values = posted.get(name)
        return values[0] if values else default

    return UserForm(
        id=user_id if user_id is not None else one("id").strip(),
        name=one("name").strip(),
        email=one("email").strip(),
        timezone=one("timezone").strip() or "UTC",
        plugins={f.key: one(f.name) for f in fields},
    )


def to_user(
    form: UserForm, kept: Mapping[str, Any], fields: Sequence[PluginField] = ()
) -> tuple[dict[str, Any], list[FieldProblem]]:
    """The user the form describes, over the ``kept`` one (its other keys, ``active``
    among them, stay), and the problems the form itself finds."""
    problems: list[FieldProblem] = []
    user = copy.deepcopy(dict(kept))
    user.pop("id", None)
    set_field(user, "name", form.name, "")
    set_field(user, "email", form.email or None, None)
    set_field(user, "timezone", form.timezone, "UTC")
    for spec in fields:
        if spec.key in form.plugins:
            set_plugin_field(user, spec, form.plugins[spec.key], problems)
    return user, problems


def summary(value: Any, keys: Sequence[str] = ()) -> str:
    """A plugin field's value in a line of the users page, whatever the plugin keeps
    there (``days mon, fri; start 09:00; end 17:00``), its keys in the order of the
    plugin's schema (``keys``); empty for none."""
    text = _words(value, keys)
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 1] + "…"


def _words(value: Any, keys: Sequence[str]) -> str:
    if isinstance(value, Mapping):
        order = [k for k in keys if k in value] + [k for k in value if k not in keys]
        return "; ".join(f"{k} {_words(value[k], keys)}" for k in order if value[k] not in (None, "", []))
    if isinstance(value, (list, tuple)):
        nested = any(isinstance(item, (Mapping, list, tuple)) for item in value)
        return (" | " if nested else ", ").join(_words(item, keys) for item in value)
    if value is None or value is False:
        return ""
    return "on" if value is True else str(value)
