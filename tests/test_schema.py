"""``salesbot schema``: the JSON Schema of a ruleset file, plugins' sections included."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from salesbot_core.cli import main
from salesbot_core.registry import make_plugin_manager
from salesbot_core.schema import ruleset_schema

SHIPPED = Path(__file__).parent.parent / "rulesets"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    loaded: dict[str, Any] = json.loads(result.output)
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    # As an editor sees the file: dates and times are text.
    return json.loads(json.dumps(data, default=str))


@pytest.mark.parametrize("path", sorted(SHIPPED.iterdir()), ids=lambda p: p.name)
def test_the_shipped_rulesets_are_valid(schema: dict[str, Any], path: Path) -> None:
    jsonschema.validate(_load(path), schema)


def _errors(schema: dict[str, Any], data: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return sorted(".".join(map(str, e.absolute_path)) for e in validator.iter_errors(data))


def test_plugin_sections_and_strategy_options_are_described(schema: dict[str, Any]) -> None:
    user = {"id": "anna", "caps": {"day": 5}, "working_hours": {"days": ["mon"]}, "out_of_office": []}
    bots = [
        {"id": "a", "users": ["anna"], "sticky": True},
        {
            "id": "w",
            "users": ["anna"],
            "strategy": "weighted_round_robin",
            "options": {"weights": {"anna": 2}},
        },
    ]
    assert _errors(schema, {"users": [user], "bots": bots}) == []
    bad_user = {"id": "anna", "caps": {"day": "five"}, "timezone": "UTC", "pets": 1}
    bad_bots = [
        {"id": "a", "users": ["anna"], "sticky": "yes", "options": {"x": 1}},  # round_robin: none
        {
            "id": "w",
            "users": ["anna"],
            "strategy": "weighted_round_robin",
            "options": {"weights": {"anna": 0}},
        },
        {"id": "u", "users": ["anna"], "strategy": "no_such_strategy"},
    ]
    assert _errors(schema, {"users": [bad_user], "bots": bad_bots}) == [
        "bots.0.options",
        "bots.0.sticky",
        "bots.1.options.weights.anna",
        "bots.2.strategy",
        "users.0",  # pets: unknown
        "users.0.caps",  # anyOf Caps or null: reported on the field
    ]


def test_what_the_schema_cannot_say_is_in_its_descriptions(schema: dict[str, Any]) -> None:
    bot = schema["$defs"]["Bot"]["properties"]
    assert "must be declared under 'users'" in bot["users"]["description"]
    assert "must be declared under 'users'" in bot["fallback"]["description"]


def test_a_blocked_plugin_takes_its_section_out_of_the_schema() -> None:
    catalog = make_plugin_manager(block=["salesbot_plugins.capacity"], autoload=False).catalog()
    assert "caps" not in ruleset_schema(catalog)["$defs"]["User"]["properties"]


def test_member_conditions_rolling_caps_and_based_on_field_are_described(schema: dict[str, Any]) -> None:
    user = {"id": "anna", "caps": {"last_24h": 3, "last_30_days": 30, "open": 10}}
    bots = [
        {"id": "m", "users": ["anna"], "members": {"anna": {"where": {"country": "DE"}, "prefer": True}}},
        {"id": "f", "users": ["anna"], "strategy": "based_on_field", "options": {"field": "account_manager"}},
    ]
    assert _errors(schema, {"users": [user], "bots": bots}) == []
    bad_user = {"id": "anna", "caps": {"last_30_days": -1}}
    bad_bots = [
        {"id": "m", "users": ["anna"], "members": {"anna": {"wher": {}}}},
        {"id": "f", "users": ["anna"], "strategy": "based_on_field", "options": {"rotation": "round_robin"}},
    ]
    assert _errors(schema, {"users": [bad_user], "bots": bad_bots}) == [
        "bots.0.members.anna",  # wher: unknown
        "bots.1.options",  # field: required
        "users.0.caps",
    ]
