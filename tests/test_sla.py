"""SLA reassignment (the ``sla`` section of a bot, ``salesbot tick``): a record its owner
does not act on within the time moves on, exactly once, on both stores.

The clock is injected everywhere: events carry ``at``, ``Engine.tick`` takes ``now``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_runner import salesbot

from factories import PYDANTIC, Message
from salesbot_core import Engine
from salesbot_core.errors import RulesetError

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday

TEAM = """
users:
  - {id: anna}
  - {id: bartek}
  - {id: celina}
"""


def sla_bot(sla: str, extra: str = "") -> str:
    """A round-robin deal bot ``inbound`` over anna, bartek and celina with ``sla``."""
    lines = "\n".join("      " + line for line in sla.strip().splitlines())
    return f"""
bots:
  - id: inbound
    users: [anna, bartek, celina]
    actions: {{tag: routed}}
{extra}    sla:
{lines}
"""


DEFAULT_SLA = """
within: 2h
met_when: {where: {$neq: {stage: "new"}}}
max_reassignments: 2
notify_previous: true
"""


def created(n: int, at: datetime = T0, **fields: Any) -> dict[str, Any]:
    record = {
        "entity": "deal",
        "id": f"d{n}",
        "owners": ["bot:inbound"],
        "fields": {"stage": "new", **fields},
    }
    return {"id": f"e{n}", "kind": "created", "at": at.isoformat(), "record": record}


def updated(
    n: int, event: str, owner: str, at: datetime, by: str | None = None, **fields: Any
) -> dict[str, Any]:
    record = {"entity": "deal", "id": f"d{n}", "owners": [owner], "fields": {"stage": "new", **fields}}
    event_data = {"id": event, "kind": "updated", "at": at.isoformat(), "record": record}
    return event_data | ({"by": by} if by else {})


@pytest.fixture
def sla_rules(write_rules: Callable[..., Path]) -> Path:
    return write_rules(**{"team.yaml": TEAM, "inbound.yaml": sla_bot(DEFAULT_SLA)})


def owners(engine: Engine, n: int = 1) -> list[str]:
    record = engine.record("default", "deal", f"d{n}")
    assert record is not None
    return record.owners


def test_an_update_by_the_owner_just_before_the_deadline_keeps_the_record(
    sla_rules: Path, store_url: str
) -> None:
    with Engine(sla_rules, store_url) as engine:
        assert engine.handle(created(1)).owners_after == ["anna"]
        [due] = engine.store.due_items("default")
        assert (due.owner, due.due_at, due.reassignments) == ("anna", "2026-03-02T11:00:00.000000Z", 0)
        engine.handle(updated(1, "u1", "anna", T0 + timedelta(hours=2, seconds=-1), by="anna"))
        assert engine.store.due_items("default") == []
        assert engine.tick(T0 + timedelta(hours=5)) == []
        assert owners(engine) == ["anna"]


def test_an_update_by_someone_else_does_not_stop_the_clock(sla_rules: Path) -> None:
    with Engine(sla_rules, sla_rules.parent / "s.db") as engine:
        engine.handle(created(1))
        engine.handle(updated(1, "u1", "anna", T0 + timedelta(hours=1), by="bartek"))
        assert [d.owner for d in engine.store.due_items("default")] == ["anna"]


def test_missed_just_after_the_deadline_moves_to_the_next_user(sla_rules: Path, store_url: str) -> None:
    with Engine(sla_rules, store_url) as engine:
        engine.handle(created(1))
        assert engine.tick(T0 + timedelta(hours=2, microseconds=-1)) == []
        [outcome] = engine.tick(T0 + timedelta(hours=2))
        assert outcome.owners_after == ["bartek"] == owners(engine)
        [decision] = outcome.decisions
        assert decision.status == "assigned"
        assert decision.reason == "reassigned: no contact within 2h; next in rotation after 'anna'"
        assert [(s.user, s.reason) for s in decision.skipped] == [
            ("anna", "the owner it is taken from (deadline missed)")
        ]
        record = engine.record("default", "deal", "d1")
        assert record is not None and record.tags == ["routed"]
        assert [n.text for n in engine.wall("default", "deal", "d1")] == ["reassigned: no contact within 2h"]
        assert [(n.user, n.text) for n in engine.outbox()] == [
            ("bartek", "deal d1 is yours: reassigned: no contact within 2h"),
            ("anna", "deal d1: reassigned: no contact within 2h"),
        ]
        [due] = engine.store.due_items("default")
        assert (due.owner, due.due_at, due.reassignments) == ("bartek", "2026-03-02T13:00:00.000000Z", 1)
        # Handled once: a second tick at the same time finds nothing.
        assert engine.tick(T0 + timedelta(hours=2)) == []


def test_the_where_condition_meets_the_sla(sla_rules: Path, evaluator: str) -> None:
    with Engine(sla_rules, sla_rules.parent / "s.db", conditions=evaluator) as engine:
        engine.handle(created(1))
        engine.handle(updated(1, "u1", "anna", T0 + timedelta(minutes=5), stage="new"))
        assert len(engine.store.due_items("default")) == 1
        engine.handle(updated(1, "u2", "anna", T0 + timedelta(minutes=10), stage="contacted"))
        assert engine.store.due_items("default") == []


def test_closing_the_record_meets_the_sla(sla_rules: Path) -> None:
    with Engine(sla_rules, sla_rules.parent / "s.db") as engine:
        engine.handle(created(1))
        event = updated(1, "u1", "anna", T0 + timedelta(minutes=5))
        event["record"]["open"] = False
        engine.handle(event)
        assert engine.store.due_items("default") == []


def test_a_redelivered_event_after_the_sla_is_met_brings_nothing_back(
    sla_rules: Path, store_url: str
) -> None:
    with Engine(sla_rules, store_url) as engine:
        engine.handle(created(1))
        engine.handle(updated(1, "u1", "anna", T0 + timedelta(minutes=30), by="anna"))
        assert engine.handle(created(1)).duplicate
        assert engine.store.due_items("default") == []
        assert engine.tick(T0 + timedelta(days=1)) == []
        assert owners(engine) == ["anna"]


def test_after_max_reassignments_the_fallback_owner_gets_it(write_rules: Callable[..., Path]) -> None:
    rules = write_rules(
        **{
            "team.yaml": TEAM + "  - {id: jan}\n",
            "inbound.yaml": sla_bot("within: 1h\nmax_reassignments: 1", extra="    fallback: jan\n"),
        }
    )
    with Engine(rules, rules.parent / "s.db") as engine:
        engine.handle(created(1))
        assert engine.tick(T0 + timedelta(hours=1))[0].owners_after == ["bartek"]
        [last] = engine.tick(T0 + timedelta(hours=2))
        assert last.owners_after == ["jan"]
        assert [(d.status, d.reason) for d in last.decisions] == [
            ("fallback", "reassigned: no contact within 1h; no reassignment left: the bot's fallback owner")
        ]
        # The fallback owner has no clock: the chain ends there.
        assert engine.store.due_items("default") == []
        explained = [
            line
            for o in engine.explain("default", "deal", "d1")
            for line in o.explain()
            if "bot 'inbound'" in line
        ]
        assert explained == [
            "  bot 'inbound': assigned -> anna: first in rotation",
            "  bot 'inbound': assigned -> bartek: reassigned: no contact within 1h; "
            "next in rotation after 'anna'",
            "  bot 'inbound': fallback -> jan: reassigned: no contact within 1h; no reassignment left: "
            "the bot's fallback owner",
        ]


def test_after_max_reassignments_without_a_fallback_the_record_stays(
    write_rules: Callable[..., Path],
) -> None:
    rules = write_rules(**{"team.yaml": TEAM, "inbound.yaml": sla_bot("within: 30m\nmax_reassignments: 0")})
    with Engine(rules, rules.parent / "s.db") as engine:
        engine.handle(created(1))
        [outcome] = engine.tick(T0 + timedelta(minutes=30))
        assert outcome.owners_after == ["anna"] == owners(engine)
        assert [(d.status, d.reason) for d in outcome.decisions] == [
            ("not_applied", "SLA missed: no contact within 30m; no reassignment left: stays with anna")
        ]
        assert engine.wall("default", "deal", "d1") == []
        assert engine.store.due_items("default") == []


def test_then_another_bot(write_rules: Callable[..., Path]) -> None:
    escalation = """
  - id: seniors
    users: [celina]
