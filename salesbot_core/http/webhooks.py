"""``/v1/accounts/{account}/webhooks``: registering endpoints, and the deliveries they get.

Why separate: one module per resource of the API; the sending itself is
``salesbot_core.http.delivery``'s, this module only registers endpoints and documents
the deliveries in the OpenAPI ``webhooks``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ..models import Endpoint, Webhook
from .auth import Api
from .common import Service, _Body, _model, _not_found, read_json
from .delivery import (
    DELIVERY_HEADER,
    KIND_HEADER,
    KINDS,
    AssignmentDelivery,
    NotificationDelivery,
    add_webhook,
    public,
)
from .signing import SIGNATURE_HEADER


class WebhookRequest(_Body):
    """An endpoint to register: where, and what it receives."""

    url: str = Field(min_length=1, max_length=2000)
    events: list[str] = Field(default_factory=lambda: list(KINDS), min_length=1)


class Endpoints(BaseModel):
    account: str
    #: Never their secrets.
    webhooks: list[Endpoint]


class Removed(BaseModel):
    #: The id of the endpoint removed.
    removed: str


#: The headers of every delivery, for the OpenAPI document's ``webhooks``.
_DELIVERY_HEADERS = [
    {
        "name": DELIVERY_HEADER,
        "in": "header",
        "required": True,
        "description": "The delivery id, the same on every attempt and replay: your idempotency key.",
        "schema": {"type": "string"},
    },
    {
        "name": KIND_HEADER,
        "in": "header",
        "required": True,
        "description": "What the delivery is: assignment or notification.",
        "schema": {"type": "string", "enum": list(KINDS)},
    },
    {
        "name": SIGNATURE_HEADER,
        "in": "header",
        "required": True,
        "description": "t=<unix seconds>,v1=<hex HMAC-SHA256 of 't.body' keyed by the endpoint's secret>.",
        "schema": {"type": "string"},
    },
]
_DELIVERY_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "Any 2xx within 10 seconds: the receiver stored the delivery."},
    "default": {
        "description": "Anything else, or no answer within 10 seconds: tried again with exponential "
        "backoff and jitter, 8 attempts in all, then dead (salesbot webhook failures)."
    },
}


def document_deliveries(app: FastAPI) -> None:
    """The deliveries a registered endpoint receives, in the OpenAPI ``webhooks``."""
    extra = {"parameters": _DELIVERY_HEADERS}

    @app.webhooks.post(
        "assignment", openapi_extra=extra, responses=_DELIVERY_ANSWERS, response_class=Response
    )
    def assignment(body: AssignmentDelivery) -> None:
        """An event changed a record's owners: its outcome, signed, to each endpoint
        subscribed to ``assignment``."""

    @app.webhooks.post(
        "notification", openapi_extra=extra, responses=_DELIVERY_ANSWERS, response_class=Response
    )
    def notification(body: NotificationDelivery) -> None:
        """A bot's message to a user, signed, to each endpoint subscribed to ``notification``."""


def install(api: Api, service: Service, prefix: str) -> None:
    """``/v1/accounts/{account}/webhooks``: register, list and remove endpoints (``manage``)."""

    @api("POST", f"{prefix}/webhooks", "manage", body=WebhookRequest, answer=Webhook, answer_status=201)
    async def post_webhook(account: str, request: Request) -> JSONResponse:
        """Register an endpoint: 201, and the endpoint with its signing ``secret``, the
        only time it is shown."""
        wanted: WebhookRequest = _model(WebhookRequest, await read_json(request))
        made = await service.call(
            lambda engine: add_webhook(engine.store, account, wanted.url, wanted.events)
        )
        return JSONResponse({**public(made), "secret": made.secret}, status_code=201)

    @api("GET", f"{prefix}/webhooks", "manage", answer=Endpoints)
    async def get_webhooks(account: str) -> JSONResponse:
        """The account's endpoints (never their secrets)."""
        found = await service.call(lambda engine: engine.store.webhooks(account))
        return JSONResponse({"account": account, "webhooks": [public(w) for w in found]})

    @api("DELETE", f"{prefix}/webhooks/{{webhook_id}}", "manage", answer=Removed)
    async def delete_webhook(account: str, webhook_id: str) -> JSONResponse:
        """Remove an endpoint and its deliveries."""
        gone = await service.call(lambda engine: engine.store.remove_webhook(account, webhook_id))
        if not gone:
            raise _not_found(f"no webhook {webhook_id[:200]!r} in account {account!r}")
        return JSONResponse({"removed": webhook_id})
