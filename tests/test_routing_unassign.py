"""Issue 16: unassign conditions, as Frappe's. A bot with an ``unassign`` section takes back
the owner it gave a record once the record no longer matches its ``trigger.where``: only
that owner (never one set by hand), exactly once, with audit, a wall note and a
notification; ``then: reroute`` sends the record back to the pool (routed again)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from salesbot_core import Bot, Decision, Engine, Release, RulesetError, hookimpl

RULES = """
settings: {multiple_owners: %s}
users:
  - {id: t0, name: Tomasz}
  - {id: t1}
  - {id: mgr}
bots:
  - id: open-deals
    name: Open deals
    users: [t0, t1]
    trigger: {where: {status: open}}
    unassign: %s
  - id: rest
    priority: 1
    users: [mgr]
"""
REASON = "the record no longer matches trigger.where"
NOTE = "Open deals unassigned Tomasz: the record no longer matches the bot's condition"
NOTICE = "Big deal no longer matches Open deals: it was taken off you"


def event(
    event_id: str, owners: list[str], status: str, kind: str = "updated", **extra: Any
) -> dict[str, Any]:
    record = {
        "entity": "deal",
        "id": "d1",
        "title": "Big deal",
        "owners": owners,
        "fields": {"status": status},
    }
    return {"id": event_id, "kind": kind, "record": record, **extra}


def engines(write_rules: Callable[..., Path], url: str, evaluator: str) -> Iterator[Callable[..., Engine]]:
    made: list[Engine] = []

    def make(unassign: str = "{}", multiple: bool = False, plugins: tuple[object, ...] = ()) -> Engine:
        folder = write_rules(**{"a.yaml": RULES % (str(multiple).lower(), unassign)})
        made.append(Engine(folder, url, conditions=evaluator, plugins=plugins))
        return made[-1]

    yield make
    for engine in made:
        engine.close()


@pytest.fixture
def make_engine(
    write_rules: Callable[..., Path], store_url: str, evaluator: str
) -> Iterator[Callable[..., Engine]]:
    """Engines on each store (the owners a bot gave are state both stores keep)."""
    yield from engines(write_rules, store_url, evaluator)


@pytest.fixture
def make_sqlite_engine(
    write_rules: Callable[..., Path], tmp_path: Path, evaluator: str
) -> Iterator[Callable[..., Engine]]:
    yield from engines(write_rules, str(tmp_path / "salesbot.db"), evaluator)


def test_unassign_when_condition_no_longer_holds(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    assert engine.route(event("e1", [], "open", kind="created")).owners_after == ["t0"]
    lost = engine.route(event("e2", ["t0"], "lost", changed=["status"]))
    assert lost.owners_after == []
    assert lost.decisions == [
        Decision(
            bot="open-deals", status="unassigned", removed="t0", reason=REASON, note=NOTE, notification=NOTICE
        )
    ]
    assert lost.explain()[1] == f"  bot 'open-deals': unassigned t0: {REASON}"
    assert engine.record("default", "deal", "d1").owners == []  # type: ignore[union-attr]
    assert [(n.text, n.bot, n.event_id) for n in engine.wall("default", "deal", "d1")] == [
        (NOTE, "open-deals", "e2")
    ]
    assert [(n.user, n.text, n.event_id) for n in engine.outbox()] == [("t0", NOTICE, "e2")]
    assert [o.event_id for o in engine.explain("default", "deal", "d1")] == ["e1", "e2"]


def test_unassign_happens_exactly_once(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    engine.route(event("e1", [], "open", kind="created"))
    engine.route(event("e2", ["t0"], "lost", changed=["status"]))
    # Redelivered: answered from the log.
    again = engine.route(event("e2", ["t0"], "lost", changed=["status"]))
    assert again.duplicate and again.owners_after == []
    # A later update from a host that still shows t0: t0 is now an owner the host set.
    later = engine.route(event("e3", ["t0"], "lost"))
    assert later.owners_after == ["t0"]
    assert [d.status for d in later.decisions] == ["not_applied", "not_applied"]
    assert len(engine.wall("default", "deal", "d1")) == 1
    assert len(engine.outbox()) == 1


def test_unassign_back_to_the_pool_reroutes_the_record(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine("{then: reroute}")
    engine.route(event("e1", [], "open", kind="created"))
    # Through Engine.handle (no routing asked): the bot's option sends it back to the pool.
    lost = engine.handle(event("e2", ["t0"], "lost", changed=["status"]))
    assert lost.owners_after == ["mgr"]
    assert [(d.bot, d.status, d.removed, d.owner, d.reason) for d in lost.decisions] == [
        ("open-deals", "unassigned", "t0", None, REASON),
        ("open-deals", "not_applied", None, None, "the record does not match trigger.where"),
        ("rest", "assigned", None, "mgr", "first in rotation"),
    ]
    assert [n.user for n in engine.outbox()] == ["t0"]


def test_an_owner_set_by_hand_is_never_unassigned(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    engine.route(event("e1", [], "open", kind="created"))
    engine.route(event("e2", ["mgr"], "open", changed=["owners"]))  # a manager takes it
    engine.route(event("e3", ["t0"], "open", changed=["owners"]))  # and gives it back by hand
    lost = engine.route(event("e4", ["t0"], "lost", changed=["status"]))
    assert lost.owners_after == ["t0"]
    assert "unassigned" not in [d.status for d in lost.decisions]
    assert engine.outbox() == []


def test_only_the_owner_the_bot_gave_is_unassigned(make_sqlite_engine: Callable[..., Engine]) -> None:
    engine = make_sqlite_engine(multiple=True)
    engine.route(event("e1", [], "open", kind="created"))
    lost = engine.route(event("e2", ["mgr", "t0"], "lost", changed=["status", "owners"]))
    assert lost.owners_after == ["mgr"]
    assert [(d.status, d.removed) for d in lost.decisions] == [("unassigned", "t0")]


def test_a_bot_set_as_owner_gives_an_owner_it_can_take_back(
    make_sqlite_engine: Callable[..., Engine],
) -> None:
    engine = make_sqlite_engine()
    assert engine.handle(event("e1", ["bot:open-deals"], "open", kind="created")).owners_after == ["t0"]
    assert engine.handle(event("e2", ["t0"], "lost", changed=["status"])).owners_after == []


def test_no_unassign_section_keeps_the_owner(make_sqlite_engine: Callable[..., Engine]) -> None:
    engine = make_sqlite_engine("null")
    engine.route(event("e1", [], "open", kind="created"))
    assert engine.route(event("e2", ["t0"], "lost", changed=["status"])).owners_after == ["t0"]


def test_a_switched_off_bot_takes_nothing_back(make_sqlite_engine: Callable[..., Engine]) -> None:
    engine = make_sqlite_engine()
    engine.route(event("e1", [], "open", kind="created"))
    engine.set_bot_active("default", "open-deals", False)
    assert engine.route(event("e2", ["t0"], "lost", changed=["status"])).owners_after == ["t0"]


def test_assign_list_and_record_read_a_record_a_bot_gave(make_sqlite_engine: Callable[..., Engine]) -> None:
    engine = make_sqlite_engine()
    engine.route(event("e1", [], "open", kind="created"))
    assert engine.record("default", "deal", "d1").owners == ["t0"]  # type: ignore[union-attr]
    (listed,) = engine.assign_list("default", "deal", ["d1"], "open-deals", "op1")
    assert listed.owners_after == ["t1"]
    assert engine.route(event("e2", ["t1"], "lost", changed=["status"])).owners_after == []


class LostDeals:
    """A plugin's own "stopped matching": a lost deal, whatever the bot's condition."""

    @hookimpl
    def salesbot_stopped_matching(self, bot: Bot, record: Any, owner: str) -> Release | None:
        lost = record.fields.get("stage") == "lost"
        return Release(reason=f"the deal was lost ({owner})", notify="Lost: {record.title}") if lost else None


def test_a_plugin_defines_stopped_matching(make_sqlite_engine: Callable[..., Engine]) -> None:
    engine = make_sqlite_engine("null", plugins=(LostDeals(),))
    engine.route(event("e1", [], "open", kind="created"))
    lost = engine.route(
        {
            **event("e2", ["t0"], "open"),
            "record": {
                **event("e2", ["t0"], "open")["record"],
                "fields": {"status": "open", "stage": "lost"},
            },
        }
    )
    assert lost.owners_after == []
    assert lost.decisions[0] == Decision(
        bot="open-deals",
        status="unassigned",
        removed="t0",
        reason="the deal was lost (t0)",
        notification="Lost: Big deal",
    )
    assert engine.wall("default", "deal", "d1") == []


def test_a_bad_unassign_section_names_file_bot_and_field(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    folder = write_rules(
        **{
            "a.yaml": (RULES % ("false", "{then: reroute, note: '{owner.password}'}")).replace(
                "    trigger: {where: {status: open}}\n", ""
            )
        }
    )
    with pytest.raises(RulesetError) as info:
        Engine(folder, tmp_path / "salesbot.db")
    assert [str(p) for p in info.value.problems] == [
        f"{folder / 'a.yaml'}: bot 'open-deals': field 'unassign': note: "
        "placeholder '{owner.password}' is not allowed: owner has only email, id, name",
        f"{folder / 'a.yaml'}: bot 'open-deals': field 'unassign': needs a where of its own or "
        "the bot's trigger.where: without a condition a record never stops matching",
    ]


def test_unassign_condition_of_its_own_as_frappe(make_engine: Callable[..., Engine]) -> None:
    """Frappe's unassign_condition: the owner goes when the record matches it, not merely
    when it stops matching the assign condition."""
    engine = make_engine("{where: {status: lost}}")
    assert engine.route(event("e1", [], "open", kind="created")).owners_after == ["t0"]
    pending = engine.route(event("e2", ["t0"], "pending", changed=["status"]))
    assert pending.owners_after == ["t0"]
    assert "unassigned" not in [d.status for d in pending.decisions]
    lost = engine.route(event("e3", ["t0"], "lost", changed=["status"]))
    assert lost.owners_after == []
    assert lost.decisions == [
        Decision(
            bot="open-deals",
            status="unassigned",
            removed="t0",
            reason='the record matches unassign.where \'{"status": "lost"}\'',
            note="Open deals unassigned Tomasz: the record meets the bot's unassign condition",
            notification="Big deal meets the unassign condition of Open deals: it was taken off you",
        )
    ]
    assert [n.event_id for n in engine.outbox()] == ["e3"]


def test_an_unassign_condition_needs_no_trigger_where_and_is_checked(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    without_trigger = (RULES % ("false", "{where: {status: lost}}")).replace(
        "    trigger: {where: {status: open}}\n", ""
    )
    folder = write_rules(**{"a.yaml": without_trigger})
    Engine(folder, tmp_path / "ok.db").close()
    (folder / "a.yaml").write_text(without_trigger.replace("{status: lost}", "{$lt: {status: true}}"))
    with pytest.raises(RulesetError) as info:
        Engine(folder, tmp_path / "bad.db")
    assert [str(p) for p in info.value.problems] == [
        f"{folder / 'a.yaml'}: bot 'open-deals': field 'unassign.where.$lt.status': "
        "$lt compares with a number or text"
    ]


def test_two_workers_unassign_once(write_rules: Callable[..., Path], store_url: str) -> None:
    """Two workers handle two different updates of the same lost deal at once: the record
    is locked with what the bots gave it, so the owner is taken back once."""
    folder = write_rules(**{"a.yaml": RULES % ("false", "{then: reroute}")})
    with Engine(folder, store_url) as first, Engine(folder, store_url) as second:
        first.route(event("e1", [], "open", kind="created"))
        barrier = threading.Barrier(2)
        outcomes: list[Any] = []

        def work(engine: Engine, event_id: str) -> None:
            barrier.wait()
            outcomes.append(engine.handle(event(event_id, ["t0"], "lost", changed=["status"])))

        threads = [threading.Thread(target=work, args=pair) for pair in ((first, "e2"), (second, "e3"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        statuses = sorted(d.status for outcome in outcomes for d in outcome.decisions)
        assert statuses.count("unassigned") == 1
        assert [n.user for n in first.outbox()] == ["t0"]
        assert len(first.wall("default", "deal", "d1")) == 1
        # The later update still lists t0, now an owner the host set: it stays.
        assert sorted(tuple(o.owners_after) for o in outcomes) == [("mgr",), ("t0",)]


def test_passing_an_owner_on_to_a_linked_record_keeps_what_its_bot_gave(
    write_rules: Callable[..., Path], tmp_path: Path, evaluator: str
) -> None:
    """A deal's bot adds its pick to the linked company's owners: the company's own bot can
    still take back the owner it gave the company."""
    rules = """
    settings: {multiple_owners: true}
    users: [{id: anna}, {id: t0}]
    bots:
      - id: accounts
        entity: company
        users: [anna]
        trigger: {where: {status: active}}
        unassign: {}
      - id: deals
        users: [t0]
        actions: {related: {company: true, mode: add}}
    """
    with Engine(write_rules(**{"a.yaml": rules}), tmp_path / "salesbot.db", conditions=evaluator) as engine:
        company = {"entity": "company", "id": "c1", "fields": {"status": "active"}}
        engine.route({"id": "e1", "kind": "created", "record": {**company, "owners": []}})
        deal = {"entity": "deal", "id": "d1", "company": "c1", "owners": ["bot:deals"]}
        assert engine.handle({"id": "e2", "kind": "created", "record": deal}).owners_after == ["t0"]
        assert engine.record("default", "company", "c1").owners == ["anna", "t0"]  # type: ignore[union-attr]
        churned = {**company, "owners": ["anna", "t0"], "fields": {"status": "churned"}}
        outcome = engine.handle({"id": "e3", "kind": "updated", "changed": ["status"], "record": churned})
        assert outcome.owners_after == ["t0"]
        assert [(d.bot, d.status, d.removed) for d in outcome.decisions] == [
            ("accounts", "unassigned", "anna")
        ]
