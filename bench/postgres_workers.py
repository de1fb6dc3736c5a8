"""``postgres_workers``: worker processes sharing one PostgreSQL, beside an atomic raw router.

HOOK FOR THE POSTGRESQL STORE. This benchmark runs only with ``--pg postgresql://...``;
without it, it is skipped with the reason printed. It uses nothing but the public
interface: the store is chosen by passing the URL as ``Engine``'s store argument, and if
no store plugin handles ``postgresql://`` URLs the benchmark is skipped with that reason.

Each worker is a ``multiprocessing`` process (spawned) building its own
``Engine(rulesets, url)``; after a warm-up of a few events of its own, all workers start
together (a barrier) and each handles its share of distinct events, dealt out from one
shuffled order: deals created with one of eight round-robin bots (four accounts, two bots
each) as owner, so workers contend on the rotation state as real ones do. The figure is
events/s over the whole run, from the first worker's start to the last worker's end. It
runs with 1 and with 2 workers: the goals (issue 25) are one worker at least half the
baseline's throughput, and 2 workers (on 2 cores) at least 1.4 times one.

The baseline is the smallest raw psycopg router with the same observable result per
event, written as one would for speed (``atomic_event``): one statement of data-modifying
CTEs, prepared, in autocommit, so each event is one round trip and one transaction. It
keeps the event id once (a redelivery writes nothing), takes the rotation as an atomic
counter (``UPDATE ... RETURNING``), writes the deal and its company with their owner and
tag, the wall notes, the notification and an audit row per record changed. Its own
2-worker speed-up is printed too (no goal): whether the machine let any router scale.
All sides run in the same repetition, interleaved, on the same server; with one worker
each deal must go to the same user on both sides (checked).

It replaces the earlier raw side, the same writes one statement after another in one
transaction (9.5 round trips an event). That program told only that salesbot takes fewer
round trips than a naive one, which the round-trip goal (at most 4, on salesbot's own
count) says without it; its throughput was bounded by its round trips, not by the work,
so it was neither the goal's baseline nor a bound on what scaling the machine allows;
and a third side would have made the run half as long again.

Round trips per event are counted, not estimated: both sides also run through
``RoundTrips``, a loopback TCP proxy in front of the server that counts each time a
client speaks after the server last did (the atomic router: 1).

Every run uses fresh account names (a random token), so the database given need not be
empty and runs never see each other's rows; use a scratch database all the same.
"""

from __future__ import annotations

import multiprocessing
import random
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console

from .common import BenchmarkFailed, Options, Report, Row, median, write_rules

NAME = "postgres_workers"
TITLE = "worker processes against one PostgreSQL, beside an atomic raw psycopg router"
EVENTS = 1_000
#: One worker, and two: the scale-out goal is for 2 workers on 2 cores.
WORKERS = (1, 2)
#: salesbot, and the atomic one-statement-per-event raw router (``atomic_event``).
SIDES = ("salesbot", "atomic")
ACCOUNTS = 4
WARM_UP = 5
#: Events each side handles through the counting proxy.
COUNTED = 200
USERS = {"inbound": ["anna", "bartek", "celina"], "partners": ["celina", "anna"]}
#: The most round trips an event may take (issue 12), checked on the counted figure.
ROUND_TRIP_GOAL = 4
#: One worker's throughput at least half the raw program's: salesbot over raw at most 2.
THROUGHPUT_GOAL = 2.0
#: Two workers at least 1.4 times one worker's throughput (issue 25).
SCALE_GOAL = 1.4


