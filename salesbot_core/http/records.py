"""``/v1/accounts/{account}/records`` and ``outbox``: what the engine stored, and why.

Why separate: one module per resource of the API, so each route is found by its path.
"""

from __future__ import annotations

from typing import Any

from fastapi import Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictInt

from ..engine import Engine
from ..limits import MAX_ROW_ID
from ..models import EntityType, Note, Notification, Outcome, Record
from ..vocabulary import MAX_OUTBOX_LIMIT
from .auth import Api
from .common import Service, _Body, _entity, _model, _not_found, _outcome, read_json


class AckRequest(_Body):
    ids: list[StrictInt] = Field(max_length=MAX_OUTBOX_LIMIT)


class StoredRecord(BaseModel):
    account: str
    record: Record
    #: The notes bots wrote on its wall, oldest first.
    wall: list[Note]


class Explanation(BaseModel):
    """Every outcome that changed a record, oldest first, and the same in words (what
    ``salesbot explain`` prints)."""

    account: str
    entity: EntityType
    id: str
    outcomes: list[Outcome]
    explanation: list[str]


class Outbox(BaseModel):
    account: str
    notifications: list[Notification]
    #: ``after`` of the next page; None when the page is empty.
    next_after: int | None


class Acked(BaseModel):
    """The ids marked delivered, and those not pending, each in the order given."""

    marked: list[int]
    not_pending: list[int]


def install(api: Api, service: Service, prefix: str) -> None:
    """Add the record routes (``read``) and the outbox's (``read``, ack ``manage``)."""

    @api("GET", f"{prefix}/records/{{entity}}/{{record_id}}", "read", answer=StoredRecord)
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

    @api("GET", f"{prefix}/records/{{entity}}/{{record_id}}/explain", "read", answer=Explanation)
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

    @api("GET", f"{prefix}/outbox", "read", answer=Outbox)
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

    @api("POST", f"{prefix}/outbox/ack", "manage", body=AckRequest, answer=Acked)
    async def post_outbox_ack(account: str, request: Request) -> JSONResponse:
        """Mark notifications delivered: the ids marked, and those not pending (delivered
        before, or not in the account)."""
        wanted: AckRequest = _model(AckRequest, await read_json(request))
        done = await service.call(lambda engine: engine.mark_delivered(account, wanted.ids))
        return JSONResponse({"marked": done.marked, "not_pending": done.not_pending})
