"""``/healthz``, ``/readyz`` and ``/v1/rulesets``: the state of the service itself.

Why separate: these are not an account's resources; they answer for the worker (is it
up, does its store answer, which rules run), with the admin token or none.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ..engine import Engine
from ..errors import StoreError
from ..tokens import ADMIN_ACCOUNT
from .auth import BEARER, SCOPE_KEY, _bearer, _live_token
from .common import ROUTE_PROBLEMS, Problem, Service, _retry_after, problem_responses

#: Seconds ``/readyz`` waits for the store before it answers 503: a load balancer's
#: health check gives up after a few seconds, and a store that takes longer (a PostgreSQL
#: server gone: the pool waits 30 s for a connection) is not ready either.
READY_TIMEOUT = 2.0


class _StoreCheck:
    """``Store.check`` on the worker's engine, one at a time: calls of ``/readyz`` while
    one runs wait for it, so health checks against a store that hangs hold one thread,
    not one each. Not in turn with the engine's calls (a store is safe to share between
    threads): a worker busy with requests is still ready, and a health check must not
    wait behind them."""

    def __init__(self, service: Service):
        self._service = service
        self._running: asyncio.Future[None] | None = None

    async def __call__(self, timeout: float) -> None:
        """Return when the store answered; ``StoreError`` or ``TimeoutError`` if not."""
        if self._running is None or self._running.done():
            store = self._service.running().store
            self._running = asyncio.ensure_future(run_in_threadpool(store.check))
            # Read its outcome even when every waiter timed out, so that it is never
            # logged as an exception nobody retrieved.
            self._running.add_done_callback(lambda done: done.cancelled() or done.exception())
        await asyncio.wait_for(asyncio.shield(self._running), timeout)


class RulesProblem(BaseModel):
    """A problem of the last reload that failed, naming the file, bot and field."""

    file: str
    bot: str | None
    field: str | None
    message: str
    #: The problem in one line, as the command line prints it.
    text: str


class RulesRunning(BaseModel):
    """The running rules (``RulesStatus.to_json``)."""

    #: The rulesets folder; None for rules kept in the store.
    folder: str | None
    loaded_at: str
    files: list[str]
    checked_at: str
    #: False when the folder's current files failed to load (``errors`` says why).
    ok: bool
    errors: list[RulesProblem]


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]


def install(app: FastAPI, service: Service) -> None:
    """Add the health routes and the running rules' status."""
    check_store = _StoreCheck(service)

    @app.get(
        "/v1/rulesets",
        tags=["admin"],
        responses={
            200: {"model": RulesRunning},
            **problem_responses({s: ROUTE_PROBLEMS[s] for s in (401, 403, 503)}),
        },
        openapi_extra={SCOPE_KEY: "read"},
        dependencies=[Depends(BEARER)],
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

    @app.get("/healthz", tags=["health"], responses={200: {"model": Health}})
    async def healthz() -> JSONResponse:
        """The process is up."""
        return JSONResponse({"status": "ok"})

    @app.get(
        "/readyz",
        tags=["health"],
        responses={200: {"model": Ready}, **problem_responses({503: ROUTE_PROBLEMS[503]})},
    )
    async def readyz() -> JSONResponse:
        """Rules are loaded and the store answers (``Store.check``) within
        ``READY_TIMEOUT`` seconds: 503 with ``Retry-After`` otherwise, and from the moment
        the worker drains (SIGTERM: ``draining`` answers before this route is reached)."""
        try:
            await check_store(READY_TIMEOUT)
        except StoreError as exc:
            raise Problem(
                503, f"the store does not answer: {exc}", "not-ready", None, _retry_after()
            ) from None
        except TimeoutError:
            detail = f"the store did not answer within {READY_TIMEOUT:g} s"
            raise Problem(503, detail, "not-ready", None, _retry_after()) from None
        return JSONResponse({"status": "ready"})
