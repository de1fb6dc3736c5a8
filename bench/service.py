"""``service``: one event over HTTP (``salesbot serve``) against ``Engine.handle`` in process.

The same events as ``per_event`` (a round-robin deal bot passing the owner to the company,
tag, wall notes, notification) on SQLite (``synchronous=FULL``). The baseline is
``Engine.handle`` called in this process on a fresh store. Against a real ``salesbot
serve`` (1 worker, JSON logs, metrics on) on another fresh store, measured in the same run:

* one event per request over one keep-alive connection (goal: ≤ 2× the in-process time);
* ``events:batch`` with 100 events per request (goal: ≤ 1.2× in process, per event).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from salesbot_core import Engine
from salesbot_core.engine import open_store
from salesbot_core.registry import make_plugin_manager
from salesbot_core.tokens import create_token

from .common import (
    BenchmarkFailed,
    Options,
    Report,
    Row,
    median,
    percentile,
    remove_db,
    sqlite_url,
    write_rules,
)
from .per_event import RULES, events

NAME = "service"
TITLE = "one event over HTTP (salesbot serve) beside Engine.handle in process"
EVENTS = 2_000
BATCH = 100
GOALS = {"per_request": 2.0, "batch": 1.2}
BASELINE = "Engine.handle in process"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def in_process(rules: Path, db: Path, batch: list[dict[str, Any]]) -> tuple[float, list[float]]:
    remove_db(db)
    latencies = []
    with Engine(rules, sqlite_url(db, "FULL"), autoload=False) as engine:
        start = time.perf_counter()
        for event in batch:
            t0 = time.perf_counter()
            engine.handle(event)
            latencies.append(time.perf_counter() - t0)
        total = time.perf_counter() - start
    return total, latencies


def over_http(rules: Path, db: Path, batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-request and batched runs against one ``salesbot serve``: seconds and latencies."""
    remove_db(db)
    url = sqlite_url(db, "FULL")
    with Engine(rules, url, autoload=False):
        pass
    store = open_store(make_plugin_manager(), url)
    try:
        token = create_token(store, "default", "bench", ["events"])
    finally:
        store.close()
    port = _port()
    command = [
        sys.executable,
        "-m",
        "salesbot_core",
        "serve",
        "--port",
        str(port),
        "-r",
        str(rules),
        "--db",
        url,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkFailed("salesbot serve did not start")
            time.sleep(0.1)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            path = "/v1/accounts/default/events"
            latencies = []
            start = time.perf_counter()
            for event in batch:
                t0 = time.perf_counter()
                response = client.post(path, json=event)
                latencies.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    raise BenchmarkFailed(f"HTTP {response.status_code}: {response.text[:200]}")
            per_request = time.perf_counter() - start
            batched = [
                {**e, "id": f"b{e['id']}", "record": {**e["record"], "id": f"b{e['record']['id']}"}}
                for e in batch
            ]
            start = time.perf_counter()
            for i in range(0, len(batched), BATCH):
                response = client.post(f"{path}:batch", json={"events": batched[i : i + BATCH]})
                if response.status_code != 200 or any("error" in r for r in response.json()["results"]):
                    raise BenchmarkFailed(f"batch: HTTP {response.status_code}: {response.text[:200]}")
            batch_seconds = time.perf_counter() - start
    finally:
        process.terminate()
        process.wait(15)
    return {"per_request": (per_request, latencies), "batch": batch_seconds}


def run(options: Options, workdir: Path, console: Console, results: Path) -> Report:
    count = options.size(EVENTS)
    batch = events(count)
    rules = write_rules(workdir / "service-rules", {"bots.yaml": RULES})
    report = Report(NAME, details={"events": count, "repeat": options.repeat, "batch_size": BATCH})
    runs: list[dict[str, float]] = []
    for rep in range(options.repeat):
        console.log(f"service: repetition {rep + 1}/{options.repeat}")
        local_s, local_lat = in_process(rules, workdir / "service-local.db", batch)
        http = over_http(rules, workdir / "service-http.db", batch)
        http_s, http_lat = http["per_request"]
        runs.append(
            {
                "local_events_per_s": count / local_s,
                "local_p50_us": percentile(local_lat, 50) * 1e6,
                "local_p99_us": percentile(local_lat, 99) * 1e6,
                "http_events_per_s": count / http_s,
                "http_p50_us": percentile(http_lat, 50) * 1e6,
                "http_p99_us": percentile(http_lat, 99) * 1e6,
                "batch_events_per_s": count / http["batch"],
            }
        )
    for db in ("service-local.db", "service-http.db"):
        remove_db(workdir / db)
    report.details["runs"] = runs
    mid = {key: median([r[key] for r in runs]) for key in runs[0]}
    one = "HTTP, 1 event per request (keep-alive)"
    batched = f"HTTP, events:batch of {BATCH}"
    report.rows += [
        Row(
            one,
            "throughput",
            "events/s",
            mid["http_events_per_s"],
            mid["local_events_per_s"],
            BASELINE,
            kind="rate",
            goal=GOALS["per_request"],
            goal_text=f"ratio ≤ {GOALS['per_request']}",
        ),
        Row(one, "p50 latency", "µs", mid["http_p50_us"], mid["local_p50_us"], BASELINE),
        Row(one, "p99 latency", "µs", mid["http_p99_us"], mid["local_p99_us"], BASELINE),
        Row(
            batched,
            "throughput",
            "events/s",
            mid["batch_events_per_s"],
            mid["local_events_per_s"],
            BASELINE,
            kind="rate",
            goal=GOALS["batch"],
            goal_text=f"ratio ≤ {GOALS['batch']}",
        ),
    ]
    return report
