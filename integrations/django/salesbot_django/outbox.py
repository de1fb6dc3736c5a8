"""A routing the service did not take is kept and sent again: a salesbot outage loses
no save.

In HTTP mode a save's events (its linked records as they stand, then the record) go to
``salesbot serve`` after commit. If the service is down, times out or answers 429/5xx,
they are kept in a ``PendingEvent`` row, with their event ids, and sent again, oldest
first, before the next routing and by ``manage.py salesbot_retry`` (run it from cron or a
worker). While older events wait, newer ones queue behind them, so a record's saves reach
salesbot in the order they were made. A redelivery is safe both ways: salesbot answers an
event id it has seen with its first outcome, and an outcome is written back once
(``AppliedOutcome``), so an answer lost on the way costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.db import models

from salesbot_core import IdempotencyConflict
from salesbot_core.models import Outcome

from . import routing
from .backends import Unavailable, backend
from .conf import EntityMap, config
from .models import PendingEvent

log = logging.getLogger(__name__)


def _deliver(events: Sequence[dict[str, Any]]) -> Outcome | None:
    """The linked records' events, then the record's: its outcome. None if the record's
    event was decided before with other contents (the first outcome stands)."""
    routing.send_mirrors(events[:-1])
    try:
        return backend().handle(events[-1])
    except IdempotencyConflict:
        log.info("salesbot: %s was decided before; the first outcome stands", events[-1]["id"])
        return None


def send(mapped: EntityMap, instance: models.Model, events: Sequence[dict[str, Any]]) -> Outcome | None:
    """Send one routing's events and write the outcome back, or keep them for later."""
    account = events[-1]["account"]
    retry()
    if PendingEvent.objects.exists():
        _keep(mapped, instance, events, "waiting behind earlier events")
        return None
    try:
        outcome = _deliver(events)
    except Unavailable as exc:
        _keep(mapped, instance, events, str(exc))
        return None
    if outcome is not None:
        routing.apply(account, mapped, instance, outcome)
    return outcome


def _keep(mapped: EntityMap, instance: models.Model, events: Sequence[dict[str, Any]], why: str) -> None:
    log.warning("salesbot: %s kept to send again: %s", events[-1]["id"], why)
    PendingEvent.objects.create(
        account=events[-1]["account"],
        entity=mapped.entity,
        record_id=str(instance.pk),
        events=list(events),
        last_error=why,
    )


def retry() -> int:
    """Send the kept routings again, oldest first, until one fails; how many went."""
    sent = 0
    for row in PendingEvent.objects.order_by("pk"):
        try:
            outcome = _deliver(row.events)
        except Unavailable as exc:
            row.attempts += 1
            row.last_error = str(exc)
            row.save(update_fields=["attempts", "last_error"])
            break
        row.delete()
        sent += 1
        mapped = config().entities[row.entity]
        instance = mapped.model._default_manager.filter(pk=row.record_id).first()
        if outcome is not None and instance is not None:
            routing.apply(row.account, mapped, instance, outcome)
    return sent
