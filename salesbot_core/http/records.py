"""``/v1/accounts/{account}/records`` and ``outbox``: what the engine stored, and why.

Why separate: one module per resource of the API, so each route is found by its path.
"""

from __future__ import annotations

from typing import Any

from fastapi import Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field, StrictInt

from ..engine import Engine
from ..limits import MAX_ROW_ID
from ..vocabulary import MAX_OUTBOX_LIMIT
from .auth import Api
from .common import Service, _Body, _entity, _model, _not_found, _outcome, read_json


class AckRequest(_Body):
    ids: list[StrictInt] = Field(max_length=MAX_OUTBOX_LIMIT)


def install(api: Api, service: Service, prefix: str) -> None:
    """Add the record routes (``read``) and the outbox's (``read``, ack ``manage``)."""

    @api("GET", f"{prefix}/records/{{entity}}/{{record_id}}", "read")
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

    @api("GET", f"{prefix}/records/{{entity}}/{{record_id}}/explain", "read")
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

    @api("GET", f"{prefix}/outbox", "read")
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

    @api("POST", f"{prefix}/outbox/ack", "manage", body=AckRequest)
    async def post_outbox_ack(account: str, request: Request) -> JSONResponse:
        """Mark notifications delivered: the ids marked, and those not pending (delivered
        before, or not in the account)."""
        wanted: AckRequest = _model(AckRequest, await read_json(request))
        done = await service.call(lambda engine: engine.mark_delivered(account, wanted.ids))
        return JSONResponse({"marked": done.marked, "not_pending": done.not_pending})
