"""Who may call a route: bearer tokens, scopes and signatures, and ``Api``, the route maker.

Why separate: every resource module declares its routes through ``Api``, which admits
the caller (401, 404, 403) and checks a signed route's signature in the engine's thread;
keeping it apart from the app factory lets those modules import it without importing
the app (no cycle).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from pydantic import BaseModel
from starlette.routing import request_response

from ..engine import Engine
from ..models import Token
from ..retrying import retrying
from ..tokens import authenticate, covers
from ..vocabulary import ADMIN_ACCOUNT
from .common import (
    ROUTE_PROBLEMS,
    Problem,
    Service,
    _not_found,
    inlined,
    parse_body,
    problem_responses,
    read_body,
)
from .signing import SIGNATURE_HEADER, SignatureError, environment_secrets, verify

T = TypeVar("T")

#: The OpenAPI extension naming the scope a route needs.
SCOPE_KEY = "x-salesbot-scope"


class Caller(NamedTuple):
    """Who calls a route: the bearer token sent, for which account, needing which scope,
    whether the route is signed (checked when the account has signing secrets), and
    whether it is the operator's (an admin token only)."""

    secret: str
    account: str
    scope: str
    signed: bool
    admin: bool = False


_CHALLENGE = {"WWW-Authenticate": "Bearer"}

#: The bearer token in the OpenAPI document (``securitySchemes``, and ``security`` on each
#: route that depends on it). It never answers itself (``auto_error=False``): ``_bearer``
#: reads the header, after a body's size is checked (413 before 401).
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token of the account (salesbot token create), or an admin token.",
)


def _bearer(request: Request) -> str:
    """The bearer token of a request: a 401 without one."""
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Problem(401, "send a token: Authorization: Bearer <token>", "unauthorized", None, _CHALLENGE)
    return secret.strip()


def _live_token(engine: Engine, secret: str) -> Token:
    """The live token whose secret is ``secret``: a 401 if it is unknown or revoked."""
    # Retried as the event's own transaction is: a read that meets a failover or a server
    # restart would otherwise turn a request that would ride it out into a 503.
    token = retrying(lambda: authenticate(engine.store, secret))
    if token is None:
        raise Problem(401, "the token is unknown or revoked", "unauthorized", None, _CHALLENGE)
    return token


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = inlined(model.model_json_schema())
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


