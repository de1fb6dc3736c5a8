"""``salesbot serve``: the engine behind an HTTP API any CRM can call.

A thin edge: every decision is the ``Engine``'s. The service authenticates a request
(a bearer token of the account, see ``salesbot_core.tokens``), reads its body by the same
rules as ``salesbot run`` reads a line (``limits.parse_json``), calls the engine and
answers JSON; every error is an RFC 9457 problem (``application/problem+json``).

Each worker process holds one engine, and its calls into the engine are serialised (one
SQLite connection, one decider); run more workers (``--workers``) for more throughput.
Transient store failures are retried inside the engine; if they persist the answer is
503 with ``Retry-After``.

Seams for what comes later: signed webhooks (inbound and outbound delivery of the
outbox) are more routes on ``create_app``'s app. Metrics and the event log are
``salesbot_core.http.observability``'s: the event routes call ``Observer.handle``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import admin
from ..admin import sessions
from ..background import every
from ..engine import DEFAULT_RULESETS, DEFAULT_STORE, MAX_OUTBOX_LIMIT, Engine, open_store
from ..errors import EventError, IdempotencyConflict, SalesbotError, StoreError, TransientStoreError
from ..limits import MAX_EVENT_ID, MAX_ROW_ID, NotJSON, parse_json
from ..models import ENTITIES, EntityType, Identifier, Outcome, Token
from ..registry import make_plugin_manager
from ..reloading import RELOAD_INTERVAL, start_watcher
from ..simulate import DEFAULT_COUNT, simulate_on
from ..tokens import ADMIN_ACCOUNT, authenticate, covers
from .delivery import (
    DELIVERY_HEADER,
    KIND_HEADER,
    KINDS,
    AssignmentDelivery,
    NotificationDelivery,
    add_webhook,
    public,
    start_worker,
)
from .observability import install as install_observability
from .signing import ENV_PREFIX, SIGNATURE_HEADER, SignatureError, environment_secrets, verify

T = TypeVar("T")

_log = logging.getLogger("salesbot.serve")

#: The largest request body, in bytes (a batch included): a bigger one is a 413.
MAX_BODY_BYTES = 2 * 1024 * 1024
#: The most events in one ``events:batch`` request.
MAX_BATCH_EVENTS = 500
#: The most record ids in one list operation (``assignments``).
MAX_ASSIGNMENT_RECORDS = 10_000
#: The most records in one simulation.
MAX_SIMULATE_RECORDS = 10_000
#: The most records one offboarding request moves; the answer says how many remain, and
#: the same request again goes on with them.
MAX_OFFBOARD_RECORDS = 1_000
#: Seconds a client is asked to wait after a 503.
RETRY_AFTER_SECONDS = 5
PROBLEM_JSON = "application/problem+json"
#: The OpenAPI extension naming the scope a route needs.
SCOPE_KEY = "x-salesbot-scope"
#: ``salesbot serve`` hands its options to each worker's ``app_from_env`` through these.
ENV_RULESETS = "SALESBOT_SERVE_RULESETS"
ENV_DB = "SALESBOT_SERVE_DB"
#: Set to 1 to run no webhook delivery worker in ``serve`` (``salesbot deliver`` does it).
ENV_NO_DELIVERY = "SALESBOT_SERVE_NO_DELIVERY"
#: Seconds between checks of the rulesets folder (0: never reloaded).
ENV_RELOAD = "SALESBOT_SERVE_RELOAD_INTERVAL"
#: The admin page's session key (hex), the same in every worker: ``serve`` draws one at
#: start unless it is set (set it to keep sessions across restarts).
ENV_SESSION_KEY = "SALESBOT_SESSION_KEY"
#: Seconds between SLA ticks (``Engine.tick``) in each worker; 0 or unset runs none.
ENV_TICK = "SALESBOT_SERVE_TICK"


class Problem(Exception):
    """An error answered as an RFC 9457 problem."""

    def __init__(
        self,
        status: int,
        detail: str,
        kind: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.status, self.detail, self.kind, self.errors = status, detail, kind, errors
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:salesbot:problem:{self.kind}" if self.kind else "about:blank",
            "title": HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = self.errors
        return body

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), self.status, headers=self.headers, media_type=PROBLEM_JSON)


_FIELD = re.compile(r"field '((?:[^'\\]|\\.)*)': ((?:(?!; event|; list operation).)*)")


def event_problem(exc: EventError) -> Problem:
    """An ``EventError`` as a problem: 409 for a conflict, else 422, naming the fields."""
    message = str(exc)
    errors = [{"field": field, "message": text} for field, text in _FIELD.findall(message)]
    if isinstance(exc, IdempotencyConflict):
        return Problem(409, message, "idempotency-conflict", errors or None)
    return Problem(422, message, "invalid-event", errors or None)


def _not_found(what: str) -> Problem:
    return Problem(404, what, "not-found")


class Service:
    """One worker's engine, made at startup, and the lock its calls take turns on."""

    def __init__(self, engine_factory: Callable[[], Engine]):
        self._factory = engine_factory
        self.engine: Engine | None = None
        self.error: str | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        try:
            self.engine = self._factory()
        except SalesbotError as exc:  # readyz says why; every call is a 503
            self.error = str(exc)

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def run(self, fn: Callable[[Engine], T]) -> T:
        """Run ``fn`` on the engine in this thread, once the engine's previous call ended."""
        engine = self.engine
        if engine is None:
            raise Problem(503, f"the engine is not running: {self.error}", "not-ready", None, _retry_after())
        with self._lock:
            return fn(engine)

    async def call(self, fn: Callable[[Engine], T]) -> T:
        """Run ``fn`` on the engine in a worker thread, one call at a time."""
        return await run_in_threadpool(self.run, fn)