"""
    rules = write_rules(
        **{"team.yaml": TEAM, "inbound.yaml": sla_bot("within: 1h\nthen: bot:seniors") + escalation}
    )
    with Engine(rules, rules.parent / "s.db") as engine:
        engine.handle(created(1))
        [outcome] = engine.tick(T0 + timedelta(hours=1))
        assert outcome.owners_after == ["celina"]
        assert [d.bot for d in outcome.decisions] == ["seniors"]


def test_business_hours_run_over_the_weekend(write_rules: Callable[..., Path]) -> None:
    team = """
users:
  - {id: anna, timezone: Europe/Warsaw, working_hours: {start: "09:00", end: "17:00"}}
  - {id: bartek, timezone: Europe/Warsaw}
  - {id: celina}
"""
    rules = write_rules(**{"team.yaml": team, "inbound.yaml": sla_bot("within: 2h\nbusiness_hours: true")})
    friday_4pm = datetime(2026, 3, 27, 15, 0, tzinfo=UTC)  # 16:00 in Warsaw (CET)
    with Engine(rules, rules.parent / "s.db") as engine:
        engine.handle(created(1, at=friday_4pm))
        [due] = engine.store.due_items("default")
        # One hour on Friday, one from Monday 09:00 CEST (summer time began on Sunday).
        assert due.due_at == "2026-03-30T08:00:00.000000Z"
        assert engine.tick(datetime(2026, 3, 29, 12, 0, tzinfo=UTC)) == []
        assert engine.tick(datetime(2026, 3, 30, 7, 59, 59, tzinfo=UTC)) == []
        assert engine.tick(datetime(2026, 3, 30, 8, 0, tzinfo=UTC))[0].owners_after == ["bartek"]


def test_a_record_moved_by_hand_is_not_handed_on(sla_rules: Path) -> None:
    with Engine(sla_rules, sla_rules.parent / "s.db") as engine:
        engine.handle(created(1))
        engine.handle(updated(1, "u1", "celina", T0 + timedelta(minutes=5)))
        assert engine.tick(T0 + timedelta(hours=3)) == []
        assert owners(engine) == ["celina"]
        assert engine.store.due_items("default") == []


def test_a_bad_sla_is_a_ruleset_error_naming_file_bot_and_field(write_rules: Callable[..., Path]) -> None:
    rules = write_rules(**{"team.yaml": TEAM, "inbound.yaml": sla_bot("within: 2 hours")})
    with pytest.raises(RulesetError) as raised:
        Engine(rules, ":memory:")
    assert str(raised.value).splitlines() == [
        Message(
            f"{rules / 'inbound.yaml'}: bot 'inbound': field 'sla.within': {PYDANTIC}'2 hours' is not a "
            "duration such as 30m, 2h, 1d or 1h30m"
        )
    ]
    rules = write_rules(**{"inbound.yaml": sla_bot("within: 2h\nmet_when: {where: {$nope: {stage: new}}}")})
    with pytest.raises(RulesetError) as raised:
        Engine(rules, ":memory:")
    assert str(raised.value).splitlines() == [
        f"{rules / 'inbound.yaml'}: bot 'inbound': field 'sla.met_when.where.$nope': unknown operator "
        "'$nope'; known: $and, $eq, $ex, $gt, $gte, $iall, $iany, $imt, $lt, $lte, $mt, $neq, $nex, $or"
    ]


def test_then_naming_an_unknown_bot_is_an_error_at_load(write_rules: Callable[..., Path]) -> None:
    rules = write_rules(**{"team.yaml": TEAM, "inbound.yaml": sla_bot("within: 1h\nthen: bot:seniors")})
    expected = (
        f"{rules / 'inbound.yaml'}: bot 'inbound': field 'sla.then': unknown bot 'seniors': "
        "no bot of account 'default' has this id"
    )
    with pytest.raises(RulesetError) as raised:
        Engine(rules, ":memory:")
    assert str(raised.value).splitlines() == [expected]
    checked = salesbot("validate", "-r", str(rules))
    assert (checked.exit_code, checked.stdout, checked.stderr) == (1, "", f"error: {expected}\n")


def test_then_fallback_on_a_bot_without_a_fallback_owner_is_an_error_at_load(
    write_rules: Callable[..., Path],
) -> None:
    rules = write_rules(**{"team.yaml": TEAM, "inbound.yaml": sla_bot("within: 1h\nthen: fallback")})
    with pytest.raises(RulesetError) as raised:
        Engine(rules, ":memory:")
    assert str(raised.value).splitlines() == [
        f"{rules / 'inbound.yaml'}: bot 'inbound': field 'sla': then: fallback needs the bot's "
        "fallback owner: set 'fallback: <user>' on the bot"
    ]
    rules = write_rules(**{"inbound.yaml": sla_bot("within: 1h\nthen: fallback", "    fallback: celina\n")})
    with Engine(rules, ":memory:") as engine:
        assert engine.rules.bots[("default", "inbound")].fallback == "celina"


def test_then_may_name_a_bot_of_a_later_file_but_not_of_another_account(
    write_rules: Callable[..., Path],
) -> None:
    seniors = "bots:\n  - {id: seniors, users: [celina]}\n"
    rules = write_rules(
        **{
            "team.yaml": TEAM,
            "a_inbound.yaml": sla_bot("within: 1h\nthen: bot:seniors"),
            "b_seniors.yaml": seniors,
        }
    )
    with Engine(rules, ":memory:") as engine:
        assert [bot.id for bot in engine.rules.account_bots("default")] == ["inbound", "seniors"]
    other = "account: other\nusers: [{id: celina}]\n" + seniors
    rules = write_rules(
        **{
            "team.yaml": TEAM,
            "a_inbound.yaml": sla_bot("within: 1h\nthen: bot:seniors"),
            "b_seniors.yaml": other,
        }
    )
    with pytest.raises(RulesetError) as raised:
        Engine(rules, ":memory:")
    assert [(p.bot, p.field) for p in raised.value.problems] == [("inbound", "sla.then")]


def test_a_version_8_sqlite_file_gets_the_due_items_table(sla_rules: Path, tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with Engine(sla_rules, db) as engine:
        engine.handle(created(1))
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE due_items")
    conn.execute("PRAGMA user_version = 8")
    conn.commit()
    conn.close()
    with Engine(sla_rules, db) as engine:
        assert engine.store.due_items("default") == []
        engine.handle(created(2))
        assert [d.record_id for d in engine.store.due_items("default")] == ["d2"]
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone() == (11,)
    conn.close()


def test_salesbot_tick_and_explain(sla_rules: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    with Engine(sla_rules, db) as engine:
        engine.handle(created(1))
    early = salesbot("tick", "-r", str(sla_rules), "--db", db, "--now", "2026-03-02T10:00:00Z")
    assert (early.exit_code, early.stdout) == (0, "0 records handed on or kept\n")
    result = salesbot("tick", "-r", str(sla_rules), "--db", db, "--now", "2026-03-02T12:00:00+01:00")
    assert result.exit_code == 0
    assert result.stdout == (
        "deal d1: owners now bartek (reassigned: no contact within 2h; next in rotation after 'anna')\n"
        "1 record handed on or kept\n"
    )
    explained = salesbot("explain", "deal", "d1", "-r", str(sla_rules), "--db", db)
    assert (
        "  bot 'inbound': assigned -> bartek: reassigned: no contact within 2h; next in rotation after 'anna'"
        in (explained.stdout.splitlines())
    )
    # Out of range, in the year 1 or 9999 beyond what an offset can move, or no time at
    # all: one error naming --now, no traceback, nothing ticked.
    for text in ("tomorrow", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2300-01-01"):
        bad = salesbot("tick", "-r", str(sla_rules), "--db", db, "--now", text)
        assert (bad.exit_code, bad.stderr) == (
            1,
            f"error: --now: '{text}' is not an ISO 8601 date or time (2026-11-01, 2026-11-01T09:00+01:00) "
            "from 1970 to 2199\n",
        )


@pytest.mark.slow
def test_salesbot_serve_ticks_on_its_own(sla_rules: Path, tmp_path: Path) -> None:
    from test_service import bearer, serve, tokens

    db = str(tmp_path / "s.db")
    with Engine(sla_rules, db):
        pass  # the store, for the tokens
    auth = bearer(tokens(db)["all"])
    three_hours_ago = datetime.now(UTC) - timedelta(hours=3)
    for client in serve(sla_rules, db, tmp_path, "--tick", "0.2"):
        done = client.post("/v1/accounts/default/events", json=created(1, at=three_hours_ago), headers=auth)
        assert done.status_code == 200 and done.json()["owners_after"] == ["anna"], done.text
        deadline = time.monotonic() + 30
        record = "/v1/accounts/default/records/deal/d1"
        while (owners_now := client.get(record, headers=auth).json()["record"]["owners"]) == ["anna"]:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert owners_now == ["bartek"]
        wall = client.get(record, headers=auth).json()["wall"]
        assert [note["text"] for note in wall] == ["reassigned: no contact within 2h"]
