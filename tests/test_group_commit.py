"""Group commit: events that arrive together share one transaction, each under a savepoint.

On SQLite and on a real PostgreSQL server (``store_url``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_observability import served
from test_service import bearer
from test_sla import DEFAULT_SLA, T0, sla_bot
from test_sla import TEAM as SLA_TEAM
from test_sla import created as sla_created

from salesbot_core import Engine
from salesbot_core.errors import EventError, IdempotencyConflict
from salesbot_core.hookspecs import hookimpl
from salesbot_core.models import record_from_json, stored_json
from salesbot_core.tokens import create_token


def created(
    event_id: str, bot: str = "inbound", record: str | None = None, title: str = ""
) -> dict[str, Any]:
    return {
        "id": event_id,
        "kind": "created",
        "record": {
            "entity": "deal",
            "id": record or f"d-{event_id}",
            "owners": [f"bot:{bot}"],
            "title": title,
        },
    }


@pytest.fixture
def engine(deal_bot_rules: Path, store_url: str) -> Iterator[Engine]:
    with Engine(deal_bot_rules, store_url) as engine:
        yield engine


def test_a_group_commits_its_good_events_and_each_bad_one_undoes_only_itself(engine: Engine) -> None:
    first = engine.handle(created("e0"))
    results = engine.handle_group(
        [
            created("e1"),
            created("e2", bot="nobody"),  # refused when validated
            created("e0", title="another payload"),  # refused inside the transaction
            created("e3"),
            created("e1"),  # a redelivery of the group's own first event
        ]
    )
    kinds = [type(r).__name__ for r in results]
    assert kinds == ["Outcome", "EventError", "IdempotencyConflict", "Outcome", "Outcome"]
    owners = [r.owners_after for r in results if not isinstance(r, EventError)]
    assert first.owners_after == ["anna"]
    assert owners == [["bartek"], ["celina"], ["bartek"]]
    assert [r.duplicate for r in results if not isinstance(r, EventError)] == [False, False, True]
    assert "'bot:nobody' is not a bot of account 'default'" in str(results[1])
    assert isinstance(results[2], IdempotencyConflict)
    # Exactly once: each good event logged once, the refused ones not at all.
    for record in ("d-e0", "d-e1", "d-e3"):
        assert len(list(engine.store.outcomes("default", "deal", record))) == 1
    assert list(engine.store.outcomes("default", "deal", "d-e2")) == []
    assert engine.store.get_record("default", "deal", "d-e0")["title"] == ""
    # The rotation went on from the group's last pick.
    assert engine.handle(created("e4")).owners_after == ["anna"]


def test_a_savepoint_rolled_back_undoes_its_writes_and_the_transaction_reads_again(engine: Engine) -> None:
    engine.handle(created("e0"))
    with engine.store.transaction() as tx:
        before = tx.get_record("default", "deal", "d-e0")
        assert before is not None
        deal = record_from_json(before)
        with pytest.raises(RuntimeError), tx.savepoint():
            changed = deal.model_copy(update={"title": "changed", "owners": ["bartek"]})
            tx.put_record("default", changed, stored_json(changed))
            tx.put_state("default", "inbound", {"last": "bartek"})
            raise RuntimeError("undo")
        assert tx.get_record("default", "deal", "d-e0") == before
        with tx.savepoint():
            kept = deal.model_copy(update={"title": "kept"})
            tx.put_record("default", kept, stored_json(kept))
    assert engine.store.get_record("default", "deal", "d-e0")["title"] == "kept"
    assert engine.handle(created("e1")).owners_after == ["bartek"]  # the rotation was not moved


def test_a_group_of_one_is_handle(engine: Engine) -> None:
    (outcome,) = engine.handle_group([created("e1")])
    assert not isinstance(outcome, EventError)
    assert (outcome.owners_after, outcome.duplicate) == (["anna"], False)
    (again,) = engine.handle_group([created("e1")])
    assert not isinstance(again, EventError)
    assert again.duplicate is True


@pytest.mark.slow
def test_the_service_decides_concurrent_requests_together_each_exactly_once(
    deal_bot_rules: Path, tmp_path: Path
) -> None:
    """8 clients at once against a real ``salesbot serve``: every event is answered with its
    own outcome and logged once, and requests that waited together shared a transaction
    (the group sizes the worker counted add up to the events, in fewer groups)."""

    db = str(tmp_path / "salesbot.db")
    with Engine(deal_bot_rules, db) as engine:
        token = create_token(engine.store, "default", "crm")
    events = [created(f"e{n}") for n in range(400)]
    bad = {**created("bad"), "record": {"entity": "deal", "id": "x", "owners": ["bot:nobody"]}}
    shares = [events[i::8] for i in range(8)]
    shares[3] = [*shares[3][:10], bad, *shares[3][10:]]
    for server, _ in served(deal_bot_rules, db, tmp_path):
        with ThreadPoolExecutor(8) as pool:
            answers = [
                a for share in pool.map(partial(_post_each, server.base, token), shares) for a in share
            ]
        metrics = httpx.get(f"{server.base}/metrics").text
    by_id = {event_id: (status, body) for event_id, status, body in answers}
    assert by_id["bad"][0] == 422
    assert "'bot:nobody' is not a bot of account 'default'" in by_id["bad"][1]["detail"]
    good = [(status, body) for event_id, (status, body) in by_id.items() if event_id != "bad"]
    assert len(good) == 400 and {status for status, _ in good} == {200}
    # Each request got its own event's outcome.
    assert all(body["event_id"] == event_id for event_id, (_, body) in by_id.items() if event_id != "bad")
    assert all(body["record_id"] == f"d-{body['event_id']}" for _, body in good)
    owners = Counter(body["owners_after"][0] for _, body in good)
    assert owners == {"anna": 134, "bartek": 133, "celina": 133}  # the rotation, exact
    with Engine(deal_bot_rules, db, readonly=True) as engine:
        for n in range(400):
            assert len(list(engine.store.outcomes("default", "deal", f"d-e{n}"))) == 1
    count = float(re.search(r"^salesbot_event_group_size_count (\S+)$", metrics, re.M).group(1))
    total = float(re.search(r"^salesbot_event_group_size_sum (\S+)$", metrics, re.M).group(1))
    assert total == 401  # every event went through a group, the refused one too
    assert count < total  # and some groups held more than one


def _post_each(base: str, token: str, share: list[dict[str, Any]]) -> list[tuple[str, int, Any]]:
    """One client: each event of ``share`` posted in turn on one keep-alive connection."""
    answers = []
    with httpx.Client(base_url=base, timeout=60) as http:
        for event in share:
            answer = http.post("/v1/accounts/default/events", json=event, headers=bearer(token))
            answers.append((event["id"], answer.status_code, answer.json()))
    return answers


# The other paths that decide several events together: the same mechanism (``each_in``).


def test_handle_many_commits_a_batch_together_and_a_refused_event_undoes_only_itself(engine: Engine) -> None:
    engine.handle(created("e0"))
    results = engine.handle_many(
        [created("e1"), created("e0", title="another payload"), created("e2"), created("e3")], batch_size=4
    )
    assert [type(r).__name__ for r in results] == ["Outcome", "IdempotencyConflict", "Outcome", "Outcome"]
    assert str(results[1]) == (
        "event 'e0': field 'id': already processed with a different payload; "
        "the first delivery's outcome stands (a new event needs a new id)"
    )
    assert [r.owners_after for r in results if not isinstance(r, EventError)] == [
        ["bartek"],
        ["celina"],
        ["anna"],
    ]
    for record in ("d-e0", "d-e1", "d-e2", "d-e3"):
        assert len(list(engine.store.outcomes("default", "deal", record))) == 1
    assert engine.store.get_record("default", "deal", "d-e0")["title"] == ""
    # A batch of one: the same results, one transaction each.
    assert [type(r).__name__ for r in engine.handle_many([created("e0", title="again")])] == [
        "IdempotencyConflict"
    ]


class RefusesD2:
    """An SLA plugin that refuses to hand on deal d2 (as the event path refuses an event)."""

    @hookimpl
    def salesbot_sla_missed(self, bot: Any, due: Any) -> None:
        if due.record_id == "d2":
            raise EventError("deal d2: refused by the test")


def test_a_tick_hands_on_its_items_together_and_a_refused_one_undoes_only_itself(
    write_rules: Callable[..., Path], store_url: str
) -> None:
    rules = write_rules(**{"team.yaml": SLA_TEAM, "inbound.yaml": sla_bot(DEFAULT_SLA)})
    with Engine(rules, store_url, plugins=[RefusesD2()]) as engine:
        engine.handle_many([sla_created(n, at=T0) for n in (1, 2, 3)], batch_size=3)
        results = engine.tick(T0 + timedelta(hours=3), batch_size=10)
        assert [str(r) if isinstance(r, EventError) else r.record_id for r in results] == [
            "d1",
            "deal d2: refused by the test",
            "d3",
        ]
        assert [r.owners_after for r in results if not isinstance(r, EventError)] == [["bartek"], ["anna"]]
        owners = {n: engine.record("default", "deal", f"d{n}").owners for n in (1, 2, 3)}  # type: ignore[union-attr]
        assert owners == {1: ["bartek"], 2: ["bartek"], 3: ["anna"]}
        assert [n.text for n in engine.wall("default", "deal", "d2")] == []
        assert [n.text for n in engine.wall("default", "deal", "d3")] == ["reassigned: no contact within 2h"]
        # The refused item is cleared (not retried for ever); the others have their next clock.
        assert sorted((d.record_id, d.owner) for d in engine.store.due_items("default")) == [
            ("d1", "bartek"),
            ("d3", "anna"),
        ]
        assert engine.tick(T0 + timedelta(hours=3), batch_size=10) == []