class Api:
    """The route maker of the account routes: ``api(method, path, scope, body=...,
    signed=..., problems=...)`` declares a route that admits its caller and documents its
    problems (``ROUTE_PROBLEMS`` and the route's own);
    ``admitted`` runs a signed route's work in the same engine call as the checks."""

    def __init__(self, app: FastAPI, service: Service, signing_env: Mapping[str, str]):
        self.app, self.service = app, service
        #: The ``SALESBOT_SIGNING_SECRET_<ACCOUNT>`` variables, read when the app was made.
        self._signing_env = signing_env

    def token(self, engine: Engine, caller: Caller) -> Token:
        """In the engine's thread: the caller's token must be live (401), be an admin
        token on the operator's routes (403), act for the account (else 404: nothing says
        whether it exists), hold the scope (403), and not be the token of a suspended
        account (403; an admin token still works). Returns the token."""
        token = _live_token(engine, caller.secret)
        # Another account's URL is a 404 first, on the operator's routes too; an operator's
        # route without an account (``account`` empty) is a 403 to an account's token.
        if caller.account and not covers(token, caller.account):
            raise _not_found("not found")
        if caller.admin and token.account != ADMIN_ACCOUNT:
            raise Problem(403, "the route is the operator's: it needs an admin token", "forbidden")
        if caller.scope not in token.scopes:
            raise Problem(403, f"the token lacks the {caller.scope!r} scope", "forbidden")
        if token.account != ADMIN_ACCOUNT and caller.account and engine.rules_in_store:
            engine.refresh_rules()  # another worker may have suspended it
            if engine.suspended(caller.account):
                detail = f"the account {caller.account!r} is suspended: its tokens are refused"
                raise Problem(403, detail, "account-suspended")
        return token

    def admit(self, engine: Engine, caller: Caller) -> list[str]:
        """``token``'s checks; returns the account's signing secrets (store and
        environment) when the route is signed, else none."""
        self.token(engine, caller)
        if not caller.signed:
            return []
        stored = retrying(lambda: engine.store.signing_secrets(caller.account))
        return [*stored, *environment_secrets(self._signing_env, caller.account)]

    def __call__(
        self,
        method: str,
        path: str,
        scope: str,
        body: type[BaseModel] | None = None,
        signed: bool = False,
        problems: Mapping[int, str] | None = None,
        *,
        admin: bool = False,
        answer: type[BaseModel] | None = None,
        answer_status: int = 200,
        headers: list[dict[str, Any]] | None = None,
        direct: bool = False,
    ) -> Any:
        """``admin``: the operator's route (an admin token only; a path without
        ``{account}`` acts on every account). ``answer``: the model of the body answered
        with ``answer_status``, and ``headers`` the request headers the route reads
        itself (OpenAPI parameters), for the OpenAPI document. An unsigned route's admitted
        token is ``request.state.token`` (its name is the author of the rules versions
        it publishes). ``direct``: the route, an ``endpoint(account, request)`` of the
        event path, is served without FastAPI's dependency resolution (see ``_direct``)."""

        async def check(request: Request, account: str = "") -> None:
            if body is not None:
                # The size first, whoever sends it (413 before 401), as on signed routes:
                # the body is read once, bounded, and kept for the route.
                await read_body(request)
            caller = Caller(_bearer(request), account, scope, signed, admin)
            if signed:
                # The route admits the caller in the same engine call as its work
                # (``admitted``): one hop into the engine's thread per request, not two.
                request.state.caller = caller
            else:
                request.state.token = await self.service.call(lambda engine: self.token(engine, caller))

        async def check_operator(request: Request) -> None:
            await check(request)

        extra: dict[str, Any] = {SCOPE_KEY: scope}
        if headers:
            extra["parameters"] = headers  # FastAPI adds them to the route's own
        if body is not None:
            extra |= _body_schema(body)
        responses = problem_responses({**ROUTE_PROBLEMS, **(problems or {})})
        if answer is not None:
            responses[answer_status] = {"model": answer, "description": "Successful Response"}
        declare = self.app.api_route(
            path,
            methods=[method],
            status_code=answer_status,
            dependencies=[Depends(check if "{account}" in path else check_operator), Depends(BEARER)],
            openapi_extra=extra,
            tags=["admin" if admin else scope],
            responses=responses,
        )
        return _direct(self.app, declare, check) if direct else declare

    async def admitted(self, request: Request, fn: Callable[[Engine, Any], T]) -> T:
        """For a signed route: read the body, then in ONE engine call admit the caller
        (401, 404, 403), check the signature when the account signs (401), parse the
        body (415, 422) and run ``fn(engine, data)``. A body over the limit is a 413
        before anything else: it is not read whoever sends it."""
        check = await self.admission(request)
        return await self.service.call(lambda engine: fn(engine, check(engine)))

    async def admission(self, request: Request) -> Callable[[Engine], Any]:
        """For a signed route: read the body (413 first), and return what, in the
        engine's thread, admits the caller, checks the signature and parses the body,
        answering the body's data (see ``admitted``)."""
        caller: Caller = request.state.caller
        raw = await read_body(request)
        content_type = request.headers.get("content-type", "")
        header = request.headers.get(SIGNATURE_HEADER)

        def check(engine: Engine) -> Any:
            keys = self.admit(engine, caller)
            if keys:
                try:
                    verify(header, raw, keys)
                except SignatureError as exc:
                    raise Problem(401, str(exc), "bad-signature") from None
            return parse_body(content_type, raw)

        return check


def _direct(app: FastAPI, declare: Callable[[Any], Any], check: Callable[..., Any]) -> Callable[[Any], Any]:
    """``declare`` (FastAPI's route decorator), then the route served by a plain Starlette
    endpoint that runs ``check`` (413, then 401) and the route's ``endpoint(account,
    request)``, as FastAPI would.

    Why: on the event path, FastAPI's per-request dependency resolution (the bearer
    scheme, the path parameter, an exit stack) cost as much as the rest of the HTTP
    layer. The route stays FastAPI's for everything else (its OpenAPI description, its
    match and 405), and its errors go to the app's handlers as any route's."""

    def install(endpoint: Callable[[str, Request], Awaitable[Response]]) -> Any:
        declared = declare(endpoint)
        route = app.router.routes[-1]
        assert isinstance(route, APIRoute) and route.endpoint is endpoint

        async def serve(request: Request) -> Response:
            account: str = request.path_params["account"]
            await check(request, account)
            return await endpoint(account, request)

        route.app = request_response(serve)
        return declared

    return install
