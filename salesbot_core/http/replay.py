"""``POST /v1/accounts/{account}/replay``: the what-if replay over HTTP (``manage`` scope).

The candidate rules come in the body as ruleset file texts, never as a path: a remote
caller must not make the server read its own files. They are bounded (the body's 2 MiB,
``MAX_CANDIDATE_FILES`` files, each a ruleset file's size) and validated as a rulesets
folder is, and an error names the file as the caller named it, the bot and the field.
The kept events are read in one call into the worker's engine; the replay itself runs on
an engine of its own, outside the lock the worker's events take turns on.

The candidate rules come from a caller, so their conditions are compiled first in a
short-lived child process (``Engine(untrusted=True)``): one that would crash
durable-rules, or take it longer than ``isolation_seconds()``, is a 422 naming the condition
and the worker serves on. A worker runs one replay at a time; another asked meanwhile
is a 429 with ``Retry-After``, so that callers cannot stack up children and threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..errors import RulesetError, SalesbotError
from ..replay import (
    MAX_CANDIDATE_FILES,
    OwnerChange,
    RejectedEvent,
    check_window,
    parse_moment,
    read_window,
    replay_files,
)
from .common import Problem, Service, _Body, _model, _retry_after, read_json


class ReplayRequest(_Body):
    """Candidate ruleset files by name (``{"candidate.yaml": "bots: ..."}``) and the window."""

    files: dict[str, str] = Field(min_length=1, max_length=MAX_CANDIDATE_FILES)
    #: ``30d``, ``12h``, ``2w``, ``90m`` before now, or an ISO 8601 date or time.
    since: str = Field(default="30d", max_length=100)
    #: As ``since``; now when not given. Excluded.
    until: str | None = Field(default=None, max_length=100)


class Share(BaseModel):
    """How many records a bot gave a user in the window, as it was and as it would have been."""

    bot: str
    user: str
    actual: int
    candidate: int


class Statuses(BaseModel):
    """Decisions per status, as it was and as it would have been."""

    actual: dict[str, int]
    candidate: dict[str, int]


class ReplayAnswer(BaseModel):
    """A what-if replay (``ReplayResult.as_json``): the window as it was beside what it
    would have been."""

    account: str
    since: str
    until: str
    #: Events replayed.
    events: int
    #: More events were in the window than a replay takes: the first ones were replayed.
    truncated: bool
    distribution: list[Share]
    statuses: Statuses
    changes: list[OwnerChange]
    rejected: list[RejectedEvent]


def _moment(text: str, now: datetime, name: str) -> datetime:
    try:
        return parse_moment(text, now, name)
    except SalesbotError as exc:
        raise Problem(422, str(exc), "invalid-body", [{"field": name, "message": str(exc)}]) from None


def window(since_text: str, until_text: str | None) -> tuple[datetime, datetime]:
    """The window a request names (``since``, ``until``: now when None): 422 naming the
    field when one cannot be read or the window is empty."""
    now = datetime.now(UTC)
    since = _moment(since_text, now, "since")
    until = _moment(until_text, now, "until") if until_text is not None else now
    try:
        check_window(since, until)
    except SalesbotError as exc:
        raise Problem(422, str(exc), "invalid-body", [{"field": "since", "message": str(exc)}]) from None
    return since, until


#: The problem of a route that replays, for the OpenAPI document.
BUSY = {429: "A replay is already running on this worker: retry after Retry-After."}


class ReplaySlot:
    """One replay at a time in a worker, whichever route asks (this one, a draft's
    preview): another asked meanwhile is a 429 with ``Retry-After``."""

    def __init__(self) -> None:
        self._running = asyncio.Lock()

    @asynccontextmanager
    async def taken(self) -> AsyncIterator[None]:
        if self._running.locked():
            detail = "a replay is already running on this worker; retry later"
            raise Problem(429, detail, "replay-busy", None, _retry_after())
        async with self._running:
            yield


def install(api: Callable[..., Any], service: Service, prefix: str, slot: ReplaySlot) -> None:
    """Add the route to the app whose ``api`` route maker (auth, scope, problems) is given."""

    @api("POST", f"{prefix}/replay", "manage", body=ReplayRequest, problems=BUSY, answer=ReplayAnswer)
    async def post_replay(account: str, request: Request) -> JSONResponse:
        """What if: the account's kept events of a window replayed under candidate rules,
        writing nothing: each bot's users as it was and as it would have been, and the
        records whose owner would change, with both reasons (see docs/replay.md)."""
        wanted: ReplayRequest = _model(ReplayRequest, await read_json(request))
        since, until = window(wanted.since, wanted.until)
        async with slot.taken():
            kept = await service.call(lambda engine: read_window(engine.store, account, since, until))
            try:
                result = await run_in_threadpool(replay_files, wanted.files, kept, account, since, until)
            except RulesetError as exc:
                errors = [{"field": f"files.{p.file}", "message": str(p)} for p in exc.problems]
                raise Problem(422, str(exc), "invalid-rulesets", errors) from None
        return JSONResponse(result.as_json())
