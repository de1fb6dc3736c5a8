"""``page``: server time of each admin page with 2,000 bots and 100,000 decisions.

An account of 2,000 round-robin deal bots over 20 users, and 100,000 events (50 per bot,
spread over 30 days) on SQLite. Each page of ``salesbot serve``'s admin page is requested
in process (FastAPI's test client: the server's time, no network) and the median time
per request kept. The baseline is the same page on a store with the same bots and no
decisions: the difference is what the history costs, which the page's indexes keep
small. Goal: every page under 250 ms of server time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from salesbot_core import Engine
from salesbot_core.engine import open_store
from salesbot_core.registry import make_plugin_manager
from salesbot_core.tokens import create_token

from .common import Options, Report, Row, median, remove_db, sqlite_url, write_rules

NAME = "page"
TITLE = "admin page: server time per page, 2,000 bots and 100,000 decisions"
BOTS = 2_000
USERS = 20
DECISIONS = 100_000
REQUESTS = 10
GOAL_MS = 250.0
BASELINE = "same page, no decisions"


def pages(bots: int, decisions: int) -> dict[str, str]:
    """The pages measured, by name: each one GET (a bot and a record in the middle)."""
    return {
        "accounts overview": "/",
        "bots, first page": "/a/default",
        "bots, last page": f"/a/default?page_no={max(1, bots // 50)}",
        "a bot's page": f"/a/default/bots/b{bots // 2:04}",
        "a record's page": f"/a/default/records/deal/d{max(0, decisions // 2)}",
        "live decisions": "/a/default/live",
        "deliveries": "/a/default/deliveries",
    }


def rules(bots: int) -> dict[str, str]:
    users = "".join(f"  - {{id: u{n:02}}}\n" for n in range(USERS))
    listed = "".join(
        f"  - {{id: b{n:04}, entity: deal, users: [u{n % USERS:02}, u{(n + 1) % USERS:02}, "
        f"u{(n + 2) % USERS:02}]}}\n"
        for n in range(bots)
    )
    return {"team.yaml": f"users:\n{users}", "bots.yaml": f"bots:\n{listed}"}


def events(count: int, bots: int) -> list[dict[str, Any]]:
    """``count`` created deals, round the bots, their times spread over the last 30 days."""
    now = datetime.now(UTC)
    return [
        {
            "id": f"e{n}",
            "kind": "created",
            "at": (now - timedelta(minutes=(count - n) * 30 * 24 * 60 // count)).isoformat(),
            "record": {"entity": "deal", "id": f"d{n}", "owners": [f"bot:b{n % bots:04}"]},
        }
        for n in range(count)
    ]


def build(folder: Path, db: Path, decisions: int, bots: int) -> str:
    """A store with ``decisions`` events handled; returns a manage token's secret."""
    remove_db(db)
    url = sqlite_url(db, "NORMAL")
    with Engine(folder, url, autoload=False) as engine:
        engine.handle_many(events(decisions, bots), batch_size=1000)
    store = open_store(make_plugin_manager(), url)
    try:
        return create_token(store, "default", "bench", ["manage"])
    finally:
        store.close()


def measure(folder: Path, db: Path, secret: str, repeat: int, paths: dict[str, str]) -> dict[str, float]:
    """Median milliseconds per request of each page."""
    import re

    from fastapi.testclient import TestClient

    from salesbot_core.http.app import create_app

    app = create_app(lambda: Engine(folder, sqlite_url(db, "NORMAL"), autoload=False))
    times: dict[str, float] = {}
    with TestClient(app) as client:
        form = client.get("/signin").text
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form)
        assert csrf is not None
        client.post("/signin", data={"csrf": csrf.group(1), "token": secret})
        for name, path in paths.items():
            samples = []
            for _ in range(repeat * REQUESTS):
                start = time.perf_counter()
                response = client.get(path)
                samples.append(time.perf_counter() - start)
                # No record without decisions: the baseline's record page is its "not found".
                if response.status_code not in (200, 404) or (
                    response.status_code == 404 and "record" not in name
                ):
                    raise RuntimeError(f"{path}: HTTP {response.status_code}")
            times[name] = median(samples) * 1000
    return times


def run(options: Options, workdir: Path, console: Console, results: Path) -> Report:
    decisions = options.size(DECISIONS)
    bots = BOTS if not options.quick else BOTS // 20
    folder = write_rules(workdir / "page-rules", rules(bots))
    report = Report(
        NAME, details={"bots": bots, "decisions": decisions, "requests": REQUESTS * options.repeat}
    )
    console.log(f"page: {bots} bots, {decisions} decisions")
    full, empty = workdir / "page-full.db", workdir / "page-empty.db"
    paths = pages(bots, decisions)
    measured = measure(folder, full, build(folder, full, decisions, bots), options.repeat, paths)
    baseline = measure(folder, empty, build(folder, empty, 0, bots), options.repeat, paths)
    for db in (full, empty):
        remove_db(db)
    report.details["ms"] = measured
    report.rows += [
        Row(
            name,
            "server time",
            "ms",
            measured[name],
            baseline[name],
            BASELINE,
            goal=GOAL_MS,
            goal_on="value",
            goal_text=f"≤ {GOAL_MS:.0f} ms",
        )
        for name in paths
    ]
    return report
