"""The pure decision: an event, the rules and hand-built reads in, every change out.

No store is opened here: each test builds the ``Reads`` the engine would have read inside
its transaction and checks what the decision says to write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from factories import TEAM, deal_event
from salesbot_core.decision import Decider, Reads
from salesbot_core.models import Company, Event, Skip
from salesbot_core.registry import make_plugin_manager
from salesbot_core.rulesets import load_rulesets
from salesbot_core.strategy import Context

NOW = datetime(2026, 3, 10, 10, tzinfo=UTC)

BOTS = """
bots:
  - id: inbound
    name: Inbound leads
    users: [anna, bartek, celina]
    actions:
      related: {company: true}
      tag: inbound-bot
      note: "Assigned by {bot.name} to {owner.name}"
      notify: "{record.title} is yours"
  - id: lis
    users: [olga, jan]
  - id: empty
    users: [olga]
    fallback: jan
  - id: late
    users: [celina]
    priority: 5
  - id: early
    users: [bartek]
    priority: -1
    trigger: {where: {$gte: {value: 1000}}}
"""


@pytest.fixture
def decide(write_rules: Callable[..., Path]) -> Iterator[Callable[..., Any]]:
    """``decide(event, **reads)``: the decision on the rules above, with ``Reads`` built
    from the keyword arguments (``states``, ``switches``, ``previous_owners``, ``linked``)."""
    registry = make_plugin_manager(autoload=False)
    catalog = registry.catalog()
    rules = load_rulesets(write_rules(**{"team.yaml": TEAM, "bots.yaml": BOTS}), catalog)
    decider = Decider(rules, catalog, registry.pm.hook)

    def run(event: dict[str, Any], *, route: bool = False, linked: Any = None, **reads: Any) -> Any:
        valid = Event.model_validate(event)
        bots = decider.bots_that_may_fire(valid, route)
        return decider.decide(valid, Reads(Context(NOW, linked=linked or {}), bots, **reads), route)

    yield run
    rules.conditions.close()


def test_a_first_pick_starts_the_rotation_and_says_what_to_write(decide) -> None:
    decided = decide(deal_event(1, title="Fleet"))
    assert decided.record.owners == ["anna"]
    assert decided.record.tags == ["inbound-bot"]
    assert dict(decided.states) == {"inbound": {"last": "anna", "pool": ["anna", "bartek", "celina"]}}
    assert decided.notifications == [("anna", "Fleet is yours")]
    assert [(n.ref, n.text, n.bot) for n in decided.notes] == [
        (("deal", "d1"), "Assigned by Inbound leads to Anna Nowak", "inbound")
    ]
    assert decided.linked == []  # the deal has no company
    (decision,) = decided.outcome.decisions
    assert (decision.status, decision.owner, decision.reason) == ("assigned", "anna", "first in rotation")
    assert (decision.state_before, decision.candidates) == ({}, ["anna", "bartek", "celina"])
    assert (decided.outcome.owners_before, decided.outcome.owners_after) == (["bot:inbound"], ["anna"])
    assert decided.outcome.at == NOW


def test_the_rotation_goes_on_from_the_state_read_and_leaves_the_read_alone(decide) -> None:
    states = {"inbound": {"last": "bartek", "pool": ["anna", "bartek", "celina"]}}
    first = decide(deal_event(2), states=states)
    again = decide(deal_event(2), states=states)
    assert first.record.owners == again.record.owners == ["celina"]
    assert first.outcome.decisions[0].reason == "next in rotation after 'bartek'"
    assert states == {"inbound": {"last": "bartek", "pool": ["anna", "bartek", "celina"]}}
    assert first.states["inbound"] == {"last": "celina", "pool": ["anna", "bartek", "celina"]}


def test_a_deactivated_user_is_skipped_with_the_reason(decide) -> None:
    (decision,) = decide(deal_event(1, ["bot:lis"])).outcome.decisions
    assert (decision.owner, decision.candidates) == ("jan", ["jan"])
    assert decision.skipped == [Skip(user="olga", reason="user is deactivated")]


def test_nobody_eligible_goes_to_the_fallback_and_keeps_the_state(decide) -> None:
    decided = decide(deal_event(1, ["bot:empty"]), states={"empty": {"last": "olga"}})
    (decision,) = decided.outcome.decisions
    assert (decision.status, decision.owner) == ("fallback", "jan")
    assert decision.state_before == decision.state_after == {"last": "olga"}
    assert decided.record.owners == ["jan"]


def test_a_bot_switched_off_is_removed_and_the_previous_owners_come_back(decide) -> None:
    decided = decide(deal_event(1), switches={"inbound": False}, previous_owners=["jan"])
    (decision,) = decided.outcome.decisions
    assert (decision.status, decision.owner) == ("not_applied", None)
    assert decision.reason  # the triggers plugin says why
    assert decided.record.owners == ["jan"]
    assert (dict(decided.states), decided.notes, decided.notifications) == ({}, [], [])


def test_the_linked_company_read_gets_the_owner_and_the_tag(decide) -> None:
    company = Company(id="c1", name="Warsztat", owners=["jan"], tags=["vip"])
    decided = decide(deal_event(1, company="c1"), linked={("company", "c1"): company})
    (linked,) = decided.linked
    assert (linked.entity, linked.id, linked.owners, linked.tags) == (
        "company",
        "c1",
        ["anna"],
        ["vip", "inbound-bot"],
    )
    assert linked.name == "Warsztat"  # built on the record read, not a blank one
    (change,) = decided.outcome.decisions[0].related
    assert (change.owners_before, change.owners_after) == (["jan"], ["anna"])
    assert [n.ref for n in decided.notes] == [("deal", "d1"), ("company", "c1")]


def test_a_linked_record_the_bot_leaves_as_it_was_is_not_written_again(decide) -> None:
    # Every deal of a company after the first, in a list operation: the company has the
    # picked user and the tag already. The audit still says what happened to it.
    company = Company(id="c1", name="Warsztat", owners=["anna"], tags=["inbound-bot"])
    decided = decide(deal_event(1, company="c1"), linked={("company", "c1"): company})
    assert decided.linked == []
    (change,) = decided.outcome.decisions[0].related
    assert (change.record_id, change.owners_before, change.owners_after) == ("c1", ["anna"], ["anna"])
    assert [n.ref for n in decided.notes] == [("deal", "d1"), ("company", "c1")]
    # The same company without the tag is written, with it.
    untagged = company.model_copy(update={"tags": []})
    (linked,) = decide(deal_event(1, company="c1"), linked={("company", "c1"): untagged}).linked
    assert (linked.owners, linked.tags) == (["anna"], ["inbound-bot"])


def test_an_offboarding_passes_its_pick_on_only_to_the_leaver_s_linked_records(decide) -> None:
    # The event names who leaves: a colleague's company, and one nobody stored, stay as
    # they are (no change, no tag, no note); the leaver's gets the pick.
    offboarding = {**deal_event(1, company="c1"), "kind": "list", "leaving": "celina"}
    colleague = Company(id="c1", owners=["jan"])
    decided = decide(offboarding, linked={("company", "c1"): colleague})
    assert (decided.linked, decided.outcome.decisions[0].related, decided.outcome.leaving) == (
        [],
        [],
        "celina",
    )
    assert [n.ref for n in decided.notes] == [("deal", "d1")]
    assert decide({**offboarding, "record": {**offboarding["record"], "company": "c9"}}).linked == []
    (linked,) = decide(offboarding, linked={("company", "c1"): Company(id="c1", owners=["celina"])}).linked
    assert linked.owners == ["anna"]


def test_a_company_not_read_is_created_with_just_its_owner(decide) -> None:
    (linked,) = decide(deal_event(1, company="c9")).linked
    assert (linked.id, linked.owners, linked.name) == ("c9", ["anna"], "")


def test_routing_tries_bots_by_priority_and_the_first_that_applies_decides(decide) -> None:
    small = decide(deal_event(1, [], value=10), route=True)
    assert [(d.bot, d.status) for d in small.outcome.decisions] == [
        ("early", "not_applied"),
        ("inbound", "assigned"),
    ]
    assert small.outcome.decisions[0].reason == "the record does not match trigger.where"
    assert small.record.owners == ["anna"]
    big = decide(deal_event(2, [], value=5000), route=True)
    assert [(d.bot, d.owner) for d in big.outcome.decisions] == [("early", "bartek")]


def test_without_routing_a_record_without_a_bot_is_left_as_it_is(decide) -> None:
    decided = decide(deal_event(1, ["jan"], value=5000))
    assert (decided.outcome.decisions, decided.record.owners, dict(decided.states)) == ([], ["jan"], {})
