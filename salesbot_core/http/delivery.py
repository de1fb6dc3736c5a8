"""Outbound webhooks: the engine's outcomes and notifications, pushed to a host's endpoints.

A host registers endpoints per account (``salesbot webhook add``, or
``POST /v1/accounts/{account}/webhooks``), each for some of these kinds:

- ``assignment``: an event changed a record's owners (its outcome, as ``POST /events``
  answers it);
- ``notification``: a bot's message to a user (as the outbox holds it).

The outbox pattern: each message becomes one delivery row per subscribed endpoint, in
the SAME transaction as its event (``store.queue_deliveries``, which the engine calls),
so a committed event always has its deliveries and a rolled-back one has none. An
account with no endpoint costs nothing more per event; one with endpoints costs one
indexed read per event that changed owners or notified.

Delivery workers (inside ``salesbot serve``, or ``salesbot deliver`` on their own) claim
due rows, each in one worker at a time (a lease: ``Store.claim_deliveries``), and POST
the payload, signed with the endpoint's secret (``salesbot_core.http.signing``), with the
delivery's stable id in ``Salesbot-Delivery`` (the receiver's idempotency key: a
delivery may arrive more than once, e.g. when a response was lost). Any 2xx is success;
anything else (another status, a timeout, a refused connection) is retried with
exponential backoff and full jitter (``RetrySchedule``); after the last attempt the
delivery is dead: listed by ``salesbot webhook failures`` and replayable.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field

from ..background import Background, in_background
from ..errors import SalesbotError
from ..models import EntityType, Model, Outcome, Webhook, utc_iso
from ..safetext import excerpt
from ..store import Store
from ..vocabulary import SCHEDULE_SETTINGS
from .signing import SIGNATURE_HEADER, new_signing_secret, signature_header

_log = logging.getLogger("salesbot.webhooks")

#: What an endpoint may subscribe to.
KINDS = ("assignment", "notification")
#: The header naming a delivery, the same on every attempt.
DELIVERY_HEADER = "Salesbot-Delivery"
#: The header naming the kind of message.
KIND_HEADER = "Salesbot-Event"
#: Seconds one attempt may take (connect, send, answer) before it counts as failed.
SEND_TIMEOUT = 10.0
#: Seconds a claimed delivery is left to its worker before another may take it (a worker
#: that died mid-send); longer than ``SEND_TIMEOUT``.
LEASE_SECONDS = 60.0
#: Deliveries one worker claims at a time.
CLAIM_BATCH = 20
#: The last error of a claimed delivery handed back unsent by a stopping worker.
NOT_SENT = "not sent: the delivery worker stopped (salesbot serve drained); sent again at once"
#: Seconds a worker sleeps when nothing is due.
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class RetrySchedule:
    """When a failed delivery is tried again: exponential backoff with full jitter.

    After failed attempt ``n`` (1-based) the next waits a random time from 0 to
    ``min(cap, first * 2 ** (n - 1))`` seconds; after ``attempts`` attempts the delivery
    is dead. The default, 8 attempts from 30 s, caps the 7 waits at 30 s, 1, 2, 4, 8,
    16 and 32 min: the last attempt comes at most about 64 minutes (about 32 on average)
    after the first, the retry horizon. Tests pass a schedule in milliseconds."""

    attempts: int = 8
    first: float = 30.0
    cap: float = 3600.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> RetrySchedule:
        """The schedule the ``SALESBOT_WEBHOOK_*`` variables set (see ``SCHEDULE_SETTINGS``),
        the default for the rest; ``SalesbotError`` naming a variable out of its range."""
        values: dict[str, Any] = {}
        for name, (variable, kind, low, high) in SCHEDULE_SETTINGS.items():
            text = environ.get(variable)
            if text is None:
                continue
            try:
                values[name] = kind(text)
            except ValueError:
                values[name] = None
            if values[name] is None or not low <= values[name] <= high:
                unit = "a whole number" if kind is int else "seconds"
                raise SalesbotError(f"{variable} must be {unit} from {low} to {high}, not {excerpt(text)}")
        return cls(**values)

    def wait(self, attempt: int) -> float | None:
        """Seconds to wait after failed attempt ``attempt``, or None: no more attempts."""
        if attempt >= self.attempts:
            return None
        return self.rng.uniform(0, min(self.cap, self.first * 2 ** (attempt - 1)))

    @property
    def horizon(self) -> float:
        """The most seconds from the first attempt to the last."""
        return sum(min(self.cap, self.first * 2 ** (n - 1)) for n in range(1, self.attempts))


# The bodies a receiver gets, as models: the OpenAPI document publishes them (its
# ``webhooks``), and a test checks that what ``store.queue_deliveries`` writes validates.


class NotificationData(Model):
    """A bot's message to a user, about the record of an event."""

    user: str = Field(description="The user the bot notifies (a user id of the account's rules).")
    text: str = Field(description="The message, as the bot's ruleset words it.")
    event_id: str = Field(description="The event that caused it.")
    entity: EntityType
    record_id: str


class _DeliveryBody(Model):
    id: str = Field(
        description="The delivery id (dlv_...), also in the Salesbot-Delivery header: the same on every "
        "attempt and replay, the receiver's idempotency key."
    )
    account: str
    created_at: str = Field(description="When the delivery was queued: UTC, ISO 8601 with microseconds.")


class AssignmentDelivery(_DeliveryBody):
    """An event changed a record's owners: its outcome, as ``POST /events`` answers it."""

    type: Literal["assignment"]
    data: Outcome


class NotificationDelivery(_DeliveryBody):
    """A bot's message to a user (as the outbox holds it)."""

    type: Literal["notification"]
    data: NotificationData


