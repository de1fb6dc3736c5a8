"""``/v1/accounts/{account}/users``: the users, their switches, offboarding.

Why separate: one module per resource of the API, so each route is found by its path.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ..engine import Engine
from ..limits import MAX_EVENT_ID
from ..offboarding import UserState
from .auth import Api
from .common import Problem, Service, _Body, _model, _not_found, read_json

#: The most records one offboarding request moves; the answer says how many remain, and
#: the same request again goes on with them.
MAX_OFFBOARD_RECORDS = 1_000


class OffboardRequest(_Body):
    """An offboarding: its id (a rerun with it moves nothing twice and answers the same)
    and the bot for records whose own bot is gone or switched off."""

    operation: str = Field(min_length=1, max_length=MAX_EVENT_ID)
    to_bot: str | None = Field(default=None, min_length=1, max_length=200)


class UserStatus(BaseModel):
    """A user now (``UserState.summary``): on or off, and who switched them, when."""

    id: str
    name: str
    active: bool
    switched_by: str | None
    switched_at: str | None


class Users(BaseModel):
    account: str
    users: list[UserStatus]


class PassedOnFrom(BaseModel):
    entity: str
    id: str


class MovedRecord(BaseModel):
    """A record the offboarding took from the user (``Moved.summary``)."""

    entity: str
    id: str
    #: Its owners after the move.
    owners: list[str]
    #: The bot that gave it its new owner; None when the user was only taken off.
    bot: str | None
    #: The user's record whose bot passed the new owner on to this linked record.
    passed_on_from: PassedOnFrom | None


class LeftRecord(BaseModel):
    """An open record that stays with the user, and why."""

    entity: str
    id: str
    reason: str


class Offboarding(BaseModel):
    """The offboarding so far (``Offboarded.summary``): the same on every rerun once done."""

    account: str
    user: str
    operation: str
    #: Records each bot gave to whom: ``{bot: {user: count}}``.
    moved: dict[str, dict[str, int]]
    records_moved: int
    moved_records: list[MovedRecord]
    left: list[LeftRecord]
    #: Records still to move: send the same request again.
    remaining: int
    done: bool


class UserSwitch(BaseModel):
    account: str
    user: str
    active: bool


def install(api: Api, service: Service, prefix: str) -> None:
    """``/v1/accounts/{account}/users``: the users and their switches (``read``), and
    offboarding and activation (``manage``), as ``salesbot user`` does."""

    def known(engine: Engine, account: str, user: str) -> None:
        engine.refresh_rules()  # a user another worker published is known here too
        if engine.rules.user(account, user) is None:
            raise _not_found(f"no user {user[:200]!r} in account {account!r}")

    @api("GET", f"{prefix}/users", "read", answer=Users)
    async def get_users(account: str) -> JSONResponse:
        """The account's users: each active now or not, and who switched them, when."""

        def run(engine: Engine) -> list[UserState]:
            engine.refresh_rules()  # the users other workers published
            return engine.users(account)

        states = await service.call(run)
        return JSONResponse({"account": account, "users": [state.summary() for state in states]})

    @api("POST", f"{prefix}/users/{{user}}/offboard", "manage", body=OffboardRequest, answer=Offboarding)
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

    @api("POST", f"{prefix}/users/{{user}}/activate", "manage", answer=UserSwitch)
    async def post_activate(account: str, user: str) -> JSONResponse:
        """Switch the user on again: they get new records; nothing is pulled back."""

        def run(engine: Engine) -> None:
            known(engine, account, user)
            engine.set_user_active(account, user, True, by="api")

        await service.call(run)
        return JSONResponse({"account": account, "user": user, "active": True})
