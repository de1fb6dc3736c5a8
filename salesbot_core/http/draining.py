"""A worker's drain: what ``salesbot serve`` does between SIGTERM and exiting.

The contract (docs/operations.md): on SIGTERM a worker

1. drains at once: ``/readyz`` answers 503 (so a load balancer stops sending it
   requests), and so does every request that arrives from then on (a problem with
   ``Retry-After`` and ``Connection: close``: the client may send it again elsewhere);
   its background work is asked to stop after the round it is running (an SLA tick's
   batch, a webhook delivery under way);
2. stops accepting connections, and finishes the requests in flight (uvicorn's graceful
   shutdown, bounded by the same timeout);
3. waits for its background work with what is left of the timeout, closes its store and
   exits: all within ``timeout`` seconds of the signal.

Why a signal handler of our own: uvicorn's handler only stops the server loop, and the
app learns of it at the end (its lifespan's shutdown), after the requests in flight; a
load balancer must hear "not ready" before that.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from .common import Problem, _retry_after

#: Seconds a worker may take from SIGTERM to exit (``salesbot serve --drain-timeout``).
DRAIN_TIMEOUT = 30
#: Paths served while draining: the process is still alive (a liveness probe must not
#: kill a draining worker).
SERVED_WHILE_DRAINING = frozenset({"/healthz"})

_log = logging.getLogger("salesbot.serve")


class Drain:
    """One worker's drain: begun once (by SIGTERM, or ``begin``), with a deadline."""

    def __init__(self, timeout: float = DRAIN_TIMEOUT):
        self.timeout = timeout
        self.begun = threading.Event()
        self._deadline: float | None = None
        self._on_begin: list[Callable[[], None]] = []

    def on_begin(self, action: Callable[[], None]) -> None:
        """Call ``action`` when the drain begins (it must not block: it asks, not waits)."""
        self._on_begin.append(action)

    def begin(self) -> None:
        """Start draining now; a second call changes nothing."""
        if self.begun.is_set():
            return
        self._deadline = time.monotonic() + self.timeout
        self.begun.set()
        _log.info("draining: new requests and /readyz answer 503; exiting within %g s", self.timeout)
        for action in self._on_begin:
            action()

    def left(self) -> float | None:
        """Seconds left before the deadline (0 when past it); None when not draining."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    @contextmanager
    def on_sigterm(self) -> Iterator[None]:
        """Begin the drain on SIGTERM, then let the handler in place (uvicorn's) act as
        before. Only in the main thread, where signals are delivered: an app run by a
        test client in a thread of its own is drained by calling ``begin``."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()
        previous = signal.getsignal(signal.SIGTERM)

        def handler(signum: int, frame: FrameType | None) -> None:
            # The drain begins in the event loop, not inside the handler: it sets
            # events whose locks the interrupted code might hold.
            loop.call_soon_threadsafe(self.begin)
            if callable(previous):
                previous(signum, frame)

        signal.signal(signal.SIGTERM, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)


class RefuseWhileDraining:
    """ASGI middleware: once ``drain`` began, a new request is refused with a 503 problem
    (``/readyz`` included), except on ``SERVED_WHILE_DRAINING``. A request that began
    before runs to its end; if the drain's timeout cancels it first, it is answered 503
    too, not with uvicorn's bare 500: the client may send it again, and an event sent
    again is decided once (or answers the outcome it got meanwhile)."""

    def __init__(self, app: Any, drain: Drain):
        self.app, self.drain = app, drain

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.drain.begun.is_set() and scope["path"] not in SERVED_WHILE_DRAINING:
            await _refuse("this worker is shutting down; send the request again", scope, receive, send)
            return
        started = False

        async def watched(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except asyncio.CancelledError:
            if started or not self.drain.begun.is_set():
                raise
            timeout = self.drain.timeout
            detail = f"this worker stopped before the request ended (--drain-timeout {timeout:g} s)"
            # The task ends here either way; its answer is the one thing left to do.
            await _refuse(f"{detail}; send it again", scope, receive, send)


async def _refuse(detail: str, scope: dict[str, Any], receive: Any, send: Any) -> None:
    # Connection: close, so the client's next request finds a worker that serves.
    headers = {**_retry_after(), "Connection": "close"}
    await Problem(503, detail, "draining", None, headers).response()(scope, receive, send)