class Caller(NamedTuple):
    """Who calls a route: the bearer token sent, for which account, needing which scope,
    and whether the route is signed (checked when the account has signing secrets)."""

    secret: str
    account: str
    scope: str
    signed: bool


_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _bearer(request: Request) -> str:
    """The bearer token of a request: a 401 without one."""
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Problem(401, "send a token: Authorization: Bearer <token>", "unauthorized", None, _CHALLENGE)
    return secret.strip()


def _live_token(engine: Engine, secret: str) -> Token:
    """The live token whose secret is ``secret``: a 401 if it is unknown or revoked."""
    token = authenticate(engine.store, secret)
    if token is None:
        raise Problem(401, "the token is unknown or revoked", "unauthorized", None, _CHALLENGE)
    return token


def _retry_after() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssignmentRequest(_Body):
    """A list operation: set ``bot`` as owner of stored records, each its own pick."""

    entity: EntityType
    record_ids: list[Identifier] = Field(min_length=1, max_length=MAX_ASSIGNMENT_RECORDS)
    bot: str
    #: Repeating an operation with the same id changes nothing.
    operation: str = Field(min_length=1)


class ActiveRequest(_Body):
    active: StrictBool


class OffboardRequest(_Body):
    """An offboarding: its id (a rerun with it moves nothing twice and answers the same)
    and the bot for records whose own bot is gone or switched off."""

    operation: str = Field(min_length=1, max_length=MAX_EVENT_ID)
    to_bot: str | None = Field(default=None, min_length=1, max_length=200)


class AckRequest(_Body):
    ids: list[StrictInt] = Field(max_length=MAX_OUTBOX_LIMIT)


class SimulateRequest(_Body):
    """Synthetic records (``count``) or these ``records``; 100 synthetic ones by default."""

    count: StrictInt | None = Field(default=None, ge=1, le=MAX_SIMULATE_RECORDS)
    records: list[dict[str, Any]] | None = Field(default=None, max_length=MAX_SIMULATE_RECORDS)


def _json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def read_body(request: Request) -> bytes:
    """The raw request body: 413 if over ``MAX_BODY_BYTES``. Read once, then kept."""
    cached = getattr(request, "_body", None)
    if isinstance(cached, bytes):
        return cached
    too_large = Problem(413, f"the body is over {MAX_BODY_BYTES} bytes (2 MiB), the most a request may take")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # Starlette's own cache: later reads get the same bytes
    return body


