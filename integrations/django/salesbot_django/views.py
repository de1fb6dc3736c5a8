"""The webhook endpoint a ``salesbot serve`` delivers ``assignment`` messages to.

An assignment made outside a save in this project (a list operation from another client,
an SLA handing a record on with ``salesbot tick``) reaches the CRM this way. The body is
checked against ``WEBHOOK_SECRET`` before it is parsed; a delivery of an outcome already
written back (the answer to this project's own request) changes nothing.
"""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from salesbot_core.http.signing import SIGNATURE_HEADER, SignatureError, verify
from salesbot_core.models import Outcome

from . import routing
from .conf import config


@csrf_exempt
@require_POST
def webhook(request: HttpRequest) -> HttpResponse:
    """Apply a signed ``assignment`` delivery; other kinds are acknowledged and ignored."""
    secret = config().webhook_secret
    if not secret:
        return HttpResponseForbidden("SALESBOT['WEBHOOK_SECRET'] is not set")
    try:
        verify(request.headers.get(SIGNATURE_HEADER), request.body, [secret])
    except SignatureError as exc:
        return HttpResponseForbidden(str(exc))
    try:
        message = json.loads(request.body)
    except ValueError:
        return HttpResponseBadRequest("not JSON")
    if message.get("type") != "assignment":
        return HttpResponse(status=204)
    outcome = Outcome.model_validate(message["data"])
    mapped = config().entities.get(outcome.entity)
    instance = mapped.model._default_manager.filter(pk=outcome.record_id).first() if mapped else None
    if mapped is not None and instance is not None:
        routing.apply(outcome.account, mapped, instance, outcome)
    return HttpResponse(status=204)
