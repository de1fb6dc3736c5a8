"""Caps as Odoo counts them: rolling windows (the last 24 hours, the last 30 days) beside
calendar periods, and the open records a user holds however they got them. On SQLite and
on PostgreSQL, exact when workers race."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from racing import race

from factories import TEAM, deal_event
from salesbot_core import Engine


def capped(write_rules, caps: str, bots: int = 1, settings: str = "{}") -> Path:
    """Bots b0, b1... whose pool is anna, capped with ``caps``, falling back to jan."""
    users = TEAM.replace("{id: anna, name: Anna Nowak}", f"{{id: anna, name: Anna Nowak, caps: {caps}}}")
    lines = [f"  - {{id: b{n}, users: [anna], fallback: jan}}" for n in range(bots)]
    return write_rules(**{"r.yaml": users + f"settings: {settings}\nbots:\n" + "\n".join(lines) + "\n"})


def at(n: int, moment: datetime, bot: str = "b0") -> dict:
    return deal_event(n, [f"bot:{bot}"]) | {"at": moment.isoformat()}


def saved(event_id: str, entity: str, record_id: str, owners: list[str], **record: object) -> dict:
    """A record saved by a person (no bot among its owners): the host's event for it."""
    account = record.pop("account", "default")
    body = {"entity": entity, "id": record_id, "owners": owners, **record}
    return {"id": event_id, "kind": "created", "account": account, "record": body}


def test_assignment_max_counts_rolling_30_days(write_rules, store_url: str) -> None:
    jan = [datetime(2026, 1, day, 10, tzinfo=UTC) for day in (1, 15, 30, 31)]
    feb_1 = datetime(2026, 2, 1, 10, tzinfo=UTC)
    with Engine(capped(write_rules, "{last_30_days: 2}"), store_url) as engine:
        owners = [engine.handle(at(n, moment)).owners_after[0] for n, moment in enumerate([*jan, feb_1])]
        full = engine.handle(at(9, feb_1 + timedelta(hours=1))).decisions[0]
    # Jan 30: two in the last 30 days. Jan 31 10:00: Jan 1 10:00 is exactly 30 days back, out
    # of the window. Feb 1: Jan 15 and Jan 31 are in it. A calendar month cap would have given
    # anna Feb 1 (a new month) and refused her Jan 31.
    assert owners == ["anna", "anna", "jan", "anna", "jan"]
    assert [(s.user, s.reason) for s in full.skipped] == [("anna", "capacity reached: 2 in the last 30 days")]


def test_assignment_max_counts_rolling_24_hours_not_the_calendar_day(write_rules, store_url: str) -> None:
    monday = datetime(2026, 11, 23, 22, tzinfo=UTC)
    moments = [
        monday,
        monday + timedelta(hours=3),
        monday + timedelta(hours=23, minutes=59),
        monday + timedelta(hours=24),
    ]
    with Engine(capped(write_rules, "{last_24h: 1, day: 5}"), store_url) as engine:
        owners = [engine.handle(at(n, moment)).owners_after[0] for n, moment in enumerate(moments)]
    # Tuesday 01:00 is a new calendar day, but within 24 hours of Monday 22:00
    assert owners == ["anna", "jan", "jan", "anna"]


def test_rolling_windows_do_not_count_assignments_made_later(write_rules, store_url: str) -> None:
    later = datetime(2026, 3, 10, 9, tzinfo=UTC)
    with Engine(capped(write_rules, "{last_24h: 1, last_30_days: 1}"), store_url) as engine:
        first = engine.handle(at(1, later)).owners_after
        # delivered late: a record saved a day earlier does not see the assignment after it
        earlier = engine.handle(at(2, later - timedelta(days=1))).owners_after
        same_time = engine.handle(at(3, later)).owners_after
    assert (first, earlier, same_time) == (["anna"], ["anna"], ["jan"])


def test_assignment_max_counts_open_records_assigned_by_hand(write_rules, store_url: str) -> None:
    with Engine(capped(write_rules, "{open: 2}"), store_url) as engine:
        engine.handle(deal_event(1, ["anna"]))  # a manager gives anna a deal by hand
        engine.handle(saved("e2", "task", "t2", ["anna"]))
        full = engine.handle(deal_event(3, ["bot:b0"]))
        # the deal is won: anna holds one open record, and has room for one more
        engine.handle(saved("won", "deal", "d1", ["anna"], open=False) | {"kind": "updated"})
        room = engine.handle(deal_event(5, ["bot:b0"]))
        full_again = engine.handle(deal_event(6, ["bot:b0"]))
        # routing again a record she already holds does not count it against her
        again = engine.handle(saved("e7", "deal", "d5", ["bot:b0"]) | {"kind": "updated"})
    assert full.owners_after == ["jan"]
    skipped = [(s.user, s.reason) for s in full.decisions[0].skipped]
    assert skipped == [("anna", "capacity reached: 2 open records owned")]
    assert (room.owners_after, full_again.owners_after, again.owners_after) == (["anna"], ["jan"], ["anna"])


def test_count_open_owned_counts_every_entity_open_only(write_rules, store_url: str) -> None:
    capped(write_rules, "{open: 9}", settings="{multiple_owners: true}")
    rules = write_rules(**{"other.yaml": "account: other\nusers: [{id: anna}]\n"})
    with Engine(rules, store_url) as engine:
        engine.handle(deal_event(1, ["anna", "jan"]))
        engine.handle(saved("p", "person", "p1", ["anna"]))
        engine.handle(saved("c", "deal", "d2", ["anna"], open=False))
        engine.handle(saved("o", "deal", "d3", ["anna"], account="other"))
        with engine.store.transaction() as tx:
            counts = {user: tx.count_open_owned("default", user) for user in ("anna", "jan", "olga")}
    assert counts == {"anna": 2, "jan": 1, "olga": 0}


WORKERS = 4
ROUNDS = 6


@pytest.mark.parametrize("caps", ["{open: 5}", "{last_30_days: 5}"])
def test_a_rolling_or_open_cap_holds_exactly_when_workers_race(
    write_rules, store_url: str, caps: str
) -> None:
    rules = capped(write_rules, caps, bots=WORKERS)
    Engine(rules, store_url).close()  # the schema, once, before the workers race
    engines = [Engine(rules, store_url) for _ in range(WORKERS)]
    start = datetime(2026, 1, 1, 9, tzinfo=UTC)

    def step(w: int, r: int) -> None:
        engines[w].handle(at(100 * w + r, start + timedelta(minutes=r), bot=f"b{w}"))

    try:
        race(WORKERS, ROUNDS, step)
        owners = [
            engines[0].record("default", "deal", f"d{100 * w + r}").owners[0]
            for w in range(WORKERS)
            for r in range(ROUNDS)
        ]
    finally:
        for engine in engines:
            engine.close()
    # bots b0..b3 hold different rotation locks: only the usage lock keeps anna at 5
    assert (owners.count("anna"), owners.count("jan")) == (5, WORKERS * ROUNDS - 5)
