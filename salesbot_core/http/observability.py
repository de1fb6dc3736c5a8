"""Metrics and logs of ``salesbot serve``: Prometheus metrics at ``/metrics`` and one
structured log line per event.

Kept apart from the routes: ``install(app, service)`` adds the ``/metrics`` route, the HTTP
middleware and the ``salesbot_after_assign`` observer; the event routes call
``Observer.handle`` instead of ``Engine.handle``, which times, counts and logs each event.

Labels are bounded: an account label is an account of the loaded rules (any other account
a client names is counted as ``(other)``), a bot label a bot of the rules, and an HTTP route
its template (``/v1/accounts/{account}/events``), never a record id, event id or path.
Log lines carry ids, owners, statuses and durations: never tokens, never record payloads.

With several workers (``salesbot serve --workers N``), ``PROMETHEUS_MULTIPROC_DIR`` names a
folder the workers write their samples to, and a scrape of any worker sums them all.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter as Tally
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from .. import hookimpl
from ..errors import EventError, IdempotencyConflict, StoreError
from ..models import Outcome

if TYPE_CHECKING:
    from ..engine import Engine
    from ..rulesets import Rules
    from .common import Service

#: The logger of the per-event lines.
EVENT_LOGGER = "salesbot.events"
#: The environment variable that turns on multi-process metrics (set by ``salesbot serve``).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The account label of an account the loaded rules do not have.
OTHER = "(other)"
#: The route label of a request no route matched.
UNMATCHED = "(unmatched)"
#: A scrape counts at most this many pending notifications (over all accounts); a gauge at
#: the cap means "at least".
OUTBOX_COUNT_CAP = 100_000
#: The longest event id written to a log line.
MAX_LOGGED_ID = 200

# Decision statuses, most telling first: an event's status is its first status present.
_PRECEDENCE = ("assigned", "fallback", "unassigned", "no_candidate", "not_applied")
#: Latency buckets in seconds: from 0.5 ms to 10 s.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

logger = logging.getLogger(EVENT_LOGGER)


def multiprocess() -> bool:
    """Whether metrics are shared between worker processes through files."""
    return bool(os.environ.get(MULTIPROC_ENV))


def event_status(outcome: Outcome) -> str:
    """One word for an outcome: ``duplicate``, a decision status, or ``no_bot``."""
    if outcome.duplicate:
        return "duplicate"
    present = {d.status for d in outcome.decisions}
    return next((status for status in _PRECEDENCE if status in present), "no_bot")


class Observer:
    """The metrics of one worker and the per-event log line."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter(
            "salesbot_events",
            "Events handled, by account and status (a decision status, duplicate, no_bot, "
            "invalid, conflict, unavailable or error).",
            ["account", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "salesbot_event_duration_seconds",
            "Time the engine took to decide and store one event (Engine.handle).",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.assignments = Counter(
            "salesbot_assignments",
            "Owners given by a bot (picked or fallback), from events and list operations.",
            ["account", "bot"],
            registry=self.registry,
        )
        self.group_size = Histogram(
            "salesbot_event_group_size",
            "Events decided together in one transaction (group commit).",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.requests = Counter(
            "salesbot_http_requests",
            "HTTP requests by method, route template and status class (2xx, 4xx, ...).",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "salesbot_rate_limited",
            "Requests refused with 429 because their account was over its rate limit, by account.",
            ["account"],
            registry=self.registry,
        )
        self._accounts: tuple[int, frozenset[str]] = (0, frozenset())

    # Labels -------------------------------------------------------------------------

    def known_accounts(self, rules: Rules) -> frozenset[str]:
        """The accounts of ``rules`` (cached until the rules are reloaded)."""
        key, accounts = self._accounts
        if key != id(rules):
            accounts = frozenset(acc for acc, _ in rules.bots) | frozenset(acc for acc, _ in rules.users)
            self._accounts = (id(rules), accounts)
        return accounts

    def account_label(self, engine: Engine, account: object) -> str:
        return account if isinstance(account, str) and account in self.known_accounts(engine.rules) else OTHER

    # Events -------------------------------------------------------------------------

    def handle(self, engine: Engine, event: Any) -> Outcome:
        """``engine.handle(event)``, timed, counted and logged (one line, whatever happens)."""
        (result,) = self.handle_group(engine, [event])
        if isinstance(result, EventError):
            raise result
        return result

    def handle_group(self, engine: Engine, events: list[Any]) -> list[Outcome | EventError]:
        """``engine.handle_group(events)`` (group commit), each event counted and logged as
        ``handle`` does, with the group's time (what each of them waited for its commit)."""
        started = time.perf_counter()
        try:
            results = engine.handle_group(events)
        except BaseException as exc:
            failed = "unavailable" if isinstance(exc, StoreError) else "error"
            self._observe_group(engine, events, [failed] * len(events), [None] * len(events), started)
            raise
        statuses = [
            event_status(r)
            if isinstance(r, Outcome)
            else ("conflict" if isinstance(r, IdempotencyConflict) else "invalid")
            for r in results
        ]
        outcomes = [r if isinstance(r, Outcome) else None for r in results]
        self._observe_group(engine, events, statuses, outcomes, started)
        return results

    def _observe_group(
        self,
        engine: Engine,
        events: list[Any],
        statuses: list[str],
        outcomes: list[Outcome | None],
        started: float,
    ) -> None:
        seconds = time.perf_counter() - started
        self.group_size.observe(len(events))
        for event, status, outcome in zip(events, statuses, outcomes, strict=True):
            account = event.get("account") if isinstance(event, Mapping) else None
            self.events.labels(self.account_label(engine, account), status).inc()
            if outcome is not None and not outcome.duplicate:
                self.duration.observe(seconds)
            self.log_event(event, account, status, seconds, outcome)

    def log_event(
        self, event: Any, account: object, status: str, seconds: float, outcome: Outcome | None
    ) -> None:
        event_id = event.get("id") if isinstance(event, Mapping) else None
        fields: dict[str, Any] = {
            "account": account if isinstance(account, str) else None,
            "event_id": event_id[:MAX_LOGGED_ID] if isinstance(event_id, str) else None,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        }
        if outcome is not None:
            fields |= {
                "entity": outcome.entity,
                "bots": [d.bot for d in outcome.decisions],
                "owners_after": list(outcome.owners_after),
                "duplicate": outcome.duplicate,
            }
        level = logging.WARNING if status in ("unavailable", "error") else logging.INFO
        logger.log(level, "event", extra={"salesbot": fields})

    @hookimpl
    def salesbot_after_assign(self, outcome: Outcome) -> None:
        """Count the owners the bots gave (committed, not duplicates: the engine's call)."""
        for decision in outcome.decisions:
            if decision.owner is not None:
                self.assignments.labels(outcome.account, decision.bot).inc()

    def attach(self, engine: Engine | None) -> None:
        """Observe ``engine``'s committed outcomes (``salesbot_after_assign``)."""
        if engine is not None and not engine.registry.pm.is_registered(self):
            engine.registry.pm.register(self, name="salesbot-metrics")

    # Exposition ---------------------------------------------------------------------

    def exposition(self, pending: Mapping[str, int]) -> bytes:
        """The text exposition: this worker's metrics (or every worker's, in multi-process
        mode) and the outbox backlog counted at this scrape."""
        if multiprocess():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            text = generate_latest(registry)
        else:
            text = generate_latest(self.registry)
        gauge = GaugeMetricFamily(
            "salesbot_outbox_pending",
            "Notifications waiting in the outbox, by account, counted at scrape "
            f"(at most {OUTBOX_COUNT_CAP:,}).",
            labels=["account"],
        )
        for account, count in sorted(pending.items()):
            gauge.add_metric([account], count)
        backlog = CollectorRegistry()
        backlog.register(_Fixed(gauge))
        return text + generate_latest(backlog)

    def pending(self, engine: Engine) -> dict[str, int]:
        """Pending notifications per known account, counting at most ``OUTBOX_COUNT_CAP``."""
        from ..engine import MAX_OUTBOX_LIMIT

        known = self.known_accounts(engine.rules)
        counts: Tally[str] = Tally(dict.fromkeys(known, 0))
        after, seen = None, 0
        while seen < OUTBOX_COUNT_CAP:
            page = engine.store.pending_notifications(
                None, min(MAX_OUTBOX_LIMIT, OUTBOX_COUNT_CAP - seen), after
            )
            for note in page:
                counts[note.account if note.account in known else OTHER] += 1
            seen += len(page)
            if len(page) < MAX_OUTBOX_LIMIT:
                break
            after = page[-1].id
        return dict(counts)


class _Fixed:
    """A collector that yields families computed beforehand."""

    def __init__(self, *families: GaugeMetricFamily):
        self.families = families

    def collect(self) -> Any:
        return iter(self.families)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class ResponseStatus:
    """An ASGI ``send`` that passes every message on and notes the status the response
    started with (``value``; ``default`` while none has started, or if the app failed
    before): what the middlewares that count or judge a request by its answer read."""

    def __init__(self, send: Callable[[Message], Awaitable[None]], default: int):
        self._send, self.value = send, default

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.value = int(message["status"])
        await self._send(message)


class HttpMetrics:
    """ASGI middleware counting HTTP requests by method, route template and status class."""

    def __init__(self, app: ASGIApp, observer: Observer):
        self.app, self.observer = app, observer

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = ResponseStatus(send, 500)
        try:
            await self.app(scope, receive, status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            self.observer.requests.labels(scope.get("method", ""), template, f"{status.value // 100}xx").inc()


def install(app: FastAPI, service: Service) -> Observer:
    """Add metrics and the event log to ``app``: the ``/metrics`` route, the HTTP middleware,
    and the assignment observer on the engine once the app starts."""
    observer = Observer()
    app.state.observer = observer
    app.add_middleware(HttpMetrics, observer=observer)

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(started: Any) -> AsyncIterator[Any]:
        async with inner(started) as state:
            observer.attach(service.engine)
            yield state

    app.router.lifespan_context = lifespan

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=Response,
        response_model=None,
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> Response:
        """Prometheus metrics (text exposition). No token: it holds no record data, only
        counts by account, bot, status and route; keep it off the public network."""
        pending: dict[str, int] = {}
        if service.engine is not None:
            pending = await service.call(observer.pending)
        return Response(observer.exposition(pending), media_type=CONTENT_TYPE_LATEST)

    return observer


# Logs -----------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data |= getattr(record, "salesbot", None) or {}
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "salesbot", None) or {}
        return " ".join(
            [line, *(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in fields.items())]
        )


def log_config(log_format: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn and the event log, all on stderr."""
    formatter = {"()": f"{__name__}.{'JsonFormatter' if log_format == 'json' else 'TextFormatter'}"}
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"stderr": handler},
        "loggers": {
            name: {"handlers": ["stderr"], "level": "INFO", "propagate": False}
            for name in ("uvicorn", "uvicorn.access", "salesbot")
        },
    }
