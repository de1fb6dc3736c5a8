"""``/v1/accounts``: the operator's routes over accounts (an admin token only).

Why separate: an account's standing (active or suspended, its plan, whether the add-on
is on) is what the operator sells and switches, never what the account's own tokens may
change; these routes are the only ones that need an admin token, and they act on the
store's account rows (``Store.accounts``), not on an account's rules. A change of plan
or activation is checked against the account's current rules first (a plan too small
for them is a 422 naming the limit, nothing written). Its rate limit is set here too
(``http.ratelimit`` applies it): ``null`` gives it back serve's defaults.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictBool

from ..engine import Engine
from ..models import PlanName
from ..rulebook import NotFound
from ..store import LIMIT_FIELDS, AccountRow
from ..vocabulary import MAX_RATE
from .auth import Api
from .common import Problem, Service, _Body, _model, read_json
from .rules import answer, on_rules

#: An account id: what ruleset files name in ``account``.
ACCOUNT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
PROBLEMS = {
    403: "The token is not an admin token (account '*'), or lacks the scope.",
    409: "The account exists already; or the server serves its rules from a folder.",
    422: "The body is invalid, or the account's rules would be over the new plan's limits.",
}


class AccountRequest(_Body):
    account: str = Field(pattern=ACCOUNT_ID)
    plan: PlanName = "professional"
    enabled: StrictBool = True


class AccountChange(_Body):
    """The fields to change; those not given stay. ``rate_limit`` and ``rate_burst`` given
    as ``null`` go back to ``salesbot serve``'s defaults."""

    status: Literal["active", "suspended"] | None = None
    plan: PlanName | None = None
    enabled: StrictBool | None = None
    #: Requests a second (0: no limit) and the burst of the account's own rate limit.
    rate_limit: float | None = Field(default=None, ge=0, le=MAX_RATE, allow_inf_nan=False)
    rate_burst: int | None = Field(default=None, ge=1, le=MAX_RATE)


class Account(BaseModel):
    account: str
    status: str
    plan: str
    enabled: bool
    #: The current version of its rules (0 before the first publish).
    version: int
    created_at: str
    changed_at: str
    #: Its own rate limit (requests a second, 0: none) and burst; null: serve's defaults.
    rate_limit: float | None
    rate_burst: int | None


class Accounts(BaseModel):
    accounts: list[Account]


class AccountDeleted(BaseModel):
    account: str
    deleted: bool


def _account(row: AccountRow) -> dict[str, Any]:
    return row._asdict()


def install(api: Api, service: Service) -> None:
    """Add the operator's account routes."""

    @api("GET", "/v1/accounts", "read", admin=True, answer=Accounts, problems=PROBLEMS)
    async def get_accounts() -> JSONResponse:
        """Every account whose rules the store keeps."""
        rows = await on_rules(service, lambda engine: engine.store.accounts())
        return JSONResponse({"accounts": [_account(row) for row in rows]})

    @api(
        "POST",
        "/v1/accounts",
        "manage",
        body=AccountRequest,
        admin=True,
        answer=Account,
        answer_status=201,
        problems=PROBLEMS,
    )
    async def post_account(request: Request) -> JSONResponse:
        """Add an account with no rules yet (version 0), on a plan, the add-on on or off."""
        wanted: AccountRequest = _model(AccountRequest, await read_json(request))

        def run(engine: Engine) -> AccountRow:
            if not engine.store.create_account(wanted.account, wanted.plan, wanted.enabled):
                raise Problem(409, f"the account {wanted.account!r} exists", "account-exists")
            return engine.account(wanted.account)

        row = await on_rules(service, run)
        return answer(_account(row), row.version, 201)

    @api("GET", "/v1/accounts/{account}", "read", admin=True, answer=Account, problems=PROBLEMS)
    async def get_account(account: str) -> JSONResponse:
        """The account's standing and its rules version."""
        row = await on_rules(service, lambda engine: engine.account(account))
        return answer(_account(row), row.version)

    @api(
        "PATCH",
        "/v1/accounts/{account}",
        "manage",
        body=AccountChange,
        admin=True,
        answer=Account,
        problems=PROBLEMS,
    )
    async def patch_account(account: str, request: Request) -> JSONResponse:
        """Suspend or reactivate the account (a suspended account's tokens get 403, its
        events are refused), change its plan, switch the add-on on or off, set its rate
        limit (``null``: serve's defaults again)."""
        wanted: AccountChange = _model(AccountChange, await read_json(request))
        limits = {name: getattr(wanted, name) for name in LIMIT_FIELDS if name in wanted.model_fields_set}

        def run(engine: Engine) -> AccountRow:
            row = engine.account(account)
            plan = wanted.plan or row.plan
            enabled = row.enabled if wanted.enabled is None else wanted.enabled
            if (plan, enabled) != (row.plan, row.enabled):
                _, book = engine.rulebook(account)
                engine.check_rulebook(account, book, plan=plan, enabled=enabled).conditions.close()
            engine.store.update_account(
                account, status=wanted.status, plan=wanted.plan, enabled=wanted.enabled, limits=limits
            )
            engine.refresh_rules()  # this worker's next request runs under the new limit
            return engine.account(account)

        row = await on_rules(service, run)
        return answer(_account(row), row.version)

    @api("DELETE", "/v1/accounts/{account}", "manage", admin=True, problems=PROBLEMS, answer=AccountDeleted)
    async def delete_account(account: str) -> JSONResponse:
        """Remove the account and everything the store keeps of it (rules, versions,
        drafts, records, log, tokens, webhooks)."""

        def run(engine: Engine) -> None:
            if not engine.store.delete_account(account):
                raise NotFound(f"no account {account!r}")

        await on_rules(service, run)
        return JSONResponse({"account": account, "deleted": True})
