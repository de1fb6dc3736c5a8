"""``salesbot serve``: the engine behind an HTTP API any CRM can call; the app factory.

A thin edge: every decision is the ``Engine``'s. The service authenticates a request
(a bearer token of the account, see ``salesbot_core.tokens``), reads its body by the same
rules as ``salesbot run`` reads a line (``limits.parse_json``), calls the engine and
answers JSON; every error is an RFC 9457 problem (``application/problem+json``).

Each worker process holds one engine, and its calls into the engine are serialised (one
SQLite connection, one decider); run more workers (``--workers``) for more throughput.
Transient store failures are retried inside the engine; if they persist the answer is
503 with ``Retry-After``.

Why separate: this module only puts the app together (its lifespan, the error handlers,
the workers beside it); each resource's routes are a module of their own (``events``,
``bots``, ``users``, ``records``, ``webhooks``, ``replay``, ``status``, an account's
rules as data in ``rules``, the operator's ``accounts``; the reference pages are
``docs``'s), declared through ``auth.Api`` on the pieces of ``common``, and none imports
this module. Metrics and the
event log are ``observability``'s: the event routes call ``Observer.handle``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from .. import admin
from ..admin import sessions
from ..background import Background, every
from ..engine import DEFAULT_RULESETS, DEFAULT_STORE, Engine, open_store
from ..errors import EventError, SalesbotError, StoreError, TransientStoreError
from ..registry import make_plugin_manager
from ..reloading import RELOAD_INTERVAL, start_watcher
from . import accounts, bots, docs, events, records, replay, rules, status, users, webhooks
from .auth import Api
from .common import Problem, Service, _retry_after, event_problem
from .delivery import start_worker
from .draining import DRAIN_TIMEOUT, Drain, RefuseWhileDraining
from .observability import install as install_observability
from .ratelimit import Limits, RateLimits
from .signing import ENV_PREFIX

_log = logging.getLogger("salesbot.serve")

#: ``salesbot serve`` hands its options to each worker's ``app_from_env`` through these.
ENV_RULESETS = "SALESBOT_SERVE_RULESETS"
ENV_DB = "SALESBOT_SERVE_DB"
#: ``folder`` or ``store``: where the rules are (``--rules-from``).
ENV_RULES_FROM = "SALESBOT_SERVE_RULES_FROM"
#: Set to 1 to run no webhook delivery worker in ``serve`` (``salesbot deliver`` does it).
ENV_NO_DELIVERY = "SALESBOT_SERVE_NO_DELIVERY"
#: Seconds between checks of the rulesets folder (0: never reloaded).
ENV_RELOAD = "SALESBOT_SERVE_RELOAD_INTERVAL"
#: The admin page's session key (hex), the same in every worker: ``serve`` draws one at
#: start unless it is set (set it to keep sessions across restarts).
ENV_SESSION_KEY = "SALESBOT_SESSION_KEY"
#: Seconds between SLA ticks (``Engine.tick``) in each worker; 0 or unset runs none.
ENV_TICK = "SALESBOT_SERVE_TICK"
#: Seconds a worker may take from SIGTERM to exit (``--drain-timeout``, see ``draining``).
ENV_DRAIN_TIMEOUT = "SALESBOT_SERVE_DRAIN_TIMEOUT"


def allowed_methods(request: Request) -> list[str]:
    """The methods of every route of the request's path, sorted."""
    methods: set[str] = set()
    for route in request.app.routes:
        # A route of the path matches PARTIAL (another method) or FULL; others NONE.
        if route.matches(request.scope)[0] != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def create_app(
    engine_factory: Callable[[], Engine] | None = None,
    *,
    rulesets: str | Path | None = DEFAULT_RULESETS,
    db: str | Path = DEFAULT_STORE,
    deliver: str | None = None,
    environ: Mapping[str, str] | None = None,
    reload_interval: float | None = None,
    session_key: bytes | None = None,
    tick: float = 0,
    drain_timeout: float = DRAIN_TIMEOUT,
) -> FastAPI:
    """The ASGI app. ``engine_factory`` makes the worker's engine at startup; without it,
    an engine on ``rulesets`` (None: the rules kept in the store) and ``db``. With
    ``deliver`` (a store URL), a webhook delivery worker runs beside it on a store of its
    own. With ``reload_interval``, the rulesets folder (or the store's rules generation)
    is checked every so many seconds and the rules reloaded when they changed
    (``salesbot_core.reloading``). Inbound signing secrets are read from the store and
    from ``environ`` (``os.environ`` by default, read now:
    ``SALESBOT_SIGNING_SECRET_<ACCOUNT>``, see ``signing.environment_secrets``).
    ``session_key`` signs the admin page's sessions (a fresh one when None: sessions then
    last as long as the process). On SIGTERM the worker drains (``draining``): within
    ``drain_timeout`` seconds it finishes what it is doing and stops; ``app.state.drain``
    starts the same drain without the signal."""
    service = Service(engine_factory or (lambda: Engine(rulesets, db)))
    given = os.environ if environ is None else environ
    signing_env = {name: value for name, value in given.items() if name.startswith(ENV_PREFIX)}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        delivering = _start_delivery(deliver)
        running: list[Background] = [delivering] if delivering is not None else []
        if reload_interval and service.engine is not None:
            running.append(
                start_watcher(lambda: service.run(lambda engine: engine.reload()), reload_interval)
            )
        if tick > 0 and service.engine is not None:
            # The SLA scheduler: Engine.tick taking turns with requests on the engine.
            # Workers ticking at once take different items; a drain ends a tick's batches.
            def tick_once() -> object:
                return service.run(lambda engine: engine.tick(stop=drain.begun.is_set))

            running.append(every("salesbot-tick", tick, tick_once, _log))
        for work in running:
            drain.on_begin(work.ask_to_stop)
        try:
            with drain.on_sigterm():
                yield
        finally:
            for work in reversed(running):  # what a drain did not stop yet, or all
                work(drain.left())
            service.stop()

    app = FastAPI(
        title="salesbot",
        summary="Picks the owner of CRM records set to a Sales Bot: fairly, exactly once, and says why.",
        version="1",
        lifespan=lifespan,
        # An operation's id is its function's name (``post_event``), not FastAPI's name,
        # path and method: what a generated client names its calls and their types.
        generate_unique_id_function=lambda route: route.name,
        # Served by ``docs`` from an installed package, not FastAPI's CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    drain = app.state.drain = Drain(drain_timeout)
    # Before the metrics' middleware, so inside it: refused requests are counted too.
    app.add_middleware(RefuseWhileDraining, drain=drain)
    observer = install_observability(app, service)
    # Outermost: a request over its account's limit is refused before anything else runs.
    app.add_middleware(RateLimits, service=service, observer=observer, limits=Limits.from_env(given))
    api = Api(app, service, signing_env)
    prefix = "/v1/accounts/{account}"
    events.install(api, service, prefix, observer)
    bots.install(api, service, prefix)
    users.install(api, service, prefix)
    records.install(api, service, prefix)
    status.install(app, service)
    webhooks.install(api, service, prefix)
    webhooks.document_deliveries(app)
    slot = replay.ReplaySlot()  # one replay at a time in this worker, whichever route
    replay.install(api, service, prefix, slot)
    rules.install(api, service, prefix, slot)
    accounts.install(api, service)
    docs.install(app)
    _install_error_handlers(app)
    admin.install(app, service.call, session_key or sessions.new_key())
    return app


def _start_delivery(db: str | None) -> Background | None:
    """Start a delivery worker on a store of its own (``db``); returns what stops it."""
    if db is None:
        return None
    return start_worker(lambda: open_store(make_plugin_manager(), db))


def _install_error_handlers(app: FastAPI) -> None:
    async def problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return exc.response()

    async def event_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, EventError)
        return event_problem(exc).response()

    async def store_error(request: Request, exc: Exception) -> JSONResponse:
        # Transient failures were retried inside the engine; the client may try again later.
        headers = _retry_after() if isinstance(exc, TransientStoreError) else {}
        return Problem(
            503, "the store is unavailable; try again later", "store-unavailable", None, headers
        ).response()

    async def salesbot_error(request: Request, exc: Exception) -> JSONResponse:
        return Problem(422, str(exc), "rejected").response()

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette's Allow names the methods of the first route of the path only
            # (POST /webhooks, not its GET): every route of the path counts.
            headers["Allow"] = ", ".join(allowed_methods(request))
        return Problem(exc.status_code, str(exc.detail), None, None, headers).response()

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return Problem(422, f"invalid request: {detail}", "invalid-request", errors).response()

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return Problem(500, "an internal error; it was logged", "internal").response()

    app.add_exception_handler(Problem, problem)
    app.add_exception_handler(EventError, event_error)
    app.add_exception_handler(StoreError, store_error)
    app.add_exception_handler(SalesbotError, salesbot_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, internal_error)


def app_from_env() -> FastAPI:
    """The app of one ``salesbot serve`` worker, on the rulesets and store it was given."""
    db = os.environ.get(ENV_DB, DEFAULT_STORE)
    deliver = None if os.environ.get(ENV_NO_DELIVERY) == "1" else db
    key = os.environ.get(ENV_SESSION_KEY)
    in_store = os.environ.get(ENV_RULES_FROM) == "store"
    return create_app(
        rulesets=None if in_store else os.environ.get(ENV_RULESETS, DEFAULT_RULESETS),
        db=db,
        deliver=deliver,
        reload_interval=float(os.environ.get(ENV_RELOAD) or RELOAD_INTERVAL),
        session_key=bytes.fromhex(key) if key else None,
        tick=float(os.environ.get(ENV_TICK) or 0),
        drain_timeout=float(os.environ.get(ENV_DRAIN_TIMEOUT) or DRAIN_TIMEOUT),
    )