class RoundTrips:
    """A TCP proxy on loopback in front of a PostgreSQL server that counts round trips.

    A round trip is the client speaking after the server last did (or first): a pipeline
    of statements sent at once and answered together is one, however many messages it
    holds; a statement waited for before the next is sent is one each."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._server = socket.create_server(("127.0.0.1", 0))
        port = self._server.getsockname()[1]
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{port}"
        self.url = urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))
        self._lock = threading.Lock()
        self.count = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        with self._lock:
            self.count = 0

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            turn = ["server"]  # who spoke last on this connection
            threading.Thread(target=self._pump, args=(client, server, turn, "client"), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, turn, "server"), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, turn: list[str], side: str) -> None:
        try:
            while data := src.recv(65536):
                with self._lock:
                    if side == "client" and turn[0] == "server":
                        self.count += 1
                    turn[0] = side
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._server.close()


def rules(token: str) -> dict[str, str]:
    files = {}
    for k in range(ACCOUNTS):
        files[f"a{k}.yaml"] = f"""\
            account: pb{token}a{k}
            users:
              - {{id: anna, name: Anna Nowak}}
              - {{id: bartek, name: Bartek Wiśniewski}}
              - {{id: celina, name: Celina Zając}}
            bots:
              - id: inbound
                name: Inbound leads
                users: [anna, bartek, celina]
                actions:
                  related: {{company: true}}
                  tag: inbound-bot
                  note: "Assigned by {{bot.name}} to {{owner.name}}"
                  notify: "New deal {{record.title}}"
              - id: partners
                name: Partners
                users: [celina, anna]
                actions: {{tag: partner-bot, note: "Assigned to {{owner.name}}"}}
            """
    return files


def event(token: str, label: str, n: int) -> dict[str, Any]:
    bot = "inbound" if n % 2 == 0 else "partners"
    return {
        "id": f"{token}-{label}-{n}",
        "kind": "created",
        "account": f"pb{token}a{n % (2 * ACCOUNTS) // 2}",
        "record": {
            "entity": "deal",
            "id": f"{label}-{n}",
            "title": f"Deal {n}",
            "value": 1000 + n,
            "company": f"c{n % 100}",
            "owners": [f"bot:{bot}"],
        },
    }


RAW_SCHEMA = """
CREATE TABLE IF NOT EXISTS raw_events (account TEXT, event_id TEXT, PRIMARY KEY (account, event_id));
CREATE TABLE IF NOT EXISTS raw_rotation (
    account TEXT, bot TEXT, n BIGINT NOT NULL, PRIMARY KEY (account, bot));
CREATE TABLE IF NOT EXISTS raw_records (
    account TEXT, entity TEXT, id TEXT, owner TEXT NOT NULL, PRIMARY KEY (account, entity, id));
CREATE TABLE IF NOT EXISTS raw_tags (
    account TEXT, entity TEXT, id TEXT, tag TEXT, PRIMARY KEY (account, entity, id, tag));
CREATE TABLE IF NOT EXISTS raw_notes (
    id BIGSERIAL PRIMARY KEY, account TEXT, entity TEXT, record_id TEXT, text TEXT);
CREATE TABLE IF NOT EXISTS raw_outbox (
    id BIGSERIAL PRIMARY KEY, account TEXT, "user" TEXT, text TEXT, delivered BOOLEAN DEFAULT false);
CREATE TABLE IF NOT EXISTS raw_audit (
    account TEXT, event_id TEXT, entity TEXT, record_id TEXT, bot TEXT, owner TEXT,
    PRIMARY KEY (account, entity, record_id, event_id))