def _now() -> datetime:
    return datetime.now(UTC)


def add_webhook(store: Store, account: str, url: str, events: list[str]) -> Webhook:
    """Register an endpoint; its ``secret`` is generated (shown once by the CLI and API)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2000:
        raise SalesbotError(f"webhook url {excerpt(url)} must be an http:// or https:// URL")
    wanted = list(dict.fromkeys(events))
    unknown = [kind for kind in wanted if kind not in KINDS]
    if unknown or not wanted:
        raise SalesbotError(
            f"unknown webhook event {excerpt(unknown[0]) if unknown else '(none)'}: "
            f"events are {', '.join(KINDS)}"
        )
    webhook = Webhook(
        id="wh_" + secrets.token_hex(8),
        account=account,
        url=url,
        events=[kind for kind in KINDS if kind in wanted],
        secret=new_signing_secret(),
        created_at=utc_iso(_now()),
    )
    store.add_webhook(webhook)
    return webhook


def remove_webhook(store: Store, account: str, webhook_id: str) -> None:
    if not store.remove_webhook(account, webhook_id):
        raise SalesbotError(f"account {account!r} has no webhook {webhook_id!r}")


def replay(store: Store, account: str, delivery_id: str) -> None:
    """Queue a dead (or delivered) delivery again, with all its attempts."""
    if not store.replay_delivery(account, delivery_id, utc_iso(_now())):
        raise SalesbotError(f"account {account!r} has no delivery {delivery_id!r} that is dead or delivered")


def public(webhook: Webhook) -> dict[str, Any]:
    """An endpoint as listed: never its secret."""
    return webhook.model_dump(exclude={"secret"})


class Deliverer:
    """A delivery worker: claims due deliveries from ``store`` and sends them.

    ``clock`` gives the current time (UTC) and ``schedule`` the waits between attempts
    (by default ``RetrySchedule.from_env()``), so tests can run hours of retries in a
    second."""

    def __init__(
        self,
        store: Store,
        *,
        schedule: RetrySchedule | None = None,
        clock: Callable[[], datetime] = _now,
        timeout: float = SEND_TIMEOUT,
        lease: float = LEASE_SECONDS,
        batch: int = CLAIM_BATCH,
    ):
        import httpx

        self.schedule = schedule if schedule is not None else RetrySchedule.from_env()
        self.store, self.clock, self.lease, self.batch = store, clock, lease, batch
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)
        self._httpx = httpx

    def run_once(self, stop: threading.Event | None = None) -> int:
        """Claim what is due now and send each once; returns how many were claimed.

        Once ``stop`` is set (a draining ``salesbot serve``) the send under way ends and
        the batch's unsent deliveries are handed back, due at once for any worker, rather
        than left to their lease (a minute): a drain waits for one send, not a batch of
        them. Their claim still counts as an attempt, named so in their last error."""
        now = self.clock()
        claimed = self.store.claim_deliveries(
            utc_iso(now), utc_iso(now + timedelta(seconds=self.lease)), self.batch
        )
        for delivery in claimed:
            if stop is not None and stop.is_set():
                self.store.finish_delivery(
                    delivery.id, delivery.attempts, "pending", utc_iso(self.clock()), NOT_SENT
                )
                continue
            error = self._send(
                delivery.url or "", delivery.secret or "", delivery.id, delivery.kind, delivery.payload
            )
            if error is None:
                self.store.finish_delivery(
                    delivery.id, delivery.attempts, "delivered", utc_iso(self.clock()), None
                )
                continue
            wait = self.schedule.wait(delivery.attempts)
            if wait is None:
                self.store.finish_delivery(
                    delivery.id, delivery.attempts, "dead", utc_iso(self.clock()), error
                )
            else:
                due = utc_iso(self.clock() + timedelta(seconds=wait))
                self.store.finish_delivery(delivery.id, delivery.attempts, "pending", due, error)
        return len(claimed)

    def run_until_idle(self, max_rounds: int = 1000) -> int:
        """``run_once`` until nothing is due now; returns the attempts made."""
        total = 0
        for _ in range(max_rounds):
            made = self.run_once()
            total += made
            if not made:
                break
        return total

    def run(self, stop: threading.Event, poll: float = POLL_SECONDS) -> None:
        """Deliver until ``stop`` is set, sleeping ``poll`` seconds when nothing is due. A
        failed round (the store away) is logged and waited out, not fatal."""
        while not stop.is_set():
            try:
                made = self.run_once(stop)
            except Exception:  # a worker in a server must outlive a bad moment
                _log.exception("webhook delivery round failed; trying again in %s s", poll)
                made = 0
            if not made:
                stop.wait(poll)

    def _send(self, url: str, secret: str, delivery_id: str, kind: str, payload: str) -> str | None:
        """POST one attempt: None when the endpoint took it (2xx), else why not."""
        body = payload.encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "salesbot-webhooks/1",
            DELIVERY_HEADER: delivery_id,
            KIND_HEADER: kind,
            SIGNATURE_HEADER: signature_header([secret], body, int(time.time())),
        }
        try:
            response = self._client.post(url, content=body, headers=headers)
        except self._httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}: {response.text[:200]}"

    def close(self) -> None:
        self._client.close()


def start_worker(store_factory: Callable[[], Store], poll: float = POLL_SECONDS) -> Background:
    """Run a ``Deliverer`` on its own store in a daemon thread; returns what stops it."""

    def work(stop: threading.Event) -> None:
        try:
            store = store_factory()
        except SalesbotError:
            return
        deliverer = Deliverer(store)
        try:
            deliverer.run(stop, poll)
        finally:
            deliverer.close()
            store.close()

    return in_background("salesbot-deliver", work, SEND_TIMEOUT + 5)
