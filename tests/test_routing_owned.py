"""Issue 16: routing never overrides a person's assignment (Frappe's and Odoo's assignment
rules take only unassigned records). ``trigger.owned: reassign`` opts a bot out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from salesbot_core import Decision, Engine, RulesetError

TEAM = """
users:
  - {id: t0}
  - {id: t1}
  - {id: mgr}
"""
#: The issue's bot: public deals over t0 and t1.
PUBLIC = """
bots:
  - id: public
    users: [t0, t1]
    trigger: {where: {public: 1}%s}
"""
LEAVES = "the bot leaves owned records (trigger.owned: leave)"


def event(event_id: str, kind: str, owners: list[str], changed: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": event_id,
        "kind": kind,
        "record": {"entity": "deal", "id": "d1", "owners": owners, "fields": {"public": 1}},
    }
    if changed is not None:
        data["changed"] = changed
    return data


@pytest.fixture
def make_engine(
    write_rules: Callable[..., Path], tmp_path: Path, evaluator: str
) -> Iterator[Callable[[str], Engine]]:
    engines: list[Engine] = []

    def make(owned: str = "") -> Engine:
        folder = write_rules(**{"team.yaml": TEAM, "public.yaml": PUBLIC % owned})
        engines.append(Engine(folder, tmp_path / "salesbot.db", conditions=evaluator))
        return engines[-1]

    yield make
    for engine in engines:
        engine.close()


def test_assignment_by_hand_is_not_overridden(make_engine: Callable[[str], Engine]) -> None:
    """The issue's hazard, step by step: the bot assigns a new deal once, and neither a
    plain update nor a manager's hand assignment sends it round the rotation again."""
    engine = make_engine("")
    assert engine.route(event("e1", "created", [])).owners_after == ["t0"]
    update = engine.route(event("e2", "updated", ["t0"]))
    assert update.owners_after == ["t0"]
    assert update.decisions == [
        Decision(bot="public", status="not_applied", reason=f"owned by a user (t0); {LEAVES}")
    ]
    by_hand = engine.route(event("e3", "updated", ["mgr"], changed=["owners"]))
    assert by_hand.owners_after == ["mgr"]
    assert by_hand.decisions == [
        Decision(bot="public", status="not_applied", reason=f"owned by a user (mgr); {LEAVES}")
    ]
    assert engine.route(event("e4", "updated", ["mgr"])).owners_after == ["mgr"]
    assert engine.record("default", "deal", "d1").owners == ["mgr"]  # type: ignore[union-attr]
    # The rotation moved once, for the one record it assigned.
    with engine.store.transaction() as tx:
        assert tx.get_state("default", "public") == {"last": "t0", "pool": ["t0", "t1"]}


#: Every event kind, with and without ``changed``, and the reason the bot leaves the record.
KINDS = [
    ("created", None, f"owned by a user (mgr); {LEAVES}"),
    ("created", ["owners"], f"owned by a user (mgr); {LEAVES}"),
    ("updated", None, f"owned by a user (mgr); {LEAVES}"),
    ("updated", ["owners"], f"owned by a user (mgr); {LEAVES}"),
    ("updated", ["title"], "the update did not change the owners"),
    ("list", None, f"owned by a user (mgr); {LEAVES}"),
    ("list", ["owners"], f"owned by a user (mgr); {LEAVES}"),
]


@pytest.mark.parametrize(("kind", "changed", "reason"), KINDS)
def test_owned_record_is_left_to_its_owner_on_every_event_kind(
    make_engine: Callable[[str], Engine], kind: str, changed: list[str] | None, reason: str
) -> None:
    engine = make_engine("")
    outcome = engine.route(event("e1", kind, ["mgr"], changed))
    assert outcome.owners_after == ["mgr"]
    assert outcome.decisions == [Decision(bot="public", status="not_applied", reason=reason)]
    assert engine.outbox() == []


@pytest.mark.parametrize(("kind", "changed"), [(k, c) for k, c, _ in KINDS if c != ["title"]])
def test_unowned_record_is_routed_on_every_event_kind(
    make_engine: Callable[[str], Engine], kind: str, changed: list[str] | None
) -> None:
    outcome = make_engine("").route(event("e1", kind, [], changed))
    assert outcome.owners_after == ["t0"]
    assert [(d.bot, d.status, d.owner) for d in outcome.decisions] == [("public", "assigned", "t0")]


@pytest.mark.parametrize(("kind", "changed"), [(k, c) for k, c, _ in KINDS if c != ["title"]])
def test_reassign_routes_owned_records_like_unowned_ones(
    make_engine: Callable[[str], Engine], kind: str, changed: list[str] | None
) -> None:
    """Odoo's re-assignment: with ``trigger.owned: reassign`` the bot takes owned records too."""
    engine = make_engine(", owned: reassign")
    assert engine.route(event("e1", kind, ["mgr"], changed)).owners_after == ["t0"]
    assert engine.route(event("e2", kind, ["t0"], changed)).owners_after == ["t1"]


def test_a_bot_set_in_the_owner_field_still_replaces_itself(make_engine: Callable[[str], Engine]) -> None:
    """The guard is for routing: a bot a person sets as the owner is that person's choice."""
    engine = make_engine("")
    engine.route(event("e1", "created", ["mgr"]))
    assert engine.handle(event("e2", "updated", ["bot:public"], ["owners"])).owners_after == ["t0"]


def test_the_ruleset_names_a_wrong_owned_option(write_rules: Callable[..., Path], tmp_path: Path) -> None:
    folder = write_rules(**{"team.yaml": TEAM, "public.yaml": PUBLIC % ", owned: steal"})
    with pytest.raises(RulesetError) as info:
        Engine(folder, tmp_path / "salesbot.db")
    assert f"{folder / 'public.yaml'}: bot 'public': field 'trigger.owned': " in str(info.value)
    assert "'leave' or 'reassign'" in str(info.value)
    assert not (tmp_path / "salesbot.db").exists()
