"""Property-based: whatever events or ruleset files come in, salesbot answers with an
outcome or a validation error, never a crash, and an error changes nothing."""

from __future__ import annotations

import json
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factories import TEAM
from salesbot_core import Engine, EventError, Outcome, RulesetError
from salesbot_core.cli import main
from salesbot_core.registry import make_plugin_manager
from salesbot_core.rulesets import load_rulesets

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
owners = st.lists(
    st.sampled_from(["anna", "bartek", "olga", "zofia", "bot:inbound", "bot:big", "bot:nope", "bot:"])
    | st.text(max_size=6),
    max_size=3,
)
records = st.fixed_dictionaries(
    {
        "entity": st.sampled_from(["deal", "person", "company", "task", "lead"]),
        "id": st.sampled_from(["d1", "d2", "p1", ""]) | st.text(max_size=5),
        "owners": owners,
    },
    optional={
        "title": json_values,
        "value": st.integers() | st.text(max_size=3) | st.none(),
        "process": st.sampled_from(["Sales", "Partners"]) | json_values,
        "company": st.sampled_from(["warsztat", None, ""]) | json_values,
        "persons": st.lists(st.text(max_size=4), max_size=2),
        "fields": st.dictionaries(st.text(max_size=5), json_values, max_size=2),
        "link": json_values,
        "colour": json_values,
    },
)
valid_events = st.fixed_dictionaries(
    {
        "id": st.text(alphabet="abc123", min_size=1, max_size=6),
        "kind": st.sampled_from(["created", "updated", "list"]),
        "record": st.fixed_dictionaries(
            {
                "entity": st.just("deal"),
                "id": st.sampled_from(["d1", "d2", "d3"]),
                "owners": st.lists(
                    st.sampled_from(["anna", "bartek", "bot:inbound", "bot:big"]), unique=True, max_size=3
                ),
                "value": st.integers(0, 200),
                "company": st.sampled_from(["warsztat", "kuźnia"]),
            }
        ),
    }
)
events = (
    valid_events
    | valid_events
    | st.fixed_dictionaries(
        {
            "id": st.sampled_from(["e1", "e2", "e3"]) | st.text(max_size=6),
            "kind": st.sampled_from(["created", "updated", "list", "deleted"]),
            "record": records | json_values,
        },
        optional={
            "account": st.sampled_from(["default", "acme"]) | st.text(max_size=4),
            "changed": st.lists(st.sampled_from(["owners", "title"]), max_size=2) | json_values,
        },
    )
    | json_values
)

RULES = (
    TEAM
    + """
settings: {multiple_owners: true}
bots:
  - {id: inbound, users: [anna, bartek], actions: {related: {company: true}, note: "{record.title}"}}
  - {id: big, users: [bartek], trigger: {where: {$gte: {value: 100}}}}
"""
)


def table_sizes(db: Path) -> tuple[int, ...]:
    conn = sqlite3.connect(db)
    try:
        return tuple(
            conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("records", "outcomes", "assignments", "notes", "strategy_state")
        )
    finally:
        conn.close()


