"""Who may get a record beyond the pool: caps, availability, sticky owners, fallback, and
routing a record that has no bot."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from factories import deal_event
from salesbot_core import Engine, RulesetError, hookimpl

PEOPLE = """
users:
  - {id: anna, name: Anna Nowak, caps: {day: 2}}
  - {id: bartek, name: Bartek Wiśniewski, caps: {week: 3}}
  - {id: celina, name: Celina Zając}
  - {id: jan, name: Jan Kowalski}
  - id: ewa
    timezone: Europe/Warsaw
    working_hours: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00"}
    out_of_office: [{start: "2026-12-24T00:00", end: "2026-12-28T00:00", reason: Christmas leave}]
"""


def at(moment: str) -> str:
    return datetime.fromisoformat(moment).isoformat()


def engine_for(write_rules, tmp_path: Path, bots: str, settings: str = "{}") -> Engine:
    rules = write_rules(**{"r.yaml": PEOPLE + f"settings: {settings}\nbots:\n{bots}"})
    return Engine(rules, tmp_path / "s.db")


CAPPED = """
  - {id: capped, users: [anna, bartek], fallback: jan}
"""


def test_caps_per_day_and_week_then_the_fallback(write_rules, tmp_path: Path) -> None:
    with engine_for(write_rules, tmp_path, CAPPED) as engine:
        monday = [
            engine.handle(deal_event(n, ["bot:capped"]) | {"at": at(f"2026-11-23T10:0{n}:00+00:00")})
            for n in range(6)
        ]
        tuesday = engine.handle(deal_event(6, ["bot:capped"]) | {"at": at("2026-11-24T08:00:00+00:00")})
        next_week = engine.handle(deal_event(7, ["bot:capped"]) | {"at": at("2026-11-30T08:00:00+00:00")})
    # anna: 2 a day; bartek: 3 a week; then nobody is eligible and jan, the fallback, gets it
    assert [o.owners_after[0] for o in monday] == ["anna", "bartek", "anna", "bartek", "bartek", "jan"]
    fallback = monday[5].decisions[0]
    assert (fallback.status, fallback.reason) == (
        "fallback",
        "no user in the pool is eligible: the bot's fallback owner",
    )
    assert [(s.user, s.reason) for s in fallback.skipped] == [
        ("anna", "capacity reached: 2 per day"),
        ("bartek", "capacity reached: 3 per week"),
    ]
    assert tuesday.owners_after == ["anna"]  # a new day for anna, bartek still full this week
    assert next_week.owners_after == ["bartek"]


AVAILABLE = """
  - {id: desk, users: [ewa, celina]}
"""


@pytest.mark.parametrize(
    ("moment", "owner", "reason"),
    [
        ("2026-11-25T08:30:00+00:00", "ewa", None),  # Wednesday 09:30 in Warsaw
        ("2026-11-25T07:30:00+00:00", "celina", "outside working hours 09:00-17:00 (08:30 Europe/Warsaw)"),
        ("2026-11-25T16:00:00+00:00", "celina", "outside working hours 09:00-17:00 (17:00 Europe/Warsaw)"),
        ("2026-11-28T10:00:00+00:00", "celina", "does not work on sat (Europe/Warsaw)"),
        ("2026-12-24T10:00:00+00:00", "celina", "Christmas leave until 2026-12-28T00:00:00+01:00"),
    ],
)
def test_working_hours_and_out_of_office_in_the_users_time_zone(
    write_rules, tmp_path: Path, moment: str, owner: str, reason: str | None
) -> None:
    with engine_for(write_rules, tmp_path, AVAILABLE) as engine:
        outcome = engine.handle(deal_event(1, ["bot:desk"]) | {"at": moment})
    assert outcome.owners_after == [owner]
    assert [s.reason for s in outcome.decisions[0].skipped] == ([reason] if reason else [])


class OnCall:
    """A host's calendar: only jan is on call; everyone else is in a meeting."""

    @hookimpl
    def salesbot_user_available(self, user, at):
        return None if user.id == "jan" else "in a meeting"


def test_a_host_plugs_in_its_own_calendar(write_rules, tmp_path: Path) -> None:
    rules = write_rules(**{"r.yaml": PEOPLE + "bots:\n  - {id: all, users: [celina, jan]}\n"})
    with Engine(rules, tmp_path / "s.db", plugins=[OnCall()]) as engine:
        owners = [engine.handle(deal_event(n, ["bot:all"])).owners_after for n in range(3)]
        skipped = engine.handle(deal_event(9, ["bot:all"])).decisions[0].skipped
    assert owners == [["jan"], ["jan"], ["jan"]]
    assert [(s.user, s.reason) for s in skipped] == [("celina", "in a meeting")]


