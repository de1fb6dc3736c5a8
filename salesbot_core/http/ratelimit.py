"""Per-account rate limits of ``salesbot serve``: a 429 before any work.

Every request to an account's routes (``/v1/accounts/{account}/...``) takes a token from
that account's bucket (``salesbot_core.token_bucket``) at its rate: the row the operator
set (``rate_limit``, ``rate_burst`` of ``Store.accounts``), else serve's defaults
(``--rate-limit``, ``--rate-burst``). Past it the answer is a 429 problem with
``Retry-After``, counted in ``salesbot_rate_limited_total`` by account.

Why an ASGI middleware, outside the app: a refused request must cost nothing, so it is
answered before routing, before the body is read and before the engine (token checks
included) is called. So nothing of it is half done: no outcome, no part of a batch.
Because the token is not yet checked, a request whose token turns out to be refused
(401) gives its token back: strangers cannot spend an account's budget by naming it.

Why per worker, the limit divided by the workers (``--workers N`` are processes), and not
counted in the store: the check must stay off the store, which is what a flood would
otherwise load (a counter row written by every request, the one all workers contend on)
and what a refused request must not touch; and a store that is down would then refuse
every request. The cost: the kernel spreads connections over the workers, and a
keep-alive connection stays on one, so a client on one connection gets 1/N of its
limit; spread over several connections it gets the whole. The operator's changes reach
a worker with its rules (at its next event, or its reload check): no store read here.

The buckets are touched only on the event loop's thread (a worker's one loop), so they
need no lock.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from ..store import AccountRow
from ..token_bucket import Buckets, Rate
from ..vocabulary import MAX_RATE, RATE_BURST_VARIABLE, RATE_LIMIT_VARIABLE
from .common import Problem, Service
from .observability import OTHER, Observer, ResponseStatus

#: How many workers share each limit (``--workers``); set by ``salesbot serve``, which
#: also hands its workers its defaults in ``RATE_LIMIT_VARIABLE`` and ``RATE_BURST_VARIABLE``.
ENV_WORKERS = "SALESBOT_SERVE_WORKERS"
#: The route label of a refused request in ``salesbot_http_requests_total`` (it reaches no route).
RATE_LIMITED = "(rate limited)"
#: No account id is longer (``models.Identifier``): longer names are cut to key a bucket.
_MAX_KEY = 200
#: An account's routes: the operator's ``/v1/accounts/{account}`` itself is not one.
_ACCOUNT_PATH = re.compile(r"^/v1/accounts/([^/]+)/.")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Limits:
    """serve's default limit of an account (``rate`` 0: none; ``burst`` None: the rate
    rounded up) and how many workers share each limit."""

    rate: float = 0
    burst: int | None = None
    workers: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Limits:
        """The limits ``salesbot serve`` handed its workers (none when unset)."""

        def number(name: str, kind: type[float] | type[int], low: float) -> Any:
            text = environ.get(name, "").strip()
            try:
                value = kind(text) if text else None
            except ValueError:
                value = low - 1
            if value is not None and not low <= value <= MAX_RATE:
                raise ValueError(f"{name} must be a number from {low:g} to {MAX_RATE}, not {text[:50]!r}")
            return value

        rate, burst = number(RATE_LIMIT_VARIABLE, float, 0), number(RATE_BURST_VARIABLE, int, 1)
        return cls(rate or 0, burst, number(ENV_WORKERS, int, 1) or 1)

    def of(self, row: AccountRow | None) -> Rate | None:
        """The whole limit of an account whose row (None: no row) is ``row``: its own
        rate and burst where the operator set them, serve's otherwise; None: no limit.
        A burst left to the default is serve's, else the rate rounded up."""
        rate = self.rate if row is None or row.rate_limit is None else row.rate_limit
        if not rate:
            return None
        burst = self.burst if row is None or row.rate_burst is None else row.rate_burst
        return Rate(rate, burst if burst is not None else max(1, math.ceil(rate)))


def too_many(account: str, limit: Rate, wait: float) -> Problem:
    """The 429 of a request of ``account`` over ``limit``, ``wait`` seconds before a token."""
    seconds = max(1, math.ceil(wait))
    detail = (
        f"the account {account!r} is over its rate limit of {limit.per_second:g} requests a second "
        f"(burst {limit.burst:g}): retry after {seconds} s"
    )
    return Problem(429, detail, "rate-limited", None, {"Retry-After": str(seconds)})


class RateLimits:
    """ASGI middleware: an account's request over its limit is a 429 before any work."""

    def __init__(
        self,
        app: ASGIApp,
        service: Service,
        observer: Observer,
        limits: Limits,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.app, self.service, self.observer, self.limits = app, service, observer, limits
        self.clock = clock
        self.buckets = Buckets()

    def _label(self, account: str) -> str:
        """A bounded account label: an account the store keeps or the rules name."""
        engine = self.service.engine
        if engine is None:
            return OTHER
        if engine.kept_account(account) is not None:
            return account
        return self.observer.account_label(engine, account)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = _ACCOUNT_PATH.match(scope["path"]) if scope["type"] == "http" else None
        engine = self.service.engine
        account = found[1][:_MAX_KEY] if found else ""
        limit = self.limits.of(engine.kept_account(account) if engine else None) if found else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(account, limit.divided(self.limits.workers), self.clock())
        if wait:
            self.observer.rate_limited.labels(self._label(account)).inc()
            self.observer.requests.labels(scope.get("method", ""), RATE_LIMITED, "4xx").inc()
            await too_many(account, limit, wait).response()(scope, receive, send)
            return
        status = ResponseStatus(send, 0)
        try:
            await self.app(scope, receive, status)
        finally:
            if status.value == 401:  # not the account's request: its token is given back
                self.buckets.give_back(account, self.clock())