@contextmanager
def engine_on_a_file(tmp_path: Path) -> Iterator[tuple[Engine, Path]]:
    """An engine on the RULES and a fresh SQLite file, with that file's path."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(RULES)
    db = tmp_path / "s.db"
    with Engine(rules, f"sqlite:///{db}?synchronous=OFF") as engine:
        yield engine, db


def handle_or_change_nothing(engine: Engine, db: Path, event: object) -> Outcome | None:
    """The outcome of ``event``, or None when it was an ``EventError`` that left every
    table as it was; any other exception fails the test."""
    before = table_sizes(db)
    try:
        return engine.handle(event)  # type: ignore[arg-type]
    except EventError as exc:
        assert str(exc).startswith("event")
        assert table_sizes(db) == before
        return None


def test_any_event_gives_an_outcome_or_a_validation_error_that_changes_nothing(tmp_path: Path) -> None:
    seen: list[str] = []
    with engine_on_a_file(tmp_path) as (engine, db):
        # Derandomized: the closing check that every path was reached must not depend on
        # the luck of a run (one run in several hundred missed 'not_applied').
        @settings(
            max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
        )
        @given(event=events)
        def check(event: object) -> None:
            outcome = handle_or_change_nothing(engine, db, event)
            if outcome is None:
                seen.append("rejected")
                return
            assert not any(o.startswith("bot:") for o in outcome.owners_after)
            seen.extend(d.status for d in outcome.decisions)

        check()
    # the generated events reached every path, not only validation errors
    assert {"rejected", "assigned", "not_applied"} <= set(seen), set(seen)


ruleset_content = st.fixed_dictionaries(
    {},
    optional={
        "account": st.sampled_from(["default", "acme"]) | json_values,
        "settings": st.fixed_dictionaries(
            {},
            optional={
                "plan": st.sampled_from(["automation", "growth", "x"]),
                "enabled": json_values,
                "multiple_owners": st.booleans() | json_values,
            },
        )
        | json_values,
        "users": st.lists(
            st.fixed_dictionaries(
                {"id": st.sampled_from(["anna", "bob"]) | json_values}, optional={"active": json_values}
            ),
            max_size=2,
        )
        | json_values,
        "bots": st.lists(
            st.fixed_dictionaries(
                {"id": st.sampled_from(["a", "b"]) | json_values},
                optional={
                    "users": st.lists(st.sampled_from(["anna", "bob", "x"]), max_size=3) | json_values,
                    "entity": st.sampled_from(["deal", "person", "lead"]),
                    "strategy": st.sampled_from(["round_robin", "nope"]),
                    "trigger": st.fixed_dictionaries(
                        {}, optional={"where": json_values, "processes": json_values, "events": json_values}
                    ),
                    "actions": st.fixed_dictionaries(
                        {},
                        optional={
                            "note": st.text(max_size=20),
                            "notify": st.sampled_from(["{record.__class__}", "{owner.name}", "{", "{0}"]),
                            "related": json_values,
                            "tag": json_values,
                        },
                    ),
                },
            ),
            max_size=3,
        )
        | json_values,
    },
)
file_texts = ruleset_content.map(lambda data: yaml.safe_dump(data, allow_unicode=True)) | st.text(max_size=60)


valid_file = st.fixed_dictionaries(
    {
        "users": st.just([{"id": "anna"}, {"id": "bob"}]),
        "bots": st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.sampled_from(["a", "b", "c"]),
                    "users": st.lists(st.sampled_from(["anna", "bob"]), min_size=1, max_size=2, unique=True),
                },
                optional={
                    "trigger": st.fixed_dictionaries(
                        {},
                        optional={
                            "where": st.sampled_from(
                                [{"$gte": {"value": 1}}, {"$mt": {"title": "[a-"}}, {"title": "x"}]
                            )
                        },
                    )
                },
            ),
            max_size=2,
            unique_by=lambda bot: bot["id"],
        ),
    }
).map(lambda data: yaml.safe_dump(data))


def test_any_ruleset_folder_loads_or_fails_with_named_problems() -> None:
    catalog = make_plugin_manager().catalog()
    seen: list[str] = []

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        files=st.lists(
            st.tuples(st.sampled_from(["a.yaml", "b.yml", "c.toml"]), valid_file | file_texts), max_size=3
        )
    )
    def check(files: list[tuple[str, str]]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "rules"
            folder.mkdir()
            for name, text in files:
                (folder / name).write_text(text, encoding="utf-8")
            try:
                rules = load_rulesets(folder, catalog)
            except RulesetError as exc:
                assert exc.problems
                assert all(p.file.startswith(str(folder)) and p.message for p in exc.problems)
                try:
                    Engine(folder, Path(tmp) / "s.db", autoload=False)
                except RulesetError:
                    pass
                assert not (Path(tmp) / "s.db").exists()  # the engine never started half-loaded
                seen.append("rejected")
                return
            assert all(bot.users for bot in rules.bots.values())
            seen.append("loaded" if rules.bots else "empty")

    check()
    assert {"rejected", "loaded"} <= set(seen), set(seen)


def nested(depth: int, leaf: object) -> object:
    for n in range(depth):
        leaf = {"a": leaf} if n % 2 else [leaf]
    return leaf


#: Values no store or rules engine can take as they are, beside ordinary ones.
wild_scalars = (
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e16, 1e-05, 5e-324, 2**53, -(2**63)])
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.integers(min_value=0, max_value=5000).map(lambda digits: 10**digits)
    | st.floats()
    | st.text(st.characters(codec=None, categories=["Cs", "Cc", "Cf", "Ll"]), max_size=4)
    | st.sampled_from(["\ud800", "a\udfff", "\x1b[2J", "\u202e", ""])
    | st.none()
    | st.booleans()
)
wild_values = st.recursive(
    wild_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(st.characters(codec=None), max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
) | st.tuples(st.integers(0, 100), wild_scalars).map(lambda t: nested(*t))
odd_ats = (
    st.sampled_from(
        [
            "0001-01-01",
            "9999-12-31T23:59:59-05:00",
            "1969-12-31T23:59:59.999999",
            "1970-01-01T00:00:00Z",
            "2199-12-31T23:59:59+14:00",
            "2200-01-01T00:00:00Z",
            "2026-02-30",
            "nope",
            0,
            10**20,
        ]
    )
    | wild_scalars
)
#: Mostly events of the right shape, so the wild values reach the store and the rules.
wild_events = (
    st.fixed_dictionaries(
        {
            # Mostly fresh ids: a seen id is answered from the log before its payload is used.
            "id": st.uuids().map(str) | st.sampled_from(["e1", "list/x/deal/d1", "e\ud800"]),
            "kind": st.sampled_from(["created", "updated"]),
            "record": st.fixed_dictionaries(
                {
                    "entity": st.just("deal"),
                    "id": st.sampled_from(["d1", "d2"]),
                    "owners": st.sampled_from([["bot:inbound"], ["bot:big"], ["anna"]]),
                },
                optional={
                    "value": st.integers(0, 200) | wild_scalars,
                    "title": st.text(st.characters(codec=None), max_size=4),
                    "fields": st.dictionaries(
                        st.text(st.characters(codec=None), max_size=3), wild_values, max_size=3
                    ),
                    "tags": st.lists(st.text(st.characters(codec=None), max_size=3), max_size=3),
                },
            ),
        },
        optional={"at": odd_ats},
    )
    | wild_values
)


def test_any_wild_event_gives_an_outcome_or_an_event_error_that_changes_nothing(tmp_path: Path) -> None:
    seen: list[str] = []
    with engine_on_a_file(tmp_path) as (engine, db):

        @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(event=wild_events)
        def check(event: object) -> None:
            outcome = handle_or_change_nothing(engine, db, event)
            seen.append("rejected" if outcome is None else "duplicate" if outcome.duplicate else "handled")

        check()
    assert {"rejected", "handled"} <= set(seen), set(seen)


def dump_line(event: object) -> bytes:
    """``event`` as a JSON Lines line, lone surrogates as they are (not UTF-8)."""
    try:
        return json.dumps(event, ensure_ascii=False).encode("utf-8", "surrogatepass")
    except ValueError:  # an integer Python will not write: the spliced lines have those
        return b"null"


def test_any_bytes_in_a_jsonl_file_are_processed_or_reported_line_by_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(RULES)
    db, events = tmp_path / "s.db", tmp_path / "e.jsonl"
    good = st.builds(
        lambda n: json.dumps({"id": f"g{n}", "kind": "created", "record": {"entity": "deal", "id": f"d{n}"}}),
        st.integers(0, 5),
    ).map(str.encode)
    encoded = wild_events.map(dump_line)
    spliced = st.sampled_from(
        [
            "NaN",
            "-Infinity",
            "1e999",
            "9" * 5000,
            "[" * 5000 + "]" * 5000,
            '"\\ud800"',
            '"\\udfff\\ud800"',
            "{",
        ]
    ).map(
        lambda token: (
            b'{"id": "s", "kind": "created", "record": {"entity": "deal", "id": "d1", "value": '
            + token.encode()
            + b"}}"
        )
    )
    lines = st.lists(
        (st.binary(max_size=30) | good | encoded | spliced).map(lambda line: line.replace(b"\n", b" ")),
        max_size=5,
    )

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(lines=lines)
    def check(lines: list[bytes]) -> None:
        events.write_bytes(b"".join(line + b"\n" for line in lines))
        before = table_sizes(db) if db.exists() else None
        result = CliRunner().invoke(main, ["run", str(events), "-r", str(rules), "--db", str(db)])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        total, rejected = re.fullmatch(
            r"(\d+) events: .*?(\d+) rejected", result.stdout.splitlines()[-1]
        ).groups()
        assert int(total) == sum(1 for line in lines if line.strip())
        assert len(result.stderr.splitlines()) == int(rejected)
        assert result.exit_code == (1 if int(rejected) else 0)
        if before is not None and int(rejected) == int(total):
            assert table_sizes(db) == before

    check()