STICKY = """
  - {id: accounts, users: [anna, bartek, celina], sticky: true}
"""


def test_sticky_owner_of_the_linked_company(write_rules, tmp_path: Path) -> None:
    with engine_for(write_rules, tmp_path, STICKY) as engine:
        engine.handle(
            {
                "id": "c1",
                "kind": "created",
                "record": {"entity": "company", "id": "warsztat", "owners": ["celina"]},
            }
        )
        engine.handle(
            {
                "id": "c2",
                "kind": "created",
                "record": {"entity": "company", "id": "kuznia", "owners": ["jan"]},
            }
        )
        picks = [
            engine.handle(deal_event(n, ["bot:accounts"], company=company)).decisions[0]
            for n, company in enumerate(["warsztat", "kuznia", "warsztat", None, "nowa"])
        ]
    assert [(d.owner, d.reason) for d in picks] == [
        ("celina", "owner of linked company 'warsztat'"),
        ("anna", "first in rotation"),  # jan owns kuznia but is not in the pool
        ("celina", "owner of linked company 'warsztat'"),
        ("bartek", "next in rotation after 'anna'"),  # sticky picks leave the rotation alone
        ("celina", "next in rotation after 'bartek'"),  # a company salesbot never saw
    ]


def test_sticky_needs_a_company_link(write_rules) -> None:
    with pytest.raises(RulesetError) as info:
        engine_for(
            write_rules, write_rules().parent, "  - {id: s, entity: company, users: [anna], sticky: true}\n"
        )
    assert str(info.value).endswith(
        "bot 's': field 'sticky': company records have no linked company to stick to"
    )


def test_an_unknown_fallback_user_is_a_ruleset_error(write_rules) -> None:
    with pytest.raises(RulesetError) as info:
        engine_for(write_rules, write_rules().parent, "  - {id: f, users: [anna], fallback: zofia}\n")
    assert str(info.value).endswith(
        "bot 'f': field 'fallback': unknown user 'zofia': declare it under 'users' in a ruleset "
        "file of account 'default'"
    )


ROUTING = """
  - {id: general, users: [celina], priority: 10}
  - {id: big, users: [anna], priority: 1, trigger: {where: {$gte: {value: 50000}}}}
  - {id: partners, users: [bartek], priority: 1, trigger: {processes: [Partners]}}
  - {id: people, entity: person, users: [jan]}
"""


def test_routing_without_a_bot_tries_bots_in_priority_order(write_rules, tmp_path: Path) -> None:
    with engine_for(write_rules, tmp_path, ROUTING) as engine:
        big = engine.route(deal_event(1, [], value=90000, process="Sales"))
        partner = engine.route(deal_event(2, [], value=100, process="Partners"))
        small = engine.route(deal_event(3, [], value=100, process="Sales"))
        person = engine.route({"id": "p1", "kind": "created", "record": {"entity": "person", "id": "p1"}})
        plain = engine.handle(deal_event(4, [], value=90000))  # handle() does not route
    assert (big.owners_after, partner.owners_after, small.owners_after, person.owners_after) == (
        ["anna"],
        ["bartek"],
        ["celina"],
        ["jan"],
    )
    assert [(d.bot, d.status) for d in small.decisions] == [
        ("big", "not_applied"),
        ("partners", "not_applied"),
        ("general", "assigned"),
    ]
    assert small.decisions[1].reason == "process 'Sales' is not one of ['Partners']"
    assert (plain.owners_after, plain.decisions) == ([], [])


def test_routing_with_no_bot_that_applies_leaves_the_owners(write_rules, tmp_path: Path) -> None:
    bots = "  - {id: big, users: [anna], trigger: {where: {$gte: {value: 50000}}}}\n"
    with engine_for(write_rules, tmp_path, bots) as engine:
        outcome = engine.route(deal_event(1, ["jan"], value=5))
    assert outcome.owners_after == ["jan"]
    assert [(d.bot, d.status) for d in outcome.decisions] == [("big", "not_applied")]


def test_routing_a_long_stream_stays_fair(write_rules, tmp_path: Path) -> None:
    bots = "  - {id: general, users: [celina, jan]}\n"
    with engine_for(write_rules, tmp_path, bots) as engine:
        counts = Counter(engine.route(deal_event(n, [])).owners_after[0] for n in range(40))
    assert counts == {"celina": 20, "jan": 20}