"""
#: Each bot's tag, as the rulesets above give it.
TAGS = {"inbound": "inbound-bot", "partners": "partner-bot"}
NAMES = {"anna": "Anna Nowak", "bartek": "Bartek Wiśniewski", "celina": "Celina Zając"}


def raw_setup(conn: Any, token: str) -> None:
    """The raw program's tables, and a rotation counter per bot of this run's accounts."""
    for statement in RAW_SCHEMA.split(";"):
        conn.execute(statement)
    for k in range(ACCOUNTS):
        for bot in USERS:
            conn.execute(
                "INSERT INTO raw_rotation VALUES (%s, %s, 0) ON CONFLICT DO NOTHING", (f"pb{token}a{k}", bot)
            )
    conn.commit()


#: One event as one statement: data-modifying CTEs run as one statement, so in autocommit
#: the whole event is one round trip and one transaction. Nothing is written for an event
#: id already kept (``fresh`` is empty, so every later CTE is); the rotation is an atomic
#: counter whose row stays locked until the statement commits.
ATOMIC_EVENT = """
WITH fresh AS (
    INSERT INTO raw_events VALUES (%(account)s, %(event)s) ON CONFLICT DO NOTHING RETURNING 1
), turn AS (
    UPDATE raw_rotation SET n = n + 1
    WHERE account = %(account)s AND bot = %(bot)s AND EXISTS (SELECT FROM fresh)
    RETURNING n
), chosen AS (
    SELECT users[(n - 1) %% cardinality(users) + 1] AS owner,
           names[(n - 1) %% cardinality(users) + 1] AS name
    FROM turn, CAST(%(users)s AS text[]) AS users, CAST(%(names)s AS text[]) AS names
), changed AS (
    SELECT entity, id, owner, name
    FROM chosen, unnest(CAST(%(entities)s AS text[]), CAST(%(ids)s AS text[])) AS c(entity, id)
), records AS (
    INSERT INTO raw_records SELECT %(account)s, entity, id, owner FROM changed
    ON CONFLICT (account, entity, id) DO UPDATE SET owner = excluded.owner
    WHERE raw_records.owner <> excluded.owner
), tags AS (
    INSERT INTO raw_tags SELECT %(account)s, entity, id, %(tag)s FROM changed ON CONFLICT DO NOTHING
), notes AS (
    INSERT INTO raw_notes (account, entity, record_id, text)
    SELECT %(account)s, entity, id, %(note)s || name FROM changed
), outbox AS (
    INSERT INTO raw_outbox (account, "user", text)
    SELECT %(account)s, owner, notify FROM chosen, CAST(%(notify)s AS text) AS notify
    WHERE notify IS NOT NULL
), audit AS (
    INSERT INTO raw_audit SELECT %(account)s, %(event)s, entity, id, %(bot)s, owner FROM changed
)
SELECT owner FROM chosen
"""


def atomic_event(conn: Any, item: dict[str, Any]) -> str | None:
    """One event as a raw psycopg router writes it in one statement (``conn`` in
    autocommit); the owner, or None for a redelivery (its first answer is in raw_audit)."""
    deal = item["record"]
    bot = deal["owners"][0].removeprefix("bot:")
    inbound = bot == "inbound"
    changed = [("deal", deal["id"])] + ([("company", deal["company"])] if inbound else [])
    row = conn.execute(
        ATOMIC_EVENT,
        {
            "account": item["account"],
            "event": item["id"],
            "bot": bot,
            "users": USERS[bot],
            "names": [NAMES[user] for user in USERS[bot]],
            "entities": [entity for entity, _ in changed],
            "ids": [id for _, id in changed],
            "tag": TAGS[bot],
            "note": "Assigned by Inbound leads to " if inbound else "Assigned to ",
            "notify": f"New deal {deal['title']}" if inbound else None,
        },
        prepare=True,  # from the first event: psycopg's default waits 5, then prepares in a trip of its own
    ).fetchone()
    return row[0] if row else None


def handler(side: str, folder: str, url: str) -> tuple[Any, Any]:
    """``(handle, close)`` of one worker: salesbot's engine, or the atomic router's
    connection (autocommit: each statement is its own transaction)."""
    if side == "salesbot":
        from salesbot_core import Engine

        engine = Engine(folder, url, autoload=False)
        return engine.handle, engine.close
    import psycopg

    conn = psycopg.connect(url, autocommit=True)
    return (lambda item: atomic_event(conn, item)), conn.close


def worker(
    side: str, folder: str, url: str, token: str, index: int, numbers: list[int], barrier: Any, results: Any
) -> None:
    """One worker process: its own engine (or connection), a warm-up, then its share."""
    try:
        handle, close = handler(side, folder, url)
        try:
            for n in range(WARM_UP):
                handle(event(token, f"warm{index}", n))
            batch = [event(token, "e", n) for n in numbers]
            barrier.wait()
            start = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
            for item in batch:
                handle(item)
            results.put((index, start, time.perf_counter(), len(batch), None))
        finally:
            close()
    except Exception as exc:
        barrier.abort()
        results.put((index, 0.0, 0.0, 0, f"{type(exc).__name__}: {exc}"))


def throughput(side: str, folder: Path, url: str, token: str, workers: int, count: int) -> float:
    """Events/s of ``workers`` processes of one side handling ``count`` distinct events together."""
    # One shuffled order, the same for every side and run (so one worker's deals go to the
    # same users on both sides), dealt out in turn: each worker meets the bots in no fixed
    # pattern, and two workers at times want the same rotation row at once, as workers
    # behind a load balancer do. Dealt out by number, worker 0 of 2 would get every inbound
    # event and worker 1 every partners one: they would never meet.
    order = random.Random(0).sample(range(count), count)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [
        ctx.Process(
            target=worker, args=(side, str(folder), url, token, i, order[i::workers], barrier, results)
        )
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    reports = [results.get(timeout=3_600) for _ in procs]
    for proc in procs:
        proc.join()
    errors = [error for *_, error in reports if error]
    if errors:
        raise RuntimeError("; ".join(errors))
    start = min(r[1] for r in reports)
    end = max(r[2] for r in reports)
    return sum(r[3] for r in reports) / (end - start)


def round_trips(side: str, folder: Path, url: str, token: str, count: int) -> float:
    """Round trips per event of one side, counted by the proxy after a warm-up."""
    proxy = RoundTrips(url)
    try:
        handle, close = handler(side, str(folder), proxy.url)
        try:
            for n in range(WARM_UP):
                handle(event(token, "rtwarm", n))
            proxy.reset()
            for n in range(count):
                handle(event(token, "rt", n))
            return proxy.count / count
        finally:
            close()
    finally:
        proxy.close()


def same_owners(url: str, salesbot: str, atomic: str) -> int:
    """Check each deal of the 1-worker runs went to the same user on both sides; the count."""
    import psycopg

    with psycopg.connect(url) as conn:
        ours = conn.execute(
            'SELECT substr(o.account, 13), o.record_id, a."user" FROM outcomes o JOIN assignments a '
            "ON a.seq = o.seq WHERE o.account LIKE %s AND o.event_id LIKE %s",
            (f"pb{salesbot}a%", f"{salesbot}-e-%"),
        ).fetchall()
        theirs = conn.execute(
            "SELECT substr(account, 13), id, owner FROM raw_records "
            "WHERE entity = 'deal' AND account LIKE %s AND id LIKE 'e-%%'",
            (f"pb{atomic}a%",),
        ).fetchall()
    if sorted(ours) != sorted(theirs) or not ours:
        raise BenchmarkFailed(
            f"salesbot and the atomic raw router assigned differently ({len(ours)} vs {len(theirs)} deals)"
        )
    return len(ours)


def run(options: Options, workdir: Path, console: Console, results: Path) -> Report:
    if not options.pg or not options.pg.startswith(("postgresql://", "postgres://")):
        return Report(NAME, status="skipped", reason="no PostgreSQL URL: pass --pg postgresql://user@host/db")
    import psycopg

    from salesbot_core import Engine, StoreError

    (workdir / "empty-pg").mkdir(exist_ok=True)
    try:  # the store plugin may not exist yet: skip with its message, not a traceback
        Engine(workdir / "empty-pg", options.pg, autoload=False).close()
    except StoreError as exc:
        return Report(NAME, status="skipped", reason=f"the PostgreSQL store is not usable: {exc}")
    count = options.size(EVENTS)
    report = Report(NAME, details={"events": count, "repeat": options.repeat, "url": _safe(options.pg)})

    def fresh() -> tuple[str, Path]:
        token = uuid.uuid4().hex[:10]
        with psycopg.connect(options.pg) as conn:  # type: ignore[arg-type]
            raw_setup(conn, token)
        return token, write_rules(workdir / f"pg-{token}", rules(token))

    trips = {}
    for side in SIDES:
        token, folder = fresh()
        trips[side] = round_trips(side, folder, options.pg, token, options.size(COUNTED, 20))
    report.details["round_trips"] = trips
    runs: dict[tuple[str, int], list[float]] = {(side, n): [] for side in SIDES for n in WORKERS}
    for rep in range(options.repeat):
        # Interleaved: each repetition measures every side and worker count, so the
        # 2-worker figure and the 1-worker one it is compared with see the same machine.
        for workers in WORKERS:
            tokens = {}
            for side in SIDES:
                token, folder = fresh()
                tokens[side] = token
                console.log(
                    f"postgres_workers: {side}, {workers} worker(s), repetition {rep + 1}/{options.repeat}"
                )
                runs[(side, workers)].append(throughput(side, folder, options.pg, token, workers, count))
            if workers == 1:
                report.details["same_owners"] = same_owners(options.pg, tokens["salesbot"], tokens["atomic"])
    figures = {key: median(values) for key, values in runs.items()}
    for (side, workers), values in runs.items():
        report.details[f"runs_{side}_{workers}"] = values
    one, two = WORKERS
    report.details["per_worker"] = {
        f"{side}_{workers}": figures[(side, workers)] / workers for side, workers in figures
    }
    report.details["speedup"] = {side: figures[(side, two)] / figures[(side, one)] for side in SIDES}
    report.rows += [
        Row(
            "1 worker",
            "throughput",
            "events/s",
            figures[("salesbot", one)],
            figures[("atomic", one)],
            "atomic raw psycopg, 1 worker",
            kind="rate",
            goal=THROUGHPUT_GOAL,
            goal_text="≥ 0.5× atomic raw",
            gap="salesbot sends about 24 statements an event in 4 round trips where the atomic "
            "router sends one prepared statement: the driver's client CPU per statement and the "
            "engine's CPU are the gap (docs/benchmarks.md, where one worker's time goes). Next: "
            "an event's writes as multi-row INSERTs (wall notes, owners), then as one statement.",
        ),
        Row(
            "2 workers",
            "throughput",
            "events/s",
            figures[("salesbot", two)],
            figures[("salesbot", one)],
            "salesbot, 1 worker",
            kind="rate",
            goal=1 / SCALE_GOAL,
            goal_text=f"≥ {SCALE_GOAL}× 1 worker",
            gap="A salesbot worker keeps about a core busy with client CPU (the atomic router's "
            "workers a fraction of one) and the server shares the same 2 cores, so a second "
            "worker finds no idle core; rotation-row waits were 2-3% of samples. Next: less "
            "client CPU per event (as for 1 worker), and a run with the server on its own host.",
        ),
        # No goal: whether the machine let a router scale at all (the server and the
        # workers share its cores), read beside salesbot's row above.
        Row(
            "atomic raw psycopg, 2 workers",
            "throughput",
            "events/s",
            figures[("atomic", two)],
            figures[("atomic", one)],
            "atomic raw psycopg, 1 worker",
            kind="rate",
        ),
        Row(
            "1 worker",
            "round trips",
            "per event",
            trips["salesbot"],
            trips["atomic"],
            "atomic raw psycopg",
            goal=ROUND_TRIP_GOAL,
            goal_on="value",
            goal_text=f"≤ {ROUND_TRIP_GOAL}",
        ),
    ]
    return report


def _safe(url: str) -> str:
    """The URL without its password."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if at and ":" in credentials:
        return f"{scheme}{sep}{credentials.split(':')[0]}:***@{host}"
    return url
