"""A bounded load test of ``salesbot serve --workers 2``: thousands of events over 16
connections, half of them redelivered. Behaviour only (no timing): every record is assigned
exactly once, the round robin's per-user spread stays within 1, and no answer is a 5xx."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from test_observability import samples, served, value
from test_service import bearer

from factories import TEAM
from salesbot_core import Engine
from salesbot_core.engine import open_store
from salesbot_core.registry import make_plugin_manager
from salesbot_core.tokens import create_token

#: Distinct events; each is sent twice, so the service answers twice as many requests.
RECORDS = 2_500
CONNECTIONS = 16
USERS = ["anna", "bartek", "celina"]
RULES = """
bots:
  - id: inbound
    entity: deal
    users: [anna, bartek, celina]
    strategy: round_robin
"""


def run_load(folder: Path, db: str, cwd: Path) -> None:
    with Engine(folder, db):
        pass
    store = open_store(make_plugin_manager(), db)
    try:
        auth = bearer(create_token(store, "default", "load", ["events", "read"]))
    finally:
        store.close()
    events = [
        {
            "id": f"e{n}",
            "kind": "created",
            "record": {"entity": "deal", "id": f"d{n}", "owners": ["bot:inbound"]},
        }
        for n in range(RECORDS)
    ]
    requests = events + events  # every event delivered twice, in a shuffled order
    random.Random(13).shuffle(requests)
    for _, client in served(folder, db, cwd, "--workers", "2"):
        base = str(client.base_url)
        chunks = [requests[i::CONNECTIONS] for i in range(CONNECTIONS)]

        def send(chunk: list[dict[str, object]], base: str = base) -> list[tuple[int, dict[str, object]]]:
            answers = []
            with httpx.Client(base_url=base, headers=auth, timeout=120) as connection:  # keep-alive
                for event in chunk:
                    response = connection.post("/v1/accounts/default/events", json=event)
                    answers.append((response.status_code, response.json()))
            return answers

        with ThreadPoolExecutor(CONNECTIONS) as pool:
            answers = [answer for chunk in pool.map(send, chunks) for answer in chunk]
        statuses = Counter(status for status, _ in answers)
        assert statuses == {200: 2 * RECORDS}, statuses
        owners: dict[str, set[tuple[str, ...]]] = {}
        for _, outcome in answers:
            owners.setdefault(str(outcome["record_id"]), set()).add(tuple(outcome["owners_after"]))  # type: ignore[arg-type]
        # Both deliveries of a record answer the same single owner.
        assert len(owners) == RECORDS and all(len(seen) == 1 for seen in owners.values())
        assert sum(not outcome["duplicate"] for _, outcome in answers) == RECORDS
        scraped = samples(httpx.get(f"{base}/metrics", timeout=60).text)
        assert value(scraped, "salesbot_assignments_total", account="default", bot="inbound") == RECORDS
        assert value(scraped, "salesbot_events_total", account="default", status="duplicate") == RECORDS
    store = open_store(make_plugin_manager(), db)
    try:
        counts = Counter(
            {
                user: n
                for acc, bot, user, n in store.assignment_counts()
                if (acc, bot) == ("default", "inbound")
            }
        )
    finally:
        store.close()
    assert sum(counts.values()) == RECORDS and set(counts) == set(USERS)
    assert max(counts.values()) - min(counts.values()) <= 1, counts


@pytest.mark.slow
def test_load_on_sqlite(write_rules: Callable[..., Path], tmp_path: Path) -> None:
    run_load(write_rules(**{"team.yaml": TEAM, "bots.yaml": RULES}), str(tmp_path / "salesbot.db"), tmp_path)


@pytest.mark.slow
def test_load_on_postgresql(write_rules: Callable[..., Path], postgres_url: str, tmp_path: Path) -> None:
    run_load(write_rules(**{"team.yaml": TEAM, "bots.yaml": RULES}), postgres_url, tmp_path)
