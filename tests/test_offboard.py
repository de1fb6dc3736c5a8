"""Offboarding (``salesbot user offboard``): a leaver is switched off and every open record
they own is redistributed once, fairly within each bot, through the bot that assigned it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cli_runner import salesbot
from store_queries import rows
from test_reliability import kill_after

from salesbot_core import Engine
from salesbot_core.errors import EventError, IdempotencyConflict, SalesbotError
from salesbot_core.offboarding import Left

TEAM = """
users:
  - {id: anna}
  - {id: bartek}
  - {id: celina}
  - {id: jan}
  - {id: olga}
"""
BOTS = """
bots:
  - id: deals
    users: [anna, bartek, celina, jan]
  - id: people
    entity: person
    users: [anna, bartek, celina]
  - id: tasks
    entity: task
    users: [olga, anna, jan]
  - id: spare
    entity: deal
    users: [olga, jan]
"""


def event(n: int, entity: str, bot: str) -> dict[str, Any]:
    return {
        "id": f"{entity}-{n}",
        "kind": "created",
        "record": {"entity": entity, "id": f"{entity[0]}{n}", "owners": [f"bot:{bot}"]},
    }


@pytest.fixture
def rules(write_rules: Callable[..., Path]) -> Path:
    return write_rules(**{"team.yaml": TEAM, "bots.yaml": BOTS})


def fill(engine: Engine, per_bot: int) -> None:
    """``per_bot`` records through each of deals, people and tasks."""
    engine.handle_many(
        [
            event(n, entity, bot)
            for entity, bot in (("deal", "deals"), ("person", "people"), ("task", "tasks"))
            for n in range(per_bot)
        ],
        batch_size=500,
    )


def moved_to(
    entity: str, record_id: str, owners: list[str], bot: str | None, passed_on_from: str | None = None
) -> dict[str, Any]:
    """An entry of an offboarding summary's ``moved_records``; ``passed_on_from``: ``"deal/d1"``."""
    source = passed_on_from.split("/") if passed_on_from else None
    return {
        "entity": entity,
        "id": record_id,
        "owners": owners,
        "bot": bot,
        "passed_on_from": {"entity": source[0], "id": source[1]} if source else None,
    }


#: The first four records of ``SIX_MOVED``: offboarding with ``limit=4``.
FOUR_MOVED = [
    moved_to("deal", "d0", ["celina"], "deals"),
    moved_to("deal", "d4", ["jan"], "deals"),
    moved_to("person", "p0", ["bartek"], "people"),
    moved_to("person", "p3", ["celina"], "people"),
]

#: The summary of offboarding anna after ``fill(engine, 6)``: her six records, two per bot,
#: spread over the others of each bot's pool.
SIX_MOVED = {
    "moved": {
        "deals": {"celina": 1, "jan": 1},
        "people": {"bartek": 1, "celina": 1},
        "tasks": {"jan": 1, "olga": 1},
    },
    "records_moved": 6,
    "moved_records": [
        *FOUR_MOVED,
        moved_to("task", "t1", ["olga"], "tasks"),
        moved_to("task", "t4", ["jan"], "tasks"),
    ],
    "left": [],
    "remaining": 0,
    "done": True,
}


def owned(engine: Engine, user: str) -> list[tuple[str, str]]:
    return engine.store.open_records("default", user)


def test_offboarding_spreads_each_bots_records_evenly_and_moves_nobody_elses(
    rules: Path, store_url: str
) -> None:
    with Engine(rules, store_url) as engine:
        fill(engine, 30)
        annas = owned(engine, "anna")
        others = {user: owned(engine, user) for user in ("bartek", "celina", "jan", "olga")}
        assert Counter(entity for entity, _ in annas) == {"deal": 8, "person": 10, "task": 10}
        result = engine.offboard("default", "anna", "leave-1", batch_size=7)
        assert result.left == []
        assert owned(engine, "anna") == []
        assert len(result.outcomes) == len(annas) == 28
        per_bot: dict[str, Counter[str]] = {}
        for outcome in result.outcomes:
            [decision] = outcome.assigned
            per_bot.setdefault(decision.bot, Counter())[str(decision.owner)] += 1
        assert per_bot == {
            "deals": Counter({"celina": 3, "jan": 3, "bartek": 2}),
            "people": Counter({"bartek": 5, "celina": 5}),
            "tasks": Counter({"olga": 5, "jan": 5}),
        }
        for counts in per_bot.values():
            assert max(counts.values()) - min(counts.values()) <= 1
        # Nobody else's records moved: each keeps what they had, plus what they got.
        for user, before in others.items():
            assert set(before) <= set(owned(engine, user))
        # Anna gets no new record while switched off.
        assert engine.handle(event(99, "deal", "deals")).owners_after != ["anna"]


