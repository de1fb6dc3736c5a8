"""``/v1/accounts/{account}/events``, ``events:batch`` and ``assignments``: the event routes.

Why separate: one module per resource of the API, so each route is found by its path;
these are the signed routes, which admit the caller and run the work in one engine call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ..engine import Engine
from ..errors import EventError
from ..models import EntityType, Event, Identifier, Outcome
from .auth import Api
from .common import Problem, ProblemDetails, Service, _Body, _json, _model, _outcome, event_problem
from .grouping import EventGroups
from .observability import Observer

#: The most events in one ``events:batch`` request.
MAX_BATCH_EVENTS = 500
#: The most record ids in one list operation (``assignments``).
MAX_ASSIGNMENT_RECORDS = 10_000


class AssignmentRequest(_Body):
    """A list operation: set ``bot`` as owner of stored records, each its own pick."""

    entity: EntityType
    record_ids: list[Identifier] = Field(min_length=1, max_length=MAX_ASSIGNMENT_RECORDS)
    bot: str
    #: Repeating an operation with the same id changes nothing.
    operation: str = Field(min_length=1)


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class PostedEvent(Event):
    """An event sent to an account's URL (``Event``, for the OpenAPI document): its
    ``account`` is the URL's. A client that wrote ``Event``'s default, ``default``, into
    every body would send another account's events."""

    account: Identifier = Field(
        "default", description="The URL's account: absent, or the same.", json_schema_extra=_no_default
    )


class EventBatch(_Body):
    """Events handled each on its own, in order. For the OpenAPI document: the route reads
    each event itself, so that one invalid event is its own error, not the batch's."""

    events: list[PostedEvent] = Field(max_length=MAX_BATCH_EVENTS)


class Decided(BaseModel):
    """An event of a batch that was decided: its outcome."""

    outcome: Outcome


class Refused(BaseModel):
    """An event of a batch that was refused: the problem, as ``/events`` answers it."""

    error: ProblemDetails


class BatchAnswer(BaseModel):
    """Each event's outcome or problem, in the order sent."""

    results: list[Decided | Refused]


class Outcomes(BaseModel):
    """A list operation's outcomes, one per record."""

    outcomes: list[Outcome]


def _in_account(data: Any, account: str) -> Any:
    """An event placed in the path's account: its ``account`` must be absent or the same."""
    if not isinstance(data, Mapping):
        return data  # the engine says what is wrong with it
    if "account" in data and data["account"] != account:
        detail = "the event's account differs from the account of the URL"
        raise Problem(422, detail, "account-mismatch", [{"field": "account", "message": detail}])
    return {**data, "account": account}


def install(api: Api, service: Service, prefix: str, observer: Observer) -> None:
    """Add the event routes; each event goes through ``observer`` (timed, counted, logged)."""
    groups = EventGroups(service, observer)

    @api("POST", f"{prefix}/events", "events", body=PostedEvent, signed=True, answer=Outcome, direct=True)
    async def post_event(account: str, request: Request) -> Response:
        """Route one event (as ``salesbot run`` reads one): its outcome. A redelivery is
        answered with the first outcome (``duplicate: true``); the same id with another
        payload is a 409."""

        check = await api.admission(request)
        # Decided with the other event requests waiting for the engine, in one
        # transaction (group commit, see ``grouping``); serialised in the engine's thread.
        answer = await groups.handle(lambda engine: _in_account(check(engine), account))
        return Response(answer, media_type="application/json")

    @api("POST", f"{prefix}/events:batch", "events", body=EventBatch, signed=True, answer=BatchAnswer)
    async def post_events(account: str, request: Request) -> Response:
        """Up to 500 events, ``{"events": [...]}``, each handled on its own, in order:
        ``{"results": [{"outcome": ...} or {"error": problem}]}``."""

        def run(engine: Engine, data: Any) -> bytes:
            events = data.get("events") if isinstance(data, Mapping) else None
            unknown = sorted(key for key in data if key != "events")[:20] if isinstance(data, Mapping) else []
            if not isinstance(events, list) or unknown:
                # Each unknown field named, as /events names an event's.
                errors = [{"field": key, "message": "unknown field"} for key in unknown]
                if not isinstance(events, list):
                    errors.insert(0, {"field": "events", "message": "required list"})
                raise Problem(422, 'send {"events": [event, ...]}', "invalid-body", errors)
            if len(events) > MAX_BATCH_EVENTS:
                detail = f"{len(events)} events; at most {MAX_BATCH_EVENTS} per batch"
                raise Problem(422, detail, "invalid-body", [{"field": "events", "message": detail}])
            # One transaction for the batch, each event under a savepoint of its own (a
            # refused one undoes only itself). Each outcome serialised by pydantic, in the
            # engine's thread; the answer is put together from the pieces.
            placed: list[Any] = []
            for raw in events:
                try:
                    placed.append(_in_account(raw, account))
                except Problem as exc:
                    placed.append(exc)
            decided = iter(observer.handle_group(engine, [e for e in placed if not isinstance(e, Problem)]))
            results: list[bytes] = []
            for item in placed:
                result = item if isinstance(item, Problem) else next(decided)
                if isinstance(result, Problem):
                    results.append(_json({"error": result.body()}))
                elif isinstance(result, EventError):
                    results.append(_json({"error": event_problem(result).body()}))
                else:
                    results.append(b'{"outcome":' + result.model_dump_json().encode() + b"}")
            return b'{"results":[' + b",".join(results) + b"]}"

        return Response(await api.admitted(request, run), media_type="application/json")

    @api("POST", f"{prefix}/assignments", "events", body=AssignmentRequest, signed=True, answer=Outcomes)
    async def post_assignments(account: str, request: Request) -> JSONResponse:
        """A list operation: ``bot`` becomes the owner of each stored record, each its own
        pick; the same ``operation`` id again changes nothing."""

        def run(engine: Engine, data: Any) -> list[Outcome]:
            wanted: AssignmentRequest = _model(AssignmentRequest, data)
            if engine.rules.bot(account, wanted.bot) is None:
                detail = f"no bot {wanted.bot[:200]!r} in account {account!r}"
                raise Problem(422, detail, "invalid-body", [{"field": "bot", "message": detail}])
            return engine.assign_list(account, wanted.entity, wanted.record_ids, wanted.bot, wanted.operation)

        return JSONResponse({"outcomes": [_outcome(o) for o in await api.admitted(request, run)]})