def parse_body(content_type: str, body: bytes) -> Any:
    """A request body as JSON: 415 if ``content_type`` is not JSON, 422 if ``body`` is not
    one JSON value by ``parse_json``'s rules."""
    if not _json_type(content_type):
        raise Problem(415, "send the body as JSON (Content-Type: application/json)", "unsupported-media-type")
    try:
        return parse_json(body)
    except NotJSON as exc:
        raise Problem(422, str(exc), "malformed-json") from None


async def read_json(request: Request) -> Any:
    """The request's JSON body: 415 if it is not JSON, 413 if over ``MAX_BODY_BYTES``,
    422 if it is not one JSON value by ``parse_json``'s rules."""
    content_type = request.headers.get("content-type", "")
    # Not JSON: the 415, without reading the body.
    return parse_body(content_type, await read_body(request) if _json_type(content_type) else b"")


def _model(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(map(str, e["loc"])) or "(body)", "message": e["msg"]} for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise Problem(422, f"invalid request body: {detail}", "invalid-body", errors) from None


def _in_account(data: Any, account: str) -> Any:
    """An event placed in the path's account: its ``account`` must be absent or the same."""
    if not isinstance(data, Mapping):
        return data  # the engine says what is wrong with it
    if "account" in data and data["account"] != account:
        detail = "the event's account differs from the account of the URL"
        raise Problem(422, detail, "account-mismatch", [{"field": "account", "message": detail}])
    return {**data, "account": account}


def _entity(entity: str) -> EntityType:
    if entity not in ENTITIES:
        raise _not_found(f"no entity {entity[:50]!r}: entities are {', '.join(ENTITIES)}")
    return entity


def _json(data: Any) -> bytes:
    """``data`` as compact UTF-8 JSON, as ``JSONResponse`` writes it."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _outcome(outcome: Outcome) -> dict[str, Any]:
    return outcome.model_dump(mode="json")


#: The JSON schema of a problem (RFC 9457), as every error is answered.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "The fields that are wrong, and why.",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


#: The problems each account route may answer, for the OpenAPI document.
ROUTE_PROBLEMS = {
    401: "No token, or an unknown or revoked one.",
    403: "The token lacks the scope of the route.",
    404: "No such account (for this token), entity, record or bot.",
    409: "The event id was processed before with a different payload.",
    413: f"The body is over {MAX_BODY_BYTES} bytes.",
    415: "The body is not JSON.",
    422: "The body or a parameter is invalid: the problem names the fields.",
    503: "The store is unavailable or the engine is not running: retry after Retry-After.",
}


def problem_responses(statuses: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` declaring each status in ``statuses`` as a problem."""
    return {
        status: {"description": text, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}
        for status, text in statuses.items()
    }


