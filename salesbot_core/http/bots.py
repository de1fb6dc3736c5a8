"""``/v1/accounts/{account}/bots`` and ``owner-options``: the bots, their switches, dry runs.

Why separate: one module per resource of the API, so each route is found by its path.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictBool, StrictInt

from ..engine import Engine
from ..models import EntityType
from ..simulate import DEFAULT_COUNT, RejectedRecord, SimulatedRecord, simulate_on
from .auth import Api
from .common import Problem, Service, _Body, _entity, _model, _not_found, read_json
from .rules import etag

#: The most records in one simulation.
MAX_SIMULATE_RECORDS = 10_000


class ActiveRequest(_Body):
    active: StrictBool


class SimulateRequest(_Body):
    """Synthetic records (``count``) or these ``records``; 100 synthetic ones by default."""

    count: StrictInt | None = Field(default=None, ge=1, le=MAX_SIMULATE_RECORDS)
    records: list[dict[str, Any]] | None = Field(default=None, max_length=MAX_SIMULATE_RECORDS)


class OwnerOption(BaseModel):
    #: How the bot is written in a record's Owner field (``bot:<id>``).
    owner: str
    id: str
    name: str


class OwnerOptions(BaseModel):
    account: str
    entity: EntityType
    options: list[OwnerOption]


class BotState(BaseModel):
    """A bot as a list shows it (``Bot.summary``), and whether it is active now."""

    id: str
    name: str
    entity: EntityType
    strategy: str
    users: list[str]
    active: bool


class Bots(BaseModel):
    account: str
    #: Whether the account's add-on is on.
    enabled: bool
    #: The account's rules version (also the ETag) with rules kept in the store; else None.
    version: int | None
    bots: list[BotState]


class BotSwitch(BaseModel):
    account: str
    bot: str
    active: bool


class Simulation(BaseModel):
    """A dry run's answer: per decision status and per user how many records, each
    record's decision, and the records the engine would reject."""

    account: str
    bot: str
    #: Records simulated, rejected ones included.
    records: int
    statuses: dict[str, int]
    users: dict[str, int]
    rejected: list[RejectedRecord]
    decisions: list[SimulatedRecord]


def install(api: Api, service: Service, prefix: str) -> None:
    """Add the bot routes: read (``read``), switch and simulate (``manage``)."""

    @api("GET", f"{prefix}/owner-options/{{entity}}", "read", answer=OwnerOptions)
    async def get_owner_options(account: str, entity: str) -> JSONResponse:
        """The bots a CRM offers in the Owner field of ``entity`` records."""
        kind = _entity(entity)
        offered = await service.call(lambda engine: engine.owner_options(account, kind))
        options = [{"owner": bot.owner_ref, "id": bot.id, "name": bot.display_name} for bot in offered]
        return JSONResponse({"account": account, "entity": kind, "options": options})

    @api("GET", f"{prefix}/bots", "read", answer=Bots)
    async def get_bots(account: str) -> JSONResponse:
        """The account's bots, each with whether it is active now (after switches); with
        rules kept in the store, the rules ``version`` they are of (also the ETag)."""

        def run(engine: Engine) -> dict[str, Any]:
            engine.refresh_rules()  # what other workers published (rules in the store)
            kept = engine.store.accounts(account) if engine.rules_in_store else []
            bots = [{**bot.summary(), "active": active} for bot, active in engine.bots(account)]
            return {
                "account": account,
                "enabled": engine.rules.account_settings(account).enabled,
                "version": kept[0].version if kept else None,
                "bots": bots,
            }

        found = await service.call(run)
        version = found["version"]
        return JSONResponse(found, headers=etag(version) if version is not None else None)

    @api("PUT", f"{prefix}/bots/{{bot}}/active", "manage", body=ActiveRequest, answer=BotSwitch)
    async def put_bot_active(account: str, bot: str, request: Request) -> JSONResponse:
        """Switch a bot on or off (overrides its ruleset's ``active`` until switched again)."""
        wanted: ActiveRequest = _model(ActiveRequest, await read_json(request))

        def run(engine: Engine) -> None:
            engine.refresh_rules()  # a bot another worker published is known here too
            if engine.rules.bot(account, bot) is None:
                raise _not_found(f"no bot {bot[:200]!r} in account {account!r}")
            engine.set_bot_active(account, bot, wanted.active, by="api")

        await service.call(run)
        return JSONResponse({"account": account, "bot": bot, "active": wanted.active})

    @api("POST", f"{prefix}/bots/{{bot}}/simulate", "manage", body=SimulateRequest, answer=Simulation)
    async def post_simulate(account: str, bot: str, request: Request) -> JSONResponse:
        """A dry run of a bot: who would get which records; nothing is written."""
        wanted: SimulateRequest = _model(SimulateRequest, await read_json(request))
        if wanted.count is not None and wanted.records is not None:
            detail = "give count or records, not both"
            raise Problem(422, detail, "invalid-body", [{"field": "count", "message": detail}])

        def run(engine: Engine) -> dict[str, Any]:
            engine.refresh_rules()
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
