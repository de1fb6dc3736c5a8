"""Ruleset files are written by account admins: hostile files fail fast with named problems.

Every test here loads a real folder and expects the exact problems: no traceback, no
hang, nothing of the file's contents echoed back.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from factories import TEAM
from salesbot_core import RulesetError
from salesbot_core.cli import main
from salesbot_core.registry import make_plugin_manager
from salesbot_core.rulesets import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, load_rulesets


def problems(folder: Path, **kwargs: int) -> list[str]:
    with pytest.raises(RulesetError) as info:
        load_rulesets(folder, make_plugin_manager().catalog(), **kwargs)
    return [str(p) for p in info.value.problems]


def test_the_documented_limits() -> None:
    assert (MAX_FILE_BYTES, MAX_DEPTH, MAX_NODES) == (1024 * 1024, 32, 100_000)


# 1. Billion laughs ------------------------------------------------------------------------

BILLION_LAUGHS = "users: [{id: anna}]\nbots:\n  - id: b\n    users: [anna]\n    trigger:\n      where:\n"
BILLION_LAUGHS += "        a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
for _i in range(1, 10):
    BILLION_LAUGHS += f"        a{_i}: &a{_i} [" + ", ".join([f"*a{_i - 1}"] * 10) + "]\n"


def test_a_billion_laughs_file_is_rejected_by_counting_aliases_expanded(write_rules) -> None:
    assert len(BILLION_LAUGHS.encode()) < 1000  # stands for 10^10 values
    folder = write_rules(**{"laughs.yaml": BILLION_LAUGHS})
    assert problems(folder) == [
        f"{folder / 'laughs.yaml'}: the file holds more than 100000 values, each alias counted as a copy"
    ]


def test_a_chain_of_merge_keys_is_measured_before_it_is_built(write_rules) -> None:
    # Each mapping merges the previous one: building them would copy n^2/2 keys.
    lines = ["m0: &m0 {k0: 1}"] + [f"m{i}: &m{i} {{<<: *m{i - 1}, k{i}: 1}}" for i in range(1, 3000)]
    folder = write_rules(**{"merge.yaml": "\n".join(lines) + "\n"})
    (problem,) = load_errors(folder)
    assert (problem.field, problem.message) == ("m2999" + ".<<" * 31, "nested deeper than 32 levels")
    wide = ["m0: &m0 {" + ", ".join(f"k{i}: 1" for i in range(200)) + "}"]
    wide += [f"m{i}: {{<<: *m0}}" for i in range(1, 1000)]
    (folder / "merge.yaml").write_text("\n".join(wide) + "\n")
    assert problems(folder) == [
        f"{folder / 'merge.yaml'}: the file holds more than 100000 values, each alias counted as a copy"
    ]


def test_a_recursive_alias_is_a_problem_not_a_recursion_error(write_rules) -> None:
    folder = write_rules(**{"self.yaml": "bots: &b [*b]\n"})
    assert problems(folder) == [f"{folder / 'self.yaml'}: a value contains itself through an alias"]


def test_aliases_within_the_limit_load(write_rules) -> None:
    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "b.yaml": """
        pool: &pool [anna, bartek]
        """,
        }
    )
    # an unknown top-level key, but the aliases themselves are fine
    assert problems(folder) == [f"{folder / 'b.yaml'}: field 'pool': unknown field"]
    (folder / "b.yaml").write_text(
        "bots:\n  - {id: one, users: &pool [anna, bartek]}\n  - {id: two, users: *pool}\n"
    )
    rules = load_rulesets(folder, make_plugin_manager().catalog())
    assert [bot.users for bot in rules.bots.values()] == [["anna", "bartek"], ["anna", "bartek"]]


# 2. Depth ---------------------------------------------------------------------------------


def _deep_where(levels: int) -> str:
    return "{$and: [" * levels + "{title: x}" + "]}" * levels


def test_a_deep_yaml_condition_names_the_path_of_the_first_level_too_deep(write_rules) -> None:
    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "deep.yaml": "bots:\n  - {id: b, users: [anna], trigger: {where: " + _deep_where(40) + "}}\n",
        }
    )
    # levels: file, bots, bot, trigger, where, then $and list and its item in turn
    path = "bots.0.trigger.where" + ".$and.0" * 14
    assert path.count(".") + 1 == MAX_DEPTH
    (problem,) = load_errors(folder)
    assert (problem.file, problem.bot, problem.field, problem.message) == (
        str(folder / "deep.yaml"),
        None,
        path,
        "nested deeper than 32 levels",
    )


def load_errors(folder: Path):
    with pytest.raises(RulesetError) as info:
        load_rulesets(folder, make_plugin_manager().catalog())
    return info.value.problems


@pytest.mark.parametrize("levels", [1_000, 10_000, 100_000])
def test_a_yaml_file_nested_thousands_deep_is_one_problem(write_rules, levels: int) -> None:
    folder = write_rules(
        **{
            "flow.yaml": "a: " + "[" * levels + "]" * levels + "\n",
            "block.yaml": "a:\n" + "- " * levels + "x\n",
        }
    )
    assert problems(folder) == [
        f"{folder / 'block.yaml'}: nested deeper than 32 levels",
        f"{folder / 'flow.yaml'}: nested deeper than 32 levels",
    ]


def test_a_toml_file_nested_too_deep_names_the_path(write_rules) -> None:
    folder = write_rules(**{"deep.toml": "a = " + "[" * 40 + "]" * 40 + "\n"})
    assert problems(folder) == [
        f"{folder / 'deep.toml'}: field '{'a' + '.0' * 31}': nested deeper than 32 levels"
    ]


@pytest.mark.parametrize("levels", [1_000, 10_000])
def test_a_toml_file_nested_thousands_deep_is_one_problem(write_rules, levels: int) -> None:
    folder = write_rules(
        **{
            "arrays.toml": "a = " + "[" * levels + "]" * levels + "\n",
            "tables.toml": "a = " + "{b = " * levels + "1" + "}" * levels + "\n",
        }
    )
    assert problems(folder) == [
        f"{folder / 'arrays.toml'}: nested deeper than 32 levels",
        f"{folder / 'tables.toml'}: nested deeper than 32 levels",
    ]


def test_a_condition_at_the_depth_limit_loads(write_rules) -> None:
    # 5 levels down to where; 27 more: 13 ($and list, item) pairs and the innermost mapping
    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "deep.yaml": "bots:\n  - {id: b, users: [anna], trigger: {where: " + _deep_where(13) + "}}\n",
        }
    )
    rules = load_rulesets(folder, make_plugin_manager().catalog())
    assert rules.conditions.matches("default/b", {"title": "x"}) is True


def test_a_huge_integer_is_a_problem(write_rules) -> None:
    folder = write_rules(**{"big.yaml": "a: " + "1" * 5000 + "\n", "big.toml": "a = " + "1" * 5000 + "\n"})
    message = "a value cannot be read: Exceeds the limit (4300 digits) for integer string conversion"
    assert [p.split(": ", 1)[1] for p in problems(folder)] == [message + ": value has 5000 digits"] * 2


# 3. Size ----------------------------------------------------------------------------------


def test_a_file_over_the_size_limit_is_not_read(write_rules) -> None:
    folder = write_rules(**{"team.yaml": TEAM, "huge.yaml": "# " + "x" * MAX_FILE_BYTES + "\n"})
    assert problems(folder) == [
        f"{folder / 'huge.yaml'}: the file is larger than 1048576 bytes, the most a ruleset file may "
        "hold (set SALESBOT_MAX_RULESET_BYTES to change it)"
    ]


def test_the_size_limit_can_be_set_by_argument_or_environment(write_rules, monkeypatch) -> None:
    folder = write_rules(**{"team.yaml": TEAM})
    size = (folder / "team.yaml").stat().st_size
    assert problems(folder, max_bytes=size - 1) == [
        f"{folder / 'team.yaml'}: the file is larger than {size - 1} bytes, the most a ruleset file "
        "may hold (set SALESBOT_MAX_RULESET_BYTES to change it)"
    ]
    assert load_rulesets(folder, make_plugin_manager().catalog(), max_bytes=size).users
    monkeypatch.setenv("SALESBOT_MAX_RULESET_BYTES", "10")
    assert problems(folder) == [
        f"{folder / 'team.yaml'}: the file is larger than 10 bytes, the most a ruleset file "
        "may hold (set SALESBOT_MAX_RULESET_BYTES to change it)"
    ]
    monkeypatch.setenv("SALESBOT_MAX_RULESET_BYTES", "lots")
    assert problems(folder) == [
        "SALESBOT_MAX_RULESET_BYTES: must be a positive whole number of bytes, not 'lots'"
    ]


# 4. Links out of the folder, values quoted in messages -----------------------------------


def test_a_link_to_a_file_outside_the_folder_is_refused_without_quoting_it(write_rules, tmp_path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secrethash:19000:0:99999:7:::\n")
    folder = write_rules(**{"team.yaml": TEAM})
    (folder / "leak.yaml").symlink_to(secret)
    (folder / "up.toml").symlink_to(Path("..") / "shadow")
    found = problems(folder)
    assert found == [
        f"{folder / 'leak.yaml'}: symbolic link to a file outside the rulesets folder",
        f"{folder / 'up.toml'}: symbolic link to a file outside the rulesets folder",
    ]
    assert not any("secret" in p for p in found)


def test_a_link_to_a_file_inside_the_folder_loads(write_rules) -> None:
    folder = write_rules(**{"team.yaml": TEAM, "shared.txt": "bots:\n  - {id: b, users: [anna]}\n"})
    (folder / "bots.yaml").symlink_to("shared.txt")
    assert list(load_rulesets(folder, make_plugin_manager().catalog()).bots) == [("default", "b")]


def test_values_quoted_in_messages_are_short_and_escaped(write_rules) -> None:
    long = "\\e[2J" + "x" * 100  # YAML's escape for ESC
    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "b.yaml": f"""
        bots:
          - {{id: one, users: [anna], strategy: "{long}"}}
          - {{id: two, users: [anna], actions: {{related: {{company: true, mode: "{long}"}}}}}}
        """,
        }
    )
    cut = "\\x1b[2J" + "x" * 36 + "…"
    assert problems(folder) == [
        f"{folder / 'b.yaml'}: bot 'one': field 'strategy': unknown strategy '{cut}'; "
        "available: based_on_field, least_loaded, round_robin, weighted_round_robin",
        f"{folder / 'b.yaml'}: bot 'two': field 'actions.related.mode': unknown mode '{cut}'; "
        "available: add, replace",
    ]


def test_an_unknown_field_quotes_a_bounded_escaped_key(write_rules) -> None:
    folder = write_rules(**{"b.yaml": 'bots:\n  - {id: b, users: [anna], "\\e[31m' + "k" * 200 + '": 1}\n'})
    assert problems(folder) == [f"{folder / 'b.yaml'}: bot 'b': field '\\x1b[31m{'k' * 75}…': unknown field"]


# 5. Files that would be skipped silently -------------------------------------------------


def test_broken_and_looping_links_are_reported(write_rules) -> None:
    folder = write_rules(**{"team.yaml": TEAM})
    (folder / "gone.yaml").symlink_to(folder / "missing.yaml")
    (folder / "loop.yml").symlink_to(folder / "loop.yml")
    assert problems(folder) == [
        f"{folder / 'gone.yaml'}: broken symbolic link (its target is missing or loops)",
        f"{folder / 'loop.yml'}: broken symbolic link (its target is missing or loops)",
    ]


def test_a_suffix_in_the_wrong_case_is_reported(write_rules) -> None:
    bot = "bots:\n  - {id: b, users: [anna]}\n"
    folder = write_rules(**{"team.yaml": TEAM, "a.YAML": bot, "b.Yml": bot, "c.TOML": "", "d.txt": bot})
    assert problems(folder) == [
        f"{folder / 'a.YAML'}: suffix must be lower case .yaml to be loaded",
        f"{folder / 'b.Yml'}: suffix must be lower case .yml to be loaded",
        f"{folder / 'c.TOML'}: suffix must be lower case .toml to be loaded",
    ]


# 6. A file name with control characters ---------------------------------------------------


def test_validate_escapes_a_file_name_with_control_characters(write_rules) -> None:
    folder = write_rules(**{"team.yaml": TEAM, "\x1b[31mred.yaml": "bots:\n  - {id: b, users: [zofia]}\n"})
    result = CliRunner().invoke(main, ["validate", "--rulesets", str(folder)], env={"COLUMNS": "400"})
    assert result.exit_code == 1
    assert "\x1b" not in result.output
    assert f"error: {folder}{os.sep}\\x1b[31mred.yaml: bot 'b': field 'users.0': unknown user 'zofia'" in (
        result.output
    )


# 7. Options to a strategy that takes none -------------------------------------------------


def test_options_to_a_strategy_that_takes_none_are_rejected(write_rules) -> None:
    folder = write_rules(
        **{
            "team.yaml": TEAM,
            "a.yaml": "bots:\n  - {id: a, users: [anna], strategy: round_robin, options: {x: 1}}\n",
            "b.toml": '[[bots]]\nid = "b"\nusers = ["anna"]\n[bots.options]\nx = 1\n',
            "c.yaml": "bots:\n  - {id: c, users: [anna], strategy: least_loaded, options: {x: 1}}\n",
            "d.yaml": "bots:\n  - {id: d, users: [anna], strategy: weighted_round_robin, "
            'options: {"\\e' + "w" * 60 + '": 1}}\n',
            "e.yaml": "bots:\n  - {id: e, users: [anna], strategy: round_robin, options: {}}\n",
        }
    )
    assert problems(folder) == [
        f"{folder / 'a.yaml'}: bot 'a': field 'options': strategy 'round_robin' takes no options",
        f"{folder / 'b.toml'}: bot 'b': field 'options': strategy 'round_robin' takes no options",
        f"{folder / 'c.yaml'}: bot 'c': field 'options': unknown option 'x': least_loaded takes no options",
        f"{folder / 'd.yaml'}: bot 'd': field 'options.\\x1b{'w' * 39}…': unknown option",
    ]


def test_a_plugin_strategy_without_a_validator_takes_no_options() -> None:
    from salesbot_core import Strategy

    strategy = Strategy("mine", lambda request: None)  # type: ignore[arg-type, return-value]
    assert strategy.validate_options({}) == []
    assert strategy.validate_options({"x": 1}) == ["strategy 'mine' takes no options"]


def test_hidden_files_such_as_editor_lock_files_are_not_rules(write_rules) -> None:
    folder = write_rules(**{"team.yaml": TEAM, ".bots.yaml.swp.yaml": "bots: [{id: x, users: [ghost]}]"})
    (folder / ".#team.yaml").symlink_to("root@host.1234:1700000000")  # Emacs' lock file
    rules = load_rulesets(folder, make_plugin_manager().catalog())
    assert sorted(user for _, user in rules.users) == ["anna", "bartek", "celina", "jan", "olga"]


@pytest.mark.parametrize("upper", ["\\u1061", "\\uffff"])
def test_validate_and_run_in_a_real_process_survive_the_class_ranges_that_crashed_durable_rules(
    tmp_path: Path, upper: str
) -> None:
    """`[a-\\u1061]` (4,097 characters) made `salesbot validate` abort (134) and
    `[a-\\uffff]` segfault (139) inside durable-rules; run in a process of their own, both
    commands now exit 0, and the pattern matches as a regular expression does."""
    import json
    import subprocess
    import sys

    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "default.yaml").write_text(
        "users: [{id: anna}, {id: bartek}]\n"
        "bots:\n"
        f'  - {{id: hot, users: [anna, bartek], trigger: {{where: {{$mt: {{title: "[a-{upper}]+"}}}}}}}}\n',
        encoding="utf-8",
    )
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"e{n}",
                    "kind": "created",
                    "record": {"entity": "deal", "id": f"d{n}", "owners": ["bot:hot"], "title": title},
                }
            )
            + "\n"
            for n, title in enumerate(["hot", "HOT", "h\u1000t"])
        ),
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "salesbot_core"]
    validated = subprocess.run(
        [*command, "validate", "-r", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert validated.returncode == 0, validated.stderr
    ran = subprocess.run(
        [*command, "run", "-r", str(folder), "--db", str(tmp_path / "s.db"), "--json", str(events)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    # "HOT" is below 'a'; U+1000 is inside both ranges.
    assert json.loads(ran.stdout)["statuses"] == {"assigned": 2, "not_applied": 1}