def _body_schema(model: type[BaseModel] | None) -> dict[str, Any]:
    schema = model.model_json_schema() if model else {"type": "object"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def create_app(
    engine_factory: Callable[[], Engine] | None = None,
    *,
    rulesets: str | Path = DEFAULT_RULESETS,
    db: str | Path = DEFAULT_STORE,
    deliver: str | None = None,
    environ: Mapping[str, str] | None = None,
    reload_interval: float | None = None,
    session_key: bytes | None = None,
    tick: float = 0,
) -> FastAPI:
    """The ASGI app. ``engine_factory`` makes the worker's engine at startup; without it,
    an engine on ``rulesets`` and ``db``. With ``deliver`` (a store URL), a webhook
    delivery worker runs beside it on a store of its own. With ``reload_interval``, the
    rulesets folder is checked every so many seconds and reloaded when it changed
    (``salesbot_core.reloading``). Inbound signing secrets are read from the store and
    from ``environ`` (``os.environ`` by default, read now:
    ``SALESBOT_SIGNING_SECRET_<ACCOUNT>``, see ``signing.environment_secrets``).
    ``session_key`` signs the admin page's sessions (a fresh one when None: sessions then
    last as long as the process)."""
    service = Service(engine_factory or (lambda: Engine(rulesets, db)))
    given = os.environ if environ is None else environ
    signing_env = {name: value for name, value in given.items() if name.startswith(ENV_PREFIX)}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        stop_delivering = _start_delivery(deliver)
        stop_watching = (
            start_watcher(lambda: service.run(lambda engine: engine.reload()), reload_interval)
            if reload_interval and service.engine is not None
            else lambda: None
        )
        # The SLA scheduler: Engine.tick taking turns with requests on the engine. Workers
        # ticking at once take different items.
        stop_ticking = (
            every("salesbot-tick", tick, lambda: service.run(lambda engine: engine.tick()), _log)
            if tick > 0 and service.engine is not None
            else lambda: None
        )
        try:
            yield
        finally:
            stop_ticking()
            stop_watching()
            stop_delivering()
            service.stop()

    app = FastAPI(
        title="salesbot",
        summary="Picks the owner of CRM records set to a Sales Bot: fairly, exactly once, and says why.",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = service
    observer = install_observability(app, service)

    def admit(engine: Engine, caller: Caller) -> list[str]:
        """In the engine's thread: the caller's token must be live (401), act for the
        account (else 404: nothing says whether it exists) and hold the scope (403).
        Returns the account's signing secrets (store and environment) when the route is
        signed, else none."""
        token = _live_token(engine, caller.secret)
        if not covers(token, caller.account):
            raise _not_found("not found")
        if caller.scope not in token.scopes:
            raise Problem(403, f"the token lacks the {caller.scope!r} scope", "forbidden")
        if not caller.signed:
            return []
        stored = engine.store.signing_secrets(caller.account)
        return [*stored, *environment_secrets(signing_env, caller.account)]

    def api(
        method: str, path: str, scope: str, body: type[BaseModel] | bool | None = False, signed: bool = False
    ) -> Any:
        async def check(request: Request, account: str) -> None:
            caller = Caller(_bearer(request), account, scope, signed)
            if signed:
                # The route admits the caller in the same engine call as its work
                # (``admitted``): one hop into the engine's thread per request, not two.
                request.state.caller = caller
            else:
                await service.call(lambda engine: admit(engine, caller))

        extra: dict[str, Any] = {SCOPE_KEY: scope}
        if body is not False:
            extra |= _body_schema(body if isinstance(body, type) else None)
        return app.api_route(
            path,
            methods=[method],
            dependencies=[Depends(check)],
            openapi_extra=extra,
            tags=[scope],
            responses=problem_responses(ROUTE_PROBLEMS),
        )

    async def admitted(request: Request, fn: Callable[[Engine, Any], T]) -> T:
        """For a signed route: read the body, then in ONE engine call admit the caller
        (401, 404, 403), check the signature when the account signs (401), parse the
        body (415, 422) and run ``fn(engine, data)``. A body over the limit is a 413
        before anything else: it is not read whoever sends it."""
        caller: Caller = request.state.caller
        raw = await read_body(request)
        content_type = request.headers.get("content-type", "")
        header = request.headers.get(SIGNATURE_HEADER)

        def run(engine: Engine) -> T:
            keys = admit(engine, caller)
            if keys:
                try:
                    verify(header, raw, keys)
                except SignatureError as exc:
                    raise Problem(401, str(exc), "bad-signature") from None
            return fn(engine, parse_body(content_type, raw))

        return await service.call(run)

    prefix = "/v1/accounts/{account}"

    @api("POST", f"{prefix}/events", "events", body=None, signed=True)
    async def post_event(account: str, request: Request) -> Response:
        """Route one event (as ``salesbot run`` reads one): its outcome. A redelivery is
        answered with the first outcome (``duplicate: true``); the same id with another
        payload is a 409."""

        def run(engine: Engine, data: Any) -> bytes:
            # Serialised by pydantic in the engine's thread, not on the event loop.
            return observer.handle(engine, _in_account(data, account)).model_dump_json().encode()

        return Response(await admitted(request, run), media_type="application/json")

    @api("POST", f"{prefix}/events:batch", "events", body=None, signed=True)
    async def post_events(account: str, request: Request) -> Response:
        """Up to 500 events, ``{"events": [...]}``, each handled on its own, in order:
        ``{"results": [{"outcome": ...} or {"error": problem}]}``."""

        def run(engine: Engine, data: Any) -> bytes:
            events = data.get("events") if isinstance(data, Mapping) else None
            if not isinstance(events, list) or len(data) != 1:
                raise Problem(
                    422,
                    'send {"events": [event, ...]}',
                    "invalid-body",
                    [{"field": "events", "message": "required list"}],
                )
            if len(events) > MAX_BATCH_EVENTS:
                detail = f"{len(events)} events; at most {MAX_BATCH_EVENTS} per batch"
                raise Problem(422, detail, "invalid-body", [{"field": "events", "message": detail}])
            # Each outcome serialised by pydantic, in the engine's thread; the answer is
            # put together from the pieces.
            results: list[bytes] = []
            for raw in events:
                try:
                    outcome = observer.handle(engine, _in_account(raw, account))
                    results.append(b'{"outcome":' + outcome.model_dump_json().encode() + b"}")
                except EventError as exc:
                    results.append(_json({"error": event_problem(exc).body()}))
                except Problem as exc:
                    results.append(_json({"error": exc.body()}))
            return b'{"results":[' + b",".join(results) + b"]}"

        return Response(await admitted(request, run), media_type="application/json")

    @api("POST", f"{prefix}/assignments", "events", body=AssignmentRequest, signed=True)
    async def post_assignments(account: str, request: Request) -> JSONResponse:
        """A list operation: ``bot`` becomes the owner of each stored record, each its own
        pick; the same ``operation`` id again changes nothing."""

        def run(engine: Engine, data: Any) -> list[Outcome]:
            wanted: AssignmentRequest = _model(AssignmentRequest, data)
            if engine.rules.bot(account, wanted.bot) is None:
                detail = f"no bot {wanted.bot[:200]!r} in account {account!r}"
                raise Problem(422, detail, "invalid-body", [{"field": "bot", "message": detail}])
            return engine.assign_list(account, wanted.entity, wanted.record_ids, wanted.bot, wanted.operation)

        return JSONResponse({"outcomes": [_outcome(o) for o in await admitted(request, run)]})

    @api("GET", f"{prefix}/owner-options/{{entity}}", "read")
    async def get_owner_options(account: str, entity: str) -> JSONResponse:
        """The bots a CRM offers in the Owner field of ``entity`` records."""
        kind = _entity(entity)
        offered = await service.call(lambda engine: engine.owner_options(account, kind))
        options = [{"owner": bot.owner_ref, "id": bot.id, "name": bot.display_name} for bot in offered]
        return JSONResponse({"account": account, "entity": kind, "options": options})

    @api("GET", f"{prefix}/bots", "read")
    async def get_bots(account: str) -> JSONResponse:
        """The account's bots, each with whether it is active now (after switches)."""

        def run(engine: Engine) -> dict[str, Any]:
            bots = [{**bot.summary(), "active": active} for bot, active in engine.bots(account)]
            return {
                "account": account,
                "enabled": engine.rules.account_settings(account).enabled,
                "bots": bots,
            }

        return JSONResponse(await service.call(run))

    @api("PUT", f"{prefix}/bots/{{bot}}/active", "manage", body=ActiveRequest)
    async def put_bot_active(account: str, bot: str, request: Request) -> JSONResponse:
        """Switch a bot on or off (overrides its ruleset's ``active`` until switched again)."""
        wanted: ActiveRequest = _model(ActiveRequest, await read_json(request))

        def run(engine: Engine) -> None:
            if engine.rules.bot(account, bot) is None:
                raise _not_found(f"no bot {bot[:200]!r} in account {account!r}")
            engine.set_bot_active(account, bot, wanted.active, by="api")

        await service.call(run)
        return JSONResponse({"account": account, "bot": bot, "active": wanted.active})

    _install_user_routes(api, service, prefix)

    @api("GET", f"{prefix}/records/{{entity}}/{{record_id}}", "read")
    async def get_record(account: str, entity: str, record_id: str) -> JSONResponse:
        """A record as the engine last stored it, with its wall of notes."""
        kind = _entity(entity)

        def run(engine: Engine) -> dict[str, Any]:
            record = engine.record(account, kind, record_id)
            if record is None:
                raise _not_found(f"no {kind} record {record_id[:200]!r} in account {account!r}")
            wall = [note.model_dump(mode="json") for note in engine.wall(account, kind, record_id)]
            return {"account": account, "record": record.model_dump(mode="json"), "wall": wall}

        return JSONResponse(await service.call(run))

    @api("GET", f"{prefix}/records/{{entity}}/{{record_id}}/explain", "read")
    async def get_explain(account: str, entity: str, record_id: str) -> JSONResponse:
        """Every outcome that changed a record, oldest first: who got it and why."""
        kind = _entity(entity)
        outcomes = await service.call(lambda engine: engine.explain(account, kind, record_id))
        if not outcomes:
            raise _not_found(f"no event was processed for {kind} {record_id[:200]!r} in account {account!r}")
        return JSONResponse(
            {
                "account": account,
                "entity": kind,
                "id": record_id,
                "outcomes": [_outcome(o) for o in outcomes],
                "explanation": [line for o in outcomes for line in o.explain()],
            }
        )

    @api("GET", f"{prefix}/outbox", "read")
    async def get_outbox(
        account: str,
        limit: int = Query(100, ge=1, le=MAX_OUTBOX_LIMIT),
        after: int | None = Query(None, ge=0, le=MAX_ROW_ID, description="The last id of the previous page."),
    ) -> JSONResponse:
        """Notifications waiting to be delivered, oldest first; page with ``after``."""
        pending = await service.call(lambda engine: engine.outbox(account, limit, after))
        return JSONResponse(
            {
                "account": account,
                "notifications": [n.model_dump(mode="json") for n in pending],
                "next_after": pending[-1].id if pending else None,
            }
        )

    @api("POST", f"{prefix}/outbox/ack", "manage", body=AckRequest)
    async def post_outbox_ack(account: str, request: Request) -> JSONResponse:
        """Mark notifications delivered: the ids marked, and those not pending (delivered
        before, or not in the account)."""
        wanted: AckRequest = _model(AckRequest, await read_json(request))
        done = await service.call(lambda engine: engine.mark_delivered(account, wanted.ids))
        return JSONResponse({"marked": done.marked, "not_pending": done.not_pending})

    @api("POST", f"{prefix}/bots/{{bot}}/simulate", "manage", body=SimulateRequest)
    async def post_simulate(account: str, bot: str, request: Request) -> JSONResponse:
        """A dry run of a bot: who would get which records; nothing is written."""
        wanted: SimulateRequest = _model(SimulateRequest, await read_json(request))
        if wanted.count is not None and wanted.records is not None:
            detail = "give count or records, not both"
            raise Problem(422, detail, "invalid-body", [{"field": "count", "message": detail}])

        def run(engine: Engine) -> dict[str, Any]:
            if engine.rules.bot(account, bot) is None:
                raise _not_found(f"no bot {bot[:200]!r} in account {account!r}")
            result = simulate_on(engine, account, bot, wanted.records or wanted.count or DEFAULT_COUNT)
            return {
                "account": account,
                "bot": bot,
                "records": result.total,
                "statuses": dict(sorted(result.statuses.items())),
                "users": result.users,
                "rejected": [{"number": r.number, "message": r.message} for r in result.rejected],
                "decisions": [
                    {
                        "number": r.number,
                        "record_id": r.record_id,
                        "owner": r.owner,
                        "status": r.status,
                        "reason": r.reason,
                    }
                    for r in result.records
                ],
            }

        return JSONResponse(await service.call(run))

    @app.get(
        "/v1/rulesets",
        tags=["admin"],
        responses=problem_responses({s: ROUTE_PROBLEMS[s] for s in (401, 403, 503)}),
        openapi_extra={SCOPE_KEY: "read"},
    )
    async def get_rulesets(request: Request) -> JSONResponse:
        """The running rules (admin token, ``read`` scope): when they were loaded, from
        which files, when the folder was last checked, and the problems of the last
        reload that failed (each naming the file, the bot and the field) while the last
        good rules keep running. Each worker process answers for its own engine."""
        secret = _bearer(request)

        def run(engine: Engine) -> dict[str, Any]:
            token = _live_token(engine, secret)
            if token.account != ADMIN_ACCOUNT or "read" not in token.scopes:
                detail = "the rules' status needs an admin token with the 'read' scope"
                raise Problem(403, detail, "forbidden")
            return engine.rules_status.to_json()

        return JSONResponse(await service.call(run))

    @app.get("/healthz", tags=["health"])
    async def healthz() -> JSONResponse:
        """The process is up."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["health"], responses=problem_responses({503: ROUTE_PROBLEMS[503]}))
    async def readyz() -> JSONResponse:
        """Rules are loaded and the store answers: 503 otherwise."""
        try:
            await service.call(lambda engine: engine.store.get_switches(""))
        except StoreError as exc:
            raise Problem(
                503, f"the store does not answer: {exc}", "not-ready", None, _retry_after()
            ) from None
        return JSONResponse({"status": "ready"})

    _install_webhook_routes(api, service, prefix)
    _document_deliveries(app)
    from .replay import install as install_replay  # it imports this module: no cycle here

    install_replay(api, service, prefix)
    _install_error_handlers(app)
    admin.install(app, service.call, session_key or sessions.new_key())
    return app


def _install_user_routes(api: Callable[..., Any], service: Service, prefix: str) -> None:
    """``/v1/accounts/{account}/users``: the users and their switches (``read``), and
    offboarding and activation (``manage``), as ``salesbot user`` does."""

    def known(engine: Engine, account: str, user: str) -> None:
        if engine.rules.user(account, user) is None:
            raise _not_found(f"no user {user[:200]!r} in account {account!r}")

    @api("GET", f"{prefix}/users", "read")
    async def get_users(account: str) -> JSONResponse:
        """The account's users: each active now or not, and who switched them, when."""
        states = await service.call(lambda engine: engine.users(account))
        return JSONResponse({"account": account, "users": [state.summary() for state in states]})

    @api("POST", f"{prefix}/users/{{user}}/offboard", "manage", body=OffboardRequest)
    async def post_offboard(account: str, user: str, request: Request) -> JSONResponse:
        """Switch the user off and redistribute their open records, at most 1,000 per
        request: the summary of the operation so far (moved per bot and owner, records
        left with the user, how many remain). Send the same request again until ``done``:
        nothing moves twice, and once done it answers the same."""
        wanted: OffboardRequest = _model(OffboardRequest, await read_json(request))

        def run(engine: Engine) -> dict[str, Any]:
            known(engine, account, user)
            if wanted.to_bot is not None and engine.rules.bot(account, wanted.to_bot) is None:
                detail = f"no bot {wanted.to_bot[:200]!r} in account {account!r}"
                raise Problem(422, detail, "invalid-body", [{"field": "to_bot", "message": detail}])
            result = engine.offboard(
                account, user, wanted.operation, to_bot=wanted.to_bot, limit=MAX_OFFBOARD_RECORDS, by="api"
            )
            return {"account": account, "user": user, "operation": wanted.operation, **result.summary()}

        return JSONResponse(await service.call(run))

    @api("POST", f"{prefix}/users/{{user}}/activate", "manage")
    async def post_activate(account: str, user: str) -> JSONResponse:
        """Switch the user on again: they get new records; nothing is pulled back."""

        def run(engine: Engine) -> None:
            known(engine, account, user)
            engine.set_user_active(account, user, True, by="api")

        await service.call(run)
        return JSONResponse({"account": account, "user": user, "active": True})


# --- Signed webhooks (salesbot_core.http.signing, salesbot_core.http.delivery) ---------------------


class WebhookRequest(_Body):
    """An endpoint to register: where, and what it receives."""

    url: str = Field(min_length=1, max_length=2000)
    events: list[str] = Field(default_factory=lambda: list(KINDS), min_length=1)


#: The headers of every delivery, for the OpenAPI document's ``webhooks``.
_DELIVERY_HEADERS = [
    {
        "name": DELIVERY_HEADER,
        "in": "header",
        "required": True,
        "description": "The delivery id, the same on every attempt and replay: your idempotency key.",
        "schema": {"type": "string"},
    },
    {
        "name": KIND_HEADER,
        "in": "header",
        "required": True,
        "description": "What the delivery is: assignment or notification.",
        "schema": {"type": "string", "enum": list(KINDS)},
    },
    {
        "name": SIGNATURE_HEADER,
        "in": "header",
        "required": True,
        "description": "t=<unix seconds>,v1=<hex HMAC-SHA256 of 't.body' keyed by the endpoint's secret>.",
        "schema": {"type": "string"},
    },
]
_DELIVERY_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "Any 2xx within 10 seconds: the receiver stored the delivery."},
    "default": {
        "description": "Anything else, or no answer within 10 seconds: tried again with exponential "
        "backoff and jitter, 8 attempts in all, then dead (salesbot webhook failures)."
    },
}