def test_a_rerun_of_the_same_operation_moves_nothing_twice(rules: Path) -> None:
    with Engine(rules, rules.parent / "s.db") as engine:
        fill(engine, 6)
        annas = owned(engine, "anna")
        first = engine.offboard("default", "anna", "leave-1")
        assert len(first.outcomes) == len(annas) == 6
        again = engine.offboard("default", "anna", "leave-1")
        assert again.outcomes == [] and again.left == []
        # Each record: its creation, then one move.
        assert [len(engine.explain("default", entity, rid)) for entity, rid in annas] == [2] * 6


def test_a_switched_off_bot_s_records_go_to_the_to_bot(rules: Path) -> None:
    with Engine(rules, rules.parent / "s.db") as engine:
        fill(engine, 4)
        engine.set_bot_active("default", "deals", False)
        stuck = engine.offboard("default", "anna", "leave-1")
        assert stuck.left == [Left("deal", "d0", "no active bot of its own, and no to-bot")]
        moved = engine.offboard("default", "anna", "leave-2", to_bot="spare")
        assert [(o.record_id, o.owners_after) for o in moved.outcomes] == [("d0", ["olga"])]
        assert owned(engine, "anna") == []


def test_a_user_coming_back_gets_new_records_and_nothing_is_pulled_back(rules: Path) -> None:
    with Engine(rules, rules.parent / "s.db") as engine:
        fill(engine, 4)
        engine.offboard("default", "anna", "leave-1")
        engine.set_user_active("default", "anna", True)
        assert owned(engine, "anna") == []
        picked = {engine.handle(event(n, "deal", "deals")).owners_after[0] for n in range(10, 14)}
        assert "anna" in picked


def test_unknown_user_or_bot_is_a_clear_error(rules: Path) -> None:
    with Engine(rules, rules.parent / "s.db") as engine:
        with pytest.raises(SalesbotError, match="no user 'zoe' in account 'default'"):
            engine.offboard("default", "zoe", "x")
        with pytest.raises(SalesbotError, match="--to-bot: no bot 'nope' in account 'default'"):
            engine.offboard("default", "anna", "x", to_bot="nope")


def test_the_user_commands(rules: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    with Engine(rules, db) as engine:
        fill(engine, 6)
    result = salesbot("user", "offboard", "anna", "--operation", "leave-1", "-r", str(rules), "--db", db)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "user 'anna' of account 'default' is switched off",
        "bot deals: 2 records to celina 1, jan 1",
        "bot people: 2 records to bartek 1, celina 1",
        "bot tasks: 2 records to jan 1, olga 1",
        "deal d0: to celina (bot deals)",
        "deal d4: to jan (bot deals)",
        "person p0: to bartek (bot people)",
        "person p3: to celina (bot people)",
        "task t1: to olga (bot tasks)",
        "task t4: to jan (bot tasks)",
    ]
    back = salesbot("user", "activate", "anna", "-r", str(rules), "--db", db)
    assert (back.exit_code, back.stdout) == (0, "user 'anna' of account 'default' is switched on\n")
    bad = salesbot("user", "activate", "zoe", "-r", str(rules), "--db", db)
    assert (bad.exit_code, bad.stderr) == (1, "error: no user 'zoe' in account 'default'\n")


