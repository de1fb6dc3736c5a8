"""``service``: one event over HTTP (``salesbot serve``) against ``Engine.handle`` in process.

The same events as ``per_event`` (a round-robin deal bot passing the owner to the company,
tag, wall notes, notification) on SQLite (``synchronous=FULL``). The baseline is
``Engine.handle`` called in this process on a fresh store. Against a real ``salesbot
serve`` (1 worker, JSON logs, metrics on) on another fresh store, measured in the same run:

* one event per request over one keep-alive connection (goal: ≤ 2× the in-process time);
* ``events:batch`` with 100 events per request (goal: ≤ 1.2× in process, per event);
* 8 clients at once, each one event per request on its own keep-alive connection,
  against the raw per-event router (``bench.raw_result``, one commit per event, FULL) on
  the same events: group commit (the worker decides the requests waiting together in
  one transaction) is how salesbot gets ahead of it (goal: at least its events/s).

Fair to both sides on shared cores: the three are interleaved in ``CHUNKS`` rounds (in
process, one per request, batched), so a burst of load from other jobs falls on all of
them alike; the client is this process, apart from the server, and as light as a client
gets (the standard library's ``http.client`` on one keep-alive connection, every request
encoded before the clock starts). The CPU seconds the server spent per event (its supervisor and worker
processes, from ``/proc``) are reported beside the in-process CPU per event: that ratio is what
HTTP costs the machine, whatever the scheduler did.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from salesbot_core import Engine
from salesbot_core.engine import open_store
from salesbot_core.registry import make_plugin_manager
from salesbot_core.tokens import create_token

from . import raw_result
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
from .per_event import RAW_BOT, RULES, events

NAME = "service"
TITLE = "one event over HTTP (salesbot serve) beside Engine.handle in process"
EVENTS = 2_000
BATCH = 100
#: Rounds the in-process, per-request and batched runs alternate in.
CHUNKS = 4
GOALS = {"per_request": 2.0, "batch": 1.2, "concurrent": 1.0}
#: Where the gap is and the next step, by goal (shown when it is missed).
GAPS = {
    "per_request": (
        "The server's CPU per event (the row below) beside Engine.handle's in one process is the "
        "HTTP stack's share: uvicorn's parsing, the ASGI call, the body read and validated, the "
        "answer encoded. Next: validate the body from its bytes in one pydantic-core pass "
        "(`model_validate_json`) and encode the answer with `model_dump_json`"
    ),
    "batch": "Next: the batch's events decided with one plan of each bot and written with one "
    "`executemany` per table",
    "concurrent": (
        "Group commit shares one transaction among the requests waiting (http/grouping.py); the "
        "rest is each event's CPU in one worker process, on 2 cores shared with the clients. "
        "Next: a group's events decided in one pass of each bot's plan, and `serve --workers 2` "
        "handing its groups to one writer"
    ),
}
#: Clients sending at once in the concurrent run.
CLIENTS = 8
RAW = "raw sqlite3 per event, by result (FULL)"
BASELINE = "Engine.handle in process"
PATH = "/v1/accounts/default/events"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a process and the processes under it (``serve``'s
    supervisor and its workers) have used so far (Linux ``/proc``); 0 for a gone one."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        children = [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(_cpu_seconds(child) for child in children)


@contextmanager
def serving(rules: Path, url: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A ``salesbot serve`` process on ``url``, ready: it and its port."""
    port = _port()
    command = [sys.executable, "-m", "salesbot_core", "serve", "--port", str(port), "-r", str(rules)]
    process = subprocess.Popen([*command, "--db", url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                probe.request("GET", "/readyz")
                if probe.getresponse().status == 200:
                    probe.close()
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkFailed("salesbot serve did not start")
            time.sleep(0.1)
        yield process, port
    finally:
        process.terminate()
        process.wait(15)


def _post(connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    connection.request("POST", path, body, headers)
    response = connection.getresponse()
    answer = response.read()
    if response.status != 200:
        raise BenchmarkFailed(f"HTTP {response.status}: {answer[:200]!r}")
    return answer


def _renamed(event: dict[str, Any], prefix: str) -> dict[str, Any]:
    record = {**event["record"], "id": prefix + event["record"]["id"]}
    return {**event, "id": prefix + event["id"], "record": record}


def measure(rules: Path, workdir: Path, batch: list[dict[str, Any]]) -> dict[str, float]:
    """One repetition: the three runs interleaved over ``CHUNKS`` rounds."""
    local_db, http_db = workdir / "service-local.db", workdir / "service-http.db"
    for db in (local_db, http_db):
        remove_db(db)
    url = sqlite_url(http_db, "FULL")
    with Engine(rules, url, autoload=False):
        pass  # the schema, before the server opens it
    store = open_store(make_plugin_manager(), url)
    try:
        token = create_token(store, "default", "bench", ["events"])
    finally:
        store.close()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    # Every body encoded before any clock starts: the client does as little as it can.
    singles = [json.dumps(e).encode() for e in batch]
    batched = [_renamed(e, "b") for e in batch]
    batches = [json.dumps({"events": batched[i : i + BATCH]}).encode() for i in range(0, len(batched), BATCH)]
    step = -(-len(batch) // CHUNKS)
    bstep = -(-len(batches) // CHUNKS)
    local_lat: list[float] = []
    http_lat: list[float] = []
    local_s = local_cpu = http_s = batch_s = server_cpu = 0.0
    with (
        Engine(rules, sqlite_url(local_db, "FULL"), autoload=False) as engine,
        serving(rules, url) as (
            process,
            port,
        ),
    ):
        for chunk in range(CHUNKS):
            mine = batch[chunk * step : (chunk + 1) * step] + batched[chunk * step : (chunk + 1) * step]
            cpu, start = time.process_time(), time.perf_counter()
            for event in mine:
                t0 = time.perf_counter()
                engine.handle(event)
                local_lat.append(time.perf_counter() - t0)
            local_s += time.perf_counter() - start
            local_cpu += time.process_time() - cpu

            # A new connection each round: the server closes one idle for 5 s (uvicorn's
            # keep-alive timeout) while the in-process round runs.
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            connection.connect()
            cpu, start = _cpu_seconds(process.pid), time.perf_counter()
            for body in singles[chunk * step : (chunk + 1) * step]:
                t0 = time.perf_counter()
                _post(connection, PATH, body, headers)
                http_lat.append(time.perf_counter() - t0)
            http_s += time.perf_counter() - start
            server_cpu += _cpu_seconds(process.pid) - cpu

            start = time.perf_counter()
            for body in batches[chunk * bstep : (chunk + 1) * bstep]:
                results = json.loads(_post(connection, f"{PATH}:batch", body, headers))["results"]
                if any("error" in r for r in results):
                    raise BenchmarkFailed(f"batch: {json.dumps(results)[:200]}")
            batch_s += time.perf_counter() - start
            connection.close()
        together = _concurrently(port, [json.dumps(_renamed(e, "c")).encode() for e in batch], headers)
    raw_db = workdir / "service-raw.db"
    remove_db(raw_db)
    raw = raw_result.ResultRouter(raw_result.connect(raw_db, "FULL"), RAW_BOT)
    raw_lat: list[float] = []
    start = time.perf_counter()
    for event in batch:
        t0 = time.perf_counter()
        raw.handle(event)
        raw_lat.append(time.perf_counter() - t0)
    raw_s = time.perf_counter() - start
    raw.conn.close()
    for db in (local_db, http_db, raw_db):
        remove_db(db)
    count = len(batch)
    return {
        **together,
        "raw_events_per_s": count / raw_s,
        "raw_p50_us": percentile(raw_lat, 50) * 1e6,
        "raw_p99_us": percentile(raw_lat, 99) * 1e6,
        "local_events_per_s": 2 * count / local_s,
        "local_p50_us": percentile(local_lat, 50) * 1e6,
        "local_p99_us": percentile(local_lat, 99) * 1e6,
        "local_cpu_us": local_cpu / (2 * count) * 1e6,
        "http_events_per_s": count / http_s,
        "http_p50_us": percentile(http_lat, 50) * 1e6,
        "http_p99_us": percentile(http_lat, 99) * 1e6,
        "server_cpu_us": server_cpu / count * 1e6,
        "batch_events_per_s": count / batch_s,
    }


def _concurrently(port: int, bodies: list[bytes], headers: dict[str, str]) -> dict[str, float]:
    """``CLIENTS`` threads posting ``bodies`` (each its share, one per request, on a
    keep-alive connection of its own): events/s over the whole run and the latencies."""
    shares = [bodies[i::CLIENTS] for i in range(CLIENTS)]
    latencies: list[float] = []
    failures: list[BaseException] = []
    go = threading.Barrier(CLIENTS + 1)

    def client(share: list[bytes]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        connection.connect()
        mine = []
        go.wait()
        try:
            for body in share:
                t0 = time.perf_counter()
                _post(connection, PATH, body, headers)
                mine.append(time.perf_counter() - t0)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        finally:
            connection.close()
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    go.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if failures:
        raise BenchmarkFailed(f"a concurrent client failed: {failures[0]}")
    return {
        "concurrent_events_per_s": len(bodies) / seconds,
        "concurrent_p50_us": percentile(latencies, 50) * 1e6,
        "concurrent_p99_us": percentile(latencies, 99) * 1e6,
    }


def run(options: Options, workdir: Path, console: Console, results: Path) -> Report:
    count = options.size(EVENTS)
    batch = events(count)
    rules = write_rules(workdir / "service-rules", {"bots.yaml": RULES})
    report = Report(
        NAME, details={"events": count, "repeat": options.repeat, "batch_size": BATCH, "rounds": CHUNKS}
    )
    runs: list[dict[str, float]] = []
    for rep in range(options.repeat):
        console.log(f"service: repetition {rep + 1}/{options.repeat}")
        runs.append(measure(rules, workdir, batch))
    report.details["runs"] = runs
    mid = {key: median([r[key] for r in runs]) for key in runs[0]}
    one = "HTTP, 1 event per request (keep-alive)"
    batched = f"HTTP, events:batch of {BATCH}"
    concurrent = f"HTTP, {CLIENTS} clients at once, 1 event per request"
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
            gap=GAPS["per_request"] + ".",
        ),
        Row(one, "p50 latency", "µs", mid["http_p50_us"], mid["local_p50_us"], BASELINE),
        Row(one, "p99 latency", "µs", mid["http_p99_us"], mid["local_p99_us"], BASELINE),
        Row(one, "CPU per event (server)", "µs", mid["server_cpu_us"], mid["local_cpu_us"], BASELINE),
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
            gap=GAPS["batch"] + ".",
        ),
        Row(
            concurrent,
            "throughput",
            "events/s",
            mid["concurrent_events_per_s"],
            mid["raw_events_per_s"],
            RAW,
            kind="rate",
            goal=GOALS["concurrent"],
            goal_text=f"ratio ≤ {GOALS['concurrent']}",
            gap=GAPS["concurrent"] + ".",
        ),
        Row(concurrent, "p50 latency", "µs", mid["concurrent_p50_us"], mid["raw_p50_us"], RAW),
        Row(concurrent, "p99 latency", "µs", mid["concurrent_p99_us"], mid["raw_p99_us"], RAW),
    ]
    return report