def _document_deliveries(app: FastAPI) -> None:
    """The deliveries a registered endpoint receives, in the OpenAPI ``webhooks``."""
    extra = {"parameters": _DELIVERY_HEADERS}

    @app.webhooks.post(
        "assignment", openapi_extra=extra, responses=_DELIVERY_ANSWERS, response_class=Response
    )
    def assignment(body: AssignmentDelivery) -> None:
        """An event changed a record's owners: its outcome, signed, to each endpoint
        subscribed to ``assignment``."""

    @app.webhooks.post(
        "notification", openapi_extra=extra, responses=_DELIVERY_ANSWERS, response_class=Response
    )
    def notification(body: NotificationDelivery) -> None:
        """A bot's message to a user, signed, to each endpoint subscribed to ``notification``."""


def _install_webhook_routes(api: Callable[..., Any], service: Service, prefix: str) -> None:
    """``/v1/accounts/{account}/webhooks``: register, list and remove endpoints (``manage``)."""

    @api("POST", f"{prefix}/webhooks", "manage", body=WebhookRequest)
    async def post_webhook(account: str, request: Request) -> JSONResponse:
        """Register an endpoint; the answer holds its signing ``secret``, the only time
        it is shown."""
        wanted: WebhookRequest = _model(WebhookRequest, await read_json(request))
        made = await service.call(
            lambda engine: add_webhook(engine.store, account, wanted.url, wanted.events)
        )
        return JSONResponse({**public(made), "secret": made.secret}, status_code=201)

    @api("GET", f"{prefix}/webhooks", "manage")
    async def get_webhooks(account: str) -> JSONResponse:
        """The account's endpoints (never their secrets)."""
        found = await service.call(lambda engine: engine.store.webhooks(account))
        return JSONResponse({"account": account, "webhooks": [public(w) for w in found]})

    @api("DELETE", f"{prefix}/webhooks/{{webhook_id}}", "manage")
    async def delete_webhook(account: str, webhook_id: str) -> JSONResponse:
        """Remove an endpoint and its deliveries."""
        gone = await service.call(lambda engine: engine.store.remove_webhook(account, webhook_id))
        if not gone:
            raise _not_found(f"no webhook {webhook_id[:200]!r} in account {account!r}")
        return JSONResponse({"removed": webhook_id})


def _start_delivery(db: str | None) -> Callable[[], None]:
    """Start a delivery worker on a store of its own (``db``); returns what stops it."""
    if db is None:
        return lambda: None
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
        return Problem(exc.status_code, str(exc.detail), None, None, dict(exc.headers or {})).response()

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
    return create_app(
        rulesets=os.environ.get(ENV_RULESETS, DEFAULT_RULESETS),
        db=db,
        deliver=deliver,
        reload_interval=float(os.environ.get(ENV_RELOAD) or RELOAD_INTERVAL),
        session_key=bytes.fromhex(key) if key else None,
        tick=float(os.environ.get(ENV_TICK) or 0),
    )