def test_a_rerun_answers_as_the_first_run_and_a_limit_leaves_the_rest_for_it(
    rules: Path, store_url: str
) -> None:
    with Engine(rules, store_url) as engine:
        fill(engine, 6)
        part = engine.offboard("default", "anna", "leave-1", limit=4)
        assert (len(part.outcomes), part.remaining) == (4, 2)
        assert part.summary() == {
            "moved": {"deals": {"celina": 1, "jan": 1}, "people": {"bartek": 1, "celina": 1}},
            "records_moved": 4,
            "moved_records": FOUR_MOVED,
            "left": [],
            "remaining": 2,
            "done": False,
        }
        rest = engine.offboard("default", "anna", "leave-1", limit=4)
        assert (len(rest.outcomes), len(rest.earlier), rest.remaining) == (2, 4, 0)
        assert rest.summary() == SIX_MOVED
        again = engine.offboard("default", "anna", "leave-1")
        assert (again.outcomes, again.summary()) == ([], SIX_MOVED)
        # Another operation's records are not this one's.
        assert engine.offboard("default", "bartek", "leave-2").summary()["records_moved"] == 5


def test_user_switches_keep_who_and_when(rules: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    with Engine(rules, db) as engine:
        fill(engine, 1)
        before = datetime.now(UTC)
        engine.set_user_active("default", "jan", False, by="hr-portal")
        states = {state.user.id: state for state in engine.users("default")}
        assert list(states) == ["anna", "bartek", "celina", "jan", "olga"]
        assert [(s.active, s.switch) for s in states.values() if s.user.id != "jan"] == [(True, None)] * 4
        jan = states["jan"].switch
        assert jan is not None and (states["jan"].active, jan.active, jan.by) == (False, False, "hr-portal")
        assert jan.at is not None and before <= datetime.fromisoformat(jan.at) <= datetime.now(UTC)
    offboarded = salesbot("user", "offboard", "anna", "--operation", "leave-1", "-r", str(rules), "--db", db)
    assert offboarded.exit_code == 0, offboarded.stderr
    back = salesbot("user", "activate", "jan", "-r", str(rules), "--db", db)
    assert back.exit_code == 0, back.stderr
    with Engine(rules, db) as engine:
        switches = {s.user.id: s.switch for s in engine.users("default") if s.switch}
    assert {user: (s.active, s.by) for user, s in switches.items()} == {
        "anna": (False, "cli"),
        "jan": (True, "cli"),
    }
    listed = salesbot("user", "list", "-r", str(rules), "--db", db)
    assert (listed.exit_code, listed.stdout.splitlines()) == (
        0,
        [
            f"anna: switched off (switched off by cli at {switches['anna'].at})",
            "bartek: active",
            "celina: active",
            f"jan: active (switched on by cli at {switches['jan'].at})",
            "olga: active",
        ],
    )
    as_json = json.loads(salesbot("user", "list", "--json", "-r", str(rules), "--db", db).stdout)
    assert as_json["users"][0] == {
        "id": "anna",
        "name": "anna",
        "active": False,
        "switched_by": "cli",
        "switched_at": switches["anna"].at,
    }
    assert [u["switched_by"] for u in as_json["users"]] == ["cli", None, None, "cli", None]


def test_offboard_json_is_the_operation_s_summary(rules: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    with Engine(rules, db) as engine:
        fill(engine, 3)
        engine.set_bot_active("default", "tasks", False)
    args = ("user", "offboard", "anna", "--operation", "leave-1", "--json", "-r", str(rules), "--db", db)
    first = salesbot(*args)
    assert first.exit_code == 0, first.stderr
    expected = {
        "account": "default",
        "user": "anna",
        "operation": "leave-1",
        "moved": {"deals": {"jan": 1}, "people": {"bartek": 1}},
        "records_moved": 2,
        "moved_records": [
            moved_to("deal", "d0", ["jan"], "deals"),
            moved_to("person", "p0", ["bartek"], "people"),
        ],
        "left": [{"entity": "task", "id": "t1", "reason": "no active bot of its own, and no to-bot"}],
        "remaining": 0,
        "done": True,
    }
    assert json.loads(first.stdout) == expected
    assert json.loads(salesbot(*args).stdout) == expected


def offboard_process(rules: Path, db: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "salesbot_core",
            "user",
            "offboard",
            "anna",
            "--operation",
            "leave",
            "--batch",
            "20",
            "-r",
            str(rules),
            "--db",
            db,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_offboarding_1100_records_killed_midway_then_rerun_moves_each_once(
    rules: Path, store_url: str
) -> None:
    with Engine(rules, store_url) as engine:
        fill(engine, 1_200)
        annas = owned(engine, "anna")
    assert len(annas) == 1_100  # 300 deals, 400 persons, 400 tasks
    created = 3 * 1_200
    worker = offboard_process(rules, store_url)
    kill_after(worker, store_url, created + 300)
    again = offboard_process(rules, store_url)
    assert again.wait(timeout=600) == 0, again.stderr.read().decode() if again.stderr else ""
    moves = rows(
        store_url,
        "SELECT record_id, COUNT(*) FROM outcomes WHERE event_id LIKE ? GROUP BY record_id",
        ("list/leave/%",),
    )
    assert len(moves) == 1_100 and {n for _, n in moves} == {1}
    per_bot = rows(
        store_url,
        'SELECT a.bot, a."user", COUNT(*) FROM assignments a JOIN outcomes o ON o.seq = a.seq '
        'WHERE o.event_id LIKE ? GROUP BY a.bot, a."user"',
        ("list/leave/%",),
    )
    spread: dict[str, list[int]] = {}
    for bot, _, n in per_bot:
        spread.setdefault(bot, []).append(n)
    assert sorted(spread) == ["deals", "people", "tasks"]
    assert all(max(counts) - min(counts) <= 1 for counts in spread.values()), spread
    with Engine(rules, store_url) as engine:
        assert owned(engine, "anna") == []


def test_a_bad_operation_id_switches_nobody_off(rules: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    with Engine(rules, db) as engine:
        fill(engine, 2)
    done = salesbot("user", "offboard", "anna", "--operation", "leave\x1b[2J", "-r", str(rules), "--db", db)
    assert done.exit_code == 1
    assert (
        done.stderr
        == "error: list operation 'leave\\x1b[2J': the operation id may not hold control characters\n"
    )
    with Engine(rules, db) as engine:
        assert [state.active for state in engine.users("default") if state.user.id == "anna"] == [True]
        with pytest.raises(EventError):
            engine.offboard("default", "anna", "x" * 300)  # too long, with or without records
        assert [state.active for state in engine.users("default") if state.user.id == "anna"] == [True]


#: Issue 24: a team bot passing its pick on to a deal's persons and company, and a person
#: bot whose trigger has no ``list`` event (so it cannot take a record in an offboarding).
TEAM_BOT = """
users:
  - {id: anna}
  - {id: bartek}
  - {id: celina}
bots:
  - id: team
    users: [anna, bartek, celina]
    actions:
      related: {persons: true, company: true}
  - id: contacts
    entity: person
    users: [anna, bartek, celina]
    trigger: {events: [created]}
"""


@pytest.fixture
def team_rules(write_rules: Callable[..., Path]) -> Path:
    return write_rules(**{"team.yaml": TEAM_BOT})


def issue_24(engine: Engine) -> None:
    """Anna gets deal d1 (company c1, person p1) and person p2, bartek deal d2; then c1 is
    given to bartek by hand."""
    deal = {"entity": "deal", "owners": ["bot:team"]}
    engine.handle(
        {"id": "e1", "kind": "created", "record": {**deal, "id": "d1", "company": "c1", "persons": ["p1"]}}
    )
    engine.handle({"id": "e2", "kind": "created", "record": {**deal, "id": "d2"}})
    engine.handle(
        {"id": "e3", "kind": "updated", "record": {"entity": "company", "id": "c1", "owners": ["bartek"]}}
    )
    engine.handle(
        {
            "id": "e4",
            "kind": "created",
            "record": {"entity": "person", "id": "p2", "owners": ["bot:contacts"]},
        }
    )


def owners_of(engine: Engine, *refs: str) -> dict[str, list[str]]:
    """The owners of records written ``deal/d1``."""
    found = {}
    for ref in refs:
        stored = engine.store.get_record("default", *ref.split("/"))
        assert stored is not None, ref
        found[ref] = stored["owners"]
    return found


ISSUE_24_RECORDS = ("deal/d1", "deal/d2", "company/c1", "person/p1", "person/p2")


def test_offboarding_moves_no_colleague_s_linked_record(team_rules: Path, store_url: str) -> None:
    with Engine(team_rules, store_url) as engine:
        issue_24(engine)
        assert owners_of(engine, *ISSUE_24_RECORDS) == {
            "deal/d1": ["anna"],
            "deal/d2": ["bartek"],
            "company/c1": ["bartek"],
            "person/p1": ["anna"],
            "person/p2": ["anna"],
        }
        engine.offboard("default", "anna", "anna-leaves")
        # d1 goes to celina and its person p1, anna's, with it; bartek keeps his company c1.
        assert owners_of(engine, *ISSUE_24_RECORDS) == {
            "deal/d1": ["celina"],
            "deal/d2": ["bartek"],
            "company/c1": ["bartek"],
            "person/p1": ["celina"],
            "person/p2": ["anna"],
        }
        # The audit says so too: the move of d1 changed p1 only.
        [move] = [o for o in engine.explain("default", "deal", "d1") if o.event_id.startswith("list/")]
        assert [
            (c.entity, c.record_id, c.owners_before, c.owners_after) for c in move.decisions[0].related
        ] == [("person", "p1", ["anna"], ["celina"])]
        assert move.leaving == "anna"


def test_offboarding_in_a_multiple_owner_account_takes_the_leaver_off_linked_records(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    settings = "settings: {plan: professional, multiple_owners: true}\n"
    rules = write_rules(
        **{"team.yaml": settings + TEAM_BOT.replace("company: true}", "company: true, mode: add}")}
    )
    with Engine(rules, tmp_path / "s.db") as engine:
        issue_24(engine)
        engine.handle(
            {
                "id": "e5",
                "kind": "updated",
                "record": {"entity": "person", "id": "p1", "owners": ["anna", "bartek"]},
            }
        )
        engine.offboard("default", "anna", "anna-leaves")
        # celina is added where anna was, and anna taken off; c1 (bartek's alone) stays.
        assert owners_of(engine, "deal/d1", "company/c1", "person/p1") == {
            "deal/d1": ["celina"],
            "company/c1": ["bartek"],
            "person/p1": ["bartek", "celina"],
        }


#: The summary of offboarding anna in issue 24: exactly what moved, and what stays, why.
ISSUE_24_SUMMARY = {
    "account": "default",
    "user": "anna",
    "operation": "anna-leaves",
    "moved": {"team": {"celina": 2}},
    "records_moved": 2,
    "moved_records": [
        moved_to("deal", "d1", ["celina"], "team"),
        moved_to("person", "p1", ["celina"], "team", passed_on_from="deal/d1"),
    ],
    "left": [
        {
            "entity": "person",
            "id": "p2",
            "reason": "bot 'contacts': not applied: the bot does not fire on 'list' events",
        }
    ],
    "remaining": 0,
    "done": True,
}


def test_the_offboarding_summary_is_what_the_outcomes_wrote(team_rules: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    with Engine(team_rules, db) as engine:
        issue_24(engine)
    args = ("user", "offboard", "anna", "--operation", "anna-leaves", "-r", str(team_rules), "--db", db)
    as_json = salesbot(*args, "--json")
    assert as_json.exit_code == 0, as_json.stderr
    assert json.loads(as_json.stdout) == ISSUE_24_SUMMARY
    # A rerun answers the same, in text too.
    as_text = salesbot(*args)
    assert (as_text.exit_code, as_text.stdout.splitlines()) == (
        0,
        [
            "user 'anna' of account 'default' is switched off",
            "bot team: 2 records to celina 2",
            "deal d1: to celina (bot team)",
            "person p1: to celina (bot team, passed on from deal d1)",
            "person p2: stays with anna: bot 'contacts': not applied: the bot does not fire on 'list' events",
        ],
    )
    with Engine(team_rules, db) as engine:
        assert owners_of(engine, "person/p1", "person/p2") == {"person/p1": ["celina"], "person/p2": ["anna"]}


def test_an_operation_id_offboards_one_user(team_rules: Path, store_url: str) -> None:
    with Engine(team_rules, store_url) as engine:
        issue_24(engine)
        engine.offboard("default", "anna", "leaves")
        before = owners_of(engine, *ISSUE_24_RECORDS)
        # d1 moved to celina under "leaves": the same id for celina is an error, not done.
        with pytest.raises(IdempotencyConflict) as raised:
            engine.offboard("default", "celina", "leaves")
        assert str(raised.value) == (
            "offboarding 'leaves': field 'operation': operation 'leaves' offboards user 'anna', "
            "not 'celina'; take a new operation id"
        )
        assert [s.active for s in engine.users("default")] == [False, True, True]
        assert owners_of(engine, *ISSUE_24_RECORDS) == before
        # Anna's own rerun answers as the first run did; a new id offboards celina.
        assert engine.offboard("default", "anna", "leaves").summary()["records_moved"] == 2
        assert engine.offboard("default", "celina", "celina-leaves").summary()["moved"] == {
            "team": {"bartek": 2}
        }
        assert owners_of(engine, "deal/d1", "person/p1") == {"deal/d1": ["bartek"], "person/p1": ["bartek"]}


def test_every_argument_is_checked_before_the_user_is_switched_off(team_rules: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    with Engine(team_rules, db) as engine:
        issue_24(engine)
        engine.offboard("default", "anna", "leaves")
    reused = salesbot(
        "user", "offboard", "bartek", "--operation", "leaves", "-r", str(team_rules), "--db", db
    )
    assert (reused.exit_code, reused.stderr) == (
        1,
        "error: offboarding 'leaves': field 'operation': operation 'leaves' offboards user 'anna', "
        "not 'bartek'; take a new operation id\n",
    )
    with Engine(team_rules, db) as engine:
        for call, error in (
            (lambda: engine.offboard("default", "bartek", "x", to_bot="nope"), SalesbotError),
            (lambda: engine.offboard("default", "bartek", "x", batch_size=0), ValueError),
            (lambda: engine.offboard("default", "bartek", "x", limit=-1), ValueError),
            (lambda: engine.offboard("default", "bartek", "x\n"), EventError),
            (lambda: engine.offboard("default", "bartek", "leaves"), IdempotencyConflict),
        ):
            with pytest.raises(error):
                call()
        assert [(s.user.id, s.active) for s in engine.users("default")] == [
            ("anna", False),
            ("bartek", True),
            ("celina", True),
        ]
        assert owners_of(engine, "deal/d2") == {"deal/d2": ["bartek"]}


def test_only_an_offboarding_s_list_event_names_a_user_leaving(team_rules: Path, tmp_path: Path) -> None:
    with Engine(team_rules, tmp_path / "s.db") as engine:
        event = {
            "id": "e1",
            "kind": "created",
            "leaving": "anna",
            "record": {"entity": "deal", "id": "d1", "owners": ["bot:team"]},
        }
        message = (
            "event 'e1': field 'leaving': only a list event may name a user leaving, "
            "and it must be a user of account 'default'"
        )
        with pytest.raises(EventError) as raised:
            engine.handle(event)
        assert str(raised.value) == message
        with pytest.raises(EventError) as raised:
            engine.handle({**event, "kind": "list", "leaving": "zoe"})
        assert str(raised.value) == message
        assert engine.store.get_record("default", "deal", "d1") is None


def test_a_preview_shows_exactly_what_the_offboarding_then_does_and_writes_nothing(
    rules: Path, store_url: str
) -> None:
    with Engine(rules, store_url) as engine:
        fill(engine, 8)
        engine.set_bot_active("default", "tasks", False)
        before = sorted(engine.store.open_records("default", "anna"))
        first = engine.preview_offboard("default", "anna", "op-1", limit=3)
        assert (len(first.moved_records), first.remaining) == (3, len(before) - 3 - len(first.left))
        preview = engine.preview_offboard("default", "anna", "op-1", to_bot="spare")
        assert sorted(engine.store.open_records("default", "anna")) == before  # nothing written
        assert [s.active for s in engine.users("default") if s.user.id == "anna"] == [True]
        done = engine.offboard("default", "anna", "op-1", to_bot="spare")
        assert preview.summary() == done.summary()
        assert {r.bot for r in done.moved_records} == {"deals", "people"}
        assert all("anna" not in r.owners for r in done.moved_records)
        why = "no active bot of its own, and to-bot 'spare' handles deal records"
        assert done.left and {left.reason for left in done.left} == {why}
        assert {left.entity for left in done.left} == {"task"}
