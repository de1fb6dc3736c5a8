"""``/healthz``, ``/readyz`` and ``/v1/rulesets``: the state of the service itself.

Why separate: these are not an account's resources; they answer for the worker (is it
up, does its store answer, which rules run), with the admin token or none.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..engine import Engine
from ..errors import StoreError
from ..tokens import ADMIN_ACCOUNT
from .auth import BEARER, SCOPE_KEY, _bearer, _live_token
from .common import ROUTE_PROBLEMS, Problem, Service, _retry_after, problem_responses


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
        """Rules are loaded and the store answers: 503 otherwise."""
        try:
            await service.call(lambda engine: engine.store.get_switches(""))
        except StoreError as exc:
            raise Problem(
                503, f"the store does not answer: {exc}", "not-ready", None, _retry_after()
            ) from None
        return JSONResponse({"status": "ready"})
