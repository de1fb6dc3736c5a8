"""What every route module of the service shares: problems, the worker's engine, bodies.

Why separate: the route modules (one per resource) and the app factory all use these,
so they live below all of them; nothing here declares a route.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from ..engine import Engine
from ..errors import EventError, IdempotencyConflict, SalesbotError
from ..limits import NotJSON, parse_json
from ..models import ENTITIES, EntityType, Outcome

T = TypeVar("T")

#: The largest request body, in bytes (a batch included): a bigger one is a 413.
MAX_BODY_BYTES = 2 * 1024 * 1024
#: Seconds a client is asked to wait after a 503.
RETRY_AFTER_SECONDS = 5
PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error answered as an RFC 9457 problem."""

    def __init__(
        self,
        status: int,
        detail: str,
        kind: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ):
        """``extensions``: the problem type's own extensions (RFC 9457 extensions), such as
        the bots that still name a user, or the current version of the rules."""
        super().__init__(detail)
        self.status, self.detail, self.kind, self.errors = status, detail, kind, errors
        self.headers, self.extensions = headers or {}, extensions or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:salesbot:problem:{self.kind}" if self.kind else "about:blank",
            "title": HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = self.errors
        return {**body, **self.extensions}

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

    def running(self) -> Engine:
        """The engine: a 503 problem when it did not start."""
        engine = self.engine
        if engine is None:
            raise Problem(503, f"the engine is not running: {self.error}", "not-ready", None, _retry_after())
        return engine

    def run(self, fn: Callable[[Engine], T]) -> T:
        """Run ``fn`` on the engine in this thread, once the engine's previous call ended."""
        engine = self.running()
        with self._lock:
            return fn(engine)

    async def call(self, fn: Callable[[Engine], T]) -> T:
        """Run ``fn`` on the engine in a worker thread, one call at a time."""
        return await run_in_threadpool(self.run, fn)


def _retry_after() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


def _entity(entity: str) -> EntityType:
    if entity not in ENTITIES:
        raise _not_found(f"no entity {entity[:50]!r}: entities are {', '.join(ENTITIES)}")
    return entity


def _json(data: Any) -> bytes:
    """``data`` as compact UTF-8 JSON, as ``JSONResponse`` writes it."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _outcome(outcome: Outcome) -> dict[str, Any]:
    return outcome.model_dump(mode="json")


class FieldError(BaseModel):
    """A field of a request that is wrong, and why."""

    field: str
    message: str


class ProblemDetails(BaseModel):
    """A problem (RFC 9457), as every error is answered. A problem type may add members of
    its own (``bots``, ``current_version``)."""

    model_config = ConfigDict(extra="allow", title="Problem")
    type: str
    title: str
    status: int
    detail: str
    #: Only when fields are wrong.
    errors: list[FieldError] = Field(default_factory=list, description="The fields that are wrong, and why.")


def inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` put in place of their references: placed
    inside the OpenAPI document, a ``#/$defs/...`` reference would point at the
    document's root, where no such thing is (clients and ReDoc fail on it). A
    discriminator's mapping names such references too: it goes, and the union's members
    still tell themselves apart by their constant (``entity``). The models inlined nest
    no model in itself, so the walk ends."""
    defs = schema.pop("$defs", {})

    def place(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {key: value for key, value in node.items() if key != "$ref"}
                return {**place(defs[ref.removeprefix("#/$defs/")]), **place(rest)}
            return {key: place(value) for key, value in node.items() if not _discriminator(key, value)}
        if isinstance(node, list):
            return [place(item) for item in node]
        return node

    return place(schema)


def _discriminator(key: str, value: Any) -> bool:
    return key == "discriminator" and isinstance(value, dict) and "propertyName" in value


#: The JSON schema of a problem (RFC 9457), as every error is answered: one component,
#: which the document holds because ``events:batch`` answers it too (``Refused``); a
#: schema repeated in every response would be one type per response to a client.
PROBLEM_SCHEMA: dict[str, Any] = {"$ref": f"#/components/schemas/{ProblemDetails.__name__}"}


#: The problems each account route may answer, for the OpenAPI document.
ROUTE_PROBLEMS = {
    401: "No token, or an unknown or revoked one.",
    403: "The token lacks the scope of the route.",
    404: "No such account (for this token), entity, record or bot.",
    409: "The event id was processed before with a different payload.",
    413: f"The body is over {MAX_BODY_BYTES} bytes.",
    415: "The body is not JSON.",
    422: "The body or a parameter is invalid: the problem names the fields.",
    429: "The account is over its rate limit (nothing was done): retry after Retry-After.",
    503: "The store is unavailable or the engine is not running: retry after Retry-After.",
}


def problem_responses(statuses: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` declaring each status in ``statuses`` as a problem."""
    return {
        status: {"description": text, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}
        for status, text in statuses.items()
    }
