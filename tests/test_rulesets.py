"""Ruleset files: a YAML or TOML folder loads whole, or fails naming file, bot and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from factories import PYDANTIC, TEAM, Message, deal_event
from salesbot_core import Engine, RulesetError
from salesbot_core.registry import make_plugin_manager
from salesbot_core.rulesets import load_rulesets


def load(folder: Path):
    return load_rulesets(folder, make_plugin_manager().catalog())


def problems(folder: Path) -> list[str]:
    with pytest.raises(RulesetError) as info:
        load(folder)
    return [str(p) for p in info.value.problems]


def test_a_yaml_ruleset_drives_a_deal_to_an_assigned_user(write_rules, tmp_path: Path) -> None:
    folder = write_rules(
        **{
            "sales.yaml": TEAM
            + """
bots:
  - id: inbound
    name: Inbound leads
    entity: deal
    active: true
    users: [celina, anna]
    strategy: round_robin
    trigger:
      events: [created]
      processes: [Sales]
"""
        }
    )
    with Engine(folder, tmp_path / "s.db") as engine:
        outcome = engine.handle(deal_event(1, process="Sales", title="Warsztat fleet"))
    assert outcome.owners_after == ["celina"]
    assert outcome.decisions[0].status == "assigned"


def test_toml_ruleset_files_load_too(write_rules) -> None:
    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "persons.toml": """
        [[bots]]
        id = "contacts"
        entity = "person"
        users = ["jan", "anna"]
        [bots.trigger]
        events = ["created", "list"]
        """,
        }
    )
    rules = load(folder)
    bot = rules.bot("default", "contacts")
    assert bot is not None
    assert (bot.entity, bot.users, bot.trigger.events) == ("person", ["jan", "anna"], ["created", "list"])
    assert rules.sources[("default", "contacts")] == str(folder / "persons.toml")


def test_yaml_syntax_error_names_the_file_and_line(write_rules) -> None:
    folder = write_rules(**{"team.yaml": TEAM, "bad.yaml": "bots:\n  - id: x\n    users: [anna\n"})
    (problem,) = problems(folder)
    assert problem.startswith(f"{folder / 'bad.yaml'}: YAML syntax error at line 4")


def test_toml_syntax_error_names_the_file(write_rules) -> None:
    folder = write_rules(**{"team.yaml": TEAM, "bad.toml": "[[bots]\nid = 1\n"})
    (problem,) = problems(folder)
    assert problem.startswith(f"{folder / 'bad.toml'}: TOML syntax error:")


def test_unknown_field_names_file_bot_and_field(write_rules) -> None:
    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "b.yaml": """
        bots:
          - id: inbound
            users: [anna]
            trigger: {events: [created], proceses: [Sales]}
        """,
        }
    )
    assert problems(folder) == [
        f"{folder / 'b.yaml'}: bot 'inbound': field 'trigger.proceses': unknown field"
    ]


def test_unknown_strategy_and_entity(write_rules) -> None:
    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "b.yaml": """
        bots:
          - {id: one, users: [anna], strategy: round_robbin}
          - {id: two, users: [anna], entity: lead}
        """,
        }
    )
    assert problems(folder) == [
        Message(f"{folder / 'b.yaml'}: bot 'two': field 'entity': {PYDANTIC}'deal'{PYDANTIC}"),
    ]
    (folder / "b.yaml").write_text("bots:\n  - {id: one, users: [anna], strategy: round_robbin}\n")
    assert problems(folder) == [
        f"{folder / 'b.yaml'}: bot 'one': field 'strategy': "
        "unknown strategy 'round_robbin'; available: based_on_field, least_loaded, "
        "round_robin, weighted_round_robin"
    ]


def test_empty_duplicated_and_unknown_pool_users(write_rules) -> None:
    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "b.yaml": """
        bots:
          - {id: empty, users: []}
          - {id: twice, users: [anna, bartek, anna]}
          - {id: stranger, users: [anna, zofia]}
        """,
        }
    )
    name = folder / "b.yaml"
    assert problems(folder) == [
        Message(f"{name}: bot 'empty': field 'users': {PYDANTIC}"),
        Message(f"{name}: bot 'twice': field 'users': {PYDANTIC}user 'anna' is in the pool twice"),
    ]
    name.write_text("bots:\n  - {id: stranger, users: [anna, zofia]}\n")
    assert problems(folder) == [
        f"{name}: bot 'stranger': field 'users.1': unknown user 'zofia': "
        "declare it under 'users' in a ruleset file of account 'default'"
    ]


def test_a_bot_id_used_twice_across_files(write_rules) -> None:
    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "a.yaml": "bots:\n  - {id: inbound, users: [anna]}\n",
            "b.yaml": "bots:\n  - {id: inbound, users: [bartek]}\n",
        }
    )
    assert problems(folder) == [
        f"{folder / 'b.yaml'}: bot 'inbound': field 'id': bot id is already used in {folder / 'a.yaml'}"
    ]


def test_same_bot_id_in_two_accounts_is_fine(write_rules) -> None:
    folder = write_rules(
        **{
            "a.yaml": "users: [{id: anna}]\nbots:\n  - {id: inbound, users: [anna]}\n",
            "b.yaml": "account: acme\nusers: [{id: anna}]\nbots:\n  - {id: inbound, users: [anna]}\n",
        }
    )
    assert sorted(load(folder).bots) == [("acme", "inbound"), ("default", "inbound")]


def test_processes_are_for_deals_only(write_rules) -> None:
    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "b.yaml": """
        bots:
          - {id: people, entity: person, users: [anna], trigger: {processes: [Sales]}}
        """,
        }
    )
    assert problems(folder) == [
        Message(f"{folder / 'b.yaml'}: bot 'people': {PYDANTIC}trigger.processes applies to deals only")
    ]


@pytest.mark.parametrize(
    ("where", "field", "message"),
    [
        ("{$gte: 5}", "trigger.where.$gte", "$gte takes a mapping of one field to a value"),
        ("{$foo: {value: 1}}", "trigger.where.$foo", "unknown operator '$foo'"),
        ("{$or: []}", "trigger.where.$or", "$or takes a non-empty list of conditions"),
        (
            "{$and: [{$lt: {value: [1]}}]}",
            "trigger.where.$and.0.$lt.value",
            "$lt compares with a number, text or boolean",
        ),
        ("{}", "trigger.where", "a condition must be a non-empty mapping"),
    ],
)
def test_malformed_conditions_are_named_precisely(write_rules, where, field, message) -> None:
    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "b.yaml": f"""
        bots:
          - {{id: big, users: [anna], trigger: {{where: {where}}}}}
        """,
        }
    )
    (problem,) = problems(folder)
    assert problem.startswith(f"{folder / 'b.yaml'}: bot 'big': field '{field}': {message}")


def test_every_problem_of_every_file_is_reported_and_nothing_loads(write_rules, tmp_path) -> None:
    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "good.yaml": "bots:\n  - {id: good, users: [anna]}\n",
            "x.yaml": "bots:\n  - {id: bad, users: [nobody]}\n",
            "y.yaml": "bots: [\n",
        }
    )
    found = problems(folder)
    assert len(found) == 2
    assert found[0].startswith(f"{folder / 'x.yaml'}: bot 'bad': field 'users.0': unknown user")
    assert found[1].startswith(f"{folder / 'y.yaml'}: YAML syntax error")
    with pytest.raises(RulesetError):
        Engine(folder, tmp_path / "s.db")
    assert not (tmp_path / "s.db").exists()


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    assert problems(tmp_path / "nowhere") == [f"{tmp_path / 'nowhere'}: no such rulesets folder"]
