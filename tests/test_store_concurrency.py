"""Caps and linked records stay exact when events arrive out of order and when several
workers (real processes and threads) share one store, on SQLite and on PostgreSQL."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from racing import race
from store_queries import rows

from salesbot_core import Engine

CAPPED_USERS = """
users:
  - {id: capped, name: Capped, caps: CAPS}
  - {id: fallback, name: Fallback}
"""


def capped_rules(write_rules, caps: str, bots: int) -> Path:
    """``bots`` bots b0, b1... whose only pool member is ``capped``, with a fallback."""
    lines = [f"  - {{id: b{n}, users: [capped], fallback: fallback}}" for n in range(bots)]
    return write_rules(**{"r.yaml": CAPPED_USERS.replace("CAPS", caps) + "bots:\n" + "\n".join(lines) + "\n"})


def capped_event(event_id: str, bot: str, at: datetime) -> dict:
    return {
        "id": event_id,
        "kind": "created",
        "at": at.isoformat(),
        "record": {"entity": "deal", "id": event_id, "owners": [f"bot:{bot}"]},
    }


def per_day(url: str) -> dict[tuple[str, str], int]:
    """Assignments per (day, user), from the log the store wrote."""
    return {
        (day, user): n
        for day, user, n in rows(
            url, 'SELECT substr(at, 1, 10), "user", COUNT(*) FROM assignments GROUP BY 1, 2 ORDER BY 1, 2'
        )
    }


def test_events_delivered_out_of_order_count_against_their_own_day(write_rules, store_url: str) -> None:
    rules = capped_rules(write_rules, "{day: 2}", bots=1)
    march = [datetime(2026, 3, day, 9, tzinfo=UTC) for day in (10, 1, 2, 3, 4, 5)]
    with Engine(rules, store_url) as engine:
        # March 10 first, then March 1 to 5: three records each day
        for day in march:
            for n in range(3):
                engine.handle(capped_event(f"{day:%m%d}-{n}", "b0", day + timedelta(minutes=n)))
        # a record far in the future does not use up today's cap for good
        engine.handle(capped_event("future", "b0", datetime(2030, 1, 1, tzinfo=UTC)))
        today = engine.handle(capped_event("march-6", "b0", datetime(2026, 3, 6, 9, tzinfo=UTC)))
    assert today.owners_after == ["capped"]
    expected = {}
    for day in sorted(march):
        expected[(f"{day:%Y-%m-%d}", "capped")] = 2
        expected[(f"{day:%Y-%m-%d}", "fallback")] = 1
    expected[("2026-03-06", "capped")] = 1
    expected[("2030-01-01", "capped")] = 1
    assert per_day(store_url) == expected


WORKERS = 4


def _capped_worker(rules: str, url: str, worker: int, days: int, barrier) -> None:
    """One worker process: one event a day through its own bot, in step with the others."""
    start = datetime(2026, 1, 1, 9, tzinfo=UTC)
    with Engine(rules, url) as engine:
        for day in range(days):
            barrier.wait(timeout=120)
            engine.handle(capped_event(f"w{worker}-{day}", f"b{worker}", start + timedelta(days=day)))


@pytest.mark.slow
def test_a_cap_holds_exactly_across_bots_and_worker_processes(write_rules, store_url: str) -> None:
    days = 60
    rules = capped_rules(write_rules, "{day: 1}", bots=WORKERS)
    Engine(rules, store_url).close()  # the schema, once, before the workers race
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    workers = [
        context.Process(target=_capped_worker, args=(str(rules), store_url, w, days, barrier))
        for w in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=600)
    assert [worker.exitcode for worker in workers] == [0] * WORKERS
    expected = {}
    for day in range(days):
        date = f"{datetime(2026, 1, 1) + timedelta(days=day):%Y-%m-%d}"
        expected[(date, "capped")] = 1  # its cap, never more
        expected[(date, "fallback")] = WORKERS - 1
    assert per_day(store_url) == expected


LINKED = """
users:
  - {id: anna, name: Anna Nowak}
  - {id: bartek, name: Bartek Wiśniewski}
settings: {multiple_owners: true}
bots:
  - {id: first, users: [anna], actions: {related: {company: true, mode: add}}}
  - {id: second, users: [bartek], actions: {related: {company: true, mode: add}}}
"""


@pytest.mark.slow
def test_two_workers_linking_one_new_company_both_add_their_owner(write_rules, postgres_url: str) -> None:
    rounds = 30
    rules = write_rules(**{"r.yaml": LINKED})
    engines = [Engine(rules, postgres_url) for _ in range(2)]
    bots = ["first", "second"]

    def step(n: int, r: int) -> None:
        deal = {"entity": "deal", "id": f"d{r}-{bots[n]}", "owners": [f"bot:{bots[n]}"], "company": f"c{r}"}
        engines[n].handle({"id": f"e{r}-{bots[n]}", "kind": "created", "record": deal})

    try:
        race(2, rounds, step)
        owners = [sorted(engines[0].record("default", "company", f"c{r}").owners) for r in range(rounds)]
    finally:
        for engine in engines:
            engine.close()
    assert owners == [["anna", "bartek"]] * rounds


def test_one_engine_shared_by_8_threads_is_exact(deal_bot_rules: Path, store_url: str) -> None:
    """A host app (WSGI, Django, FastAPI's thread pool) shares one engine: 8 threads each
    handle 50 events and read records back. Every event is decided once and the rotation
    is exact; nothing fails (on SQLite, a second BEGIN once met the first transaction)."""
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    from factories import deal_event

    def work(engine: Engine, thread: int) -> list[str]:
        owners = []
        for n in range(50):
            number = thread * 1000 + n
            owners += engine.handle(deal_event(number)).owners_after
            if n % 10 == 0:  # reads meanwhile, on the same connection or pool
                assert [o.event_id for o in engine.explain("default", "deal", f"d{number}")] == [f"e{number}"]
        return owners

    with Engine(deal_bot_rules, store_url) as engine, ThreadPoolExecutor(8) as pool:
        owners = [owner for done in pool.map(lambda t: work(engine, t), range(8)) for owner in done]
        counts = Counter(owners)
        assert sorted(counts.values()) == [133, 133, 134] and set(counts) == {"anna", "bartek", "celina"}
        assert rows(store_url, "SELECT COUNT(*) FROM outcomes") == [(400,)]
