"""Group commit: events that arrive together share one transaction, each under a savepoint.

On SQLite and on a real PostgreSQL server (``store_url``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from salesbot_core import Engine
from salesbot_core.errors import EventError, IdempotencyConflict


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
        with pytest.raises(RuntimeError), tx.savepoint():
            tx.put_record("default", {**before, "title": "changed", "owners": ["bartek"]})
            tx.put_state("default", "inbound", {"last": "bartek"})
            raise RuntimeError("undo")
        assert tx.get_record("default", "deal", "d-e0") == before
        with tx.savepoint():
            tx.put_record("default", {**before, "title": "kept"})
    assert engine.store.get_record("default", "deal", "d-e0")["title"] == "kept"
    assert engine.handle(created("e1")).owners_after == ["bartek"]  # the rotation was not moved


def test_a_group_of_one_is_handle(engine: Engine) -> None:
    (outcome,) = engine.handle_group([created("e1")])
    assert not isinstance(outcome, EventError)
    assert (outcome.owners_after, outcome.duplicate) == (["anna"], False)
    (again,) = engine.handle_group([created("e1")])
    assert not isinstance(again, EventError)
    assert again.duplicate is True
