"""Group commit in the service: event requests that wait for the worker's engine together
are decided together, in one transaction (``Engine.handle_group``), one commit for all.

Why: a worker decides one call at a time (``Service``), and at ``synchronous=FULL`` each
event's commit is an fsync that costs more than deciding it. Requests that arrive while
the engine is busy queue here; whichever of their threads takes the engine next decides
every request waiting then (up to ``MAX_GROUP``), each under a savepoint of its own, so a
refused event undoes only itself and every event keeps its own outcome, exactly once.
With nobody else waiting, a request is a group of one: ``Engine.handle``, as before.

The answers are made in the deciding thread (each outcome serialised there, never on the
event loop); each request's thread then takes its own answer, or its own error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from ..engine import Engine
from ..errors import EventError
from .common import Service
from .observability import Observer

#: The most events one transaction takes: a longer queue is decided in turns.
MAX_GROUP = 64


class _Request:
    """One event request waiting for the engine: what admits it and gives its event, and,
    once decided, its answer (serialised outcome) or the error to raise."""

    __slots__ = ("answer", "check", "done", "error")

    def __init__(self, check: Callable[[Engine], Any]):
        self.check = check
        self.answer: bytes | None = None
        self.error: BaseException | None = None
        self.done = False


class EventGroups:
    """The queue of one worker's event requests (see the module)."""

    def __init__(self, service: Service, observer: Observer):
        self._service, self._observer = service, observer
        self._waiting: list[_Request] = []
        self._mutex = threading.Lock()

    async def handle(self, check: Callable[[Engine], Any]) -> bytes:
        """The outcome of the event ``check(engine)`` admits and gives, as JSON bytes;
        raises what admitting or deciding it raised."""
        return await run_in_threadpool(self._wait, _Request(check))

    def _wait(self, request: _Request) -> bytes:
        with self._mutex:
            self._waiting.append(request)
        while not request.done:
            # The engine's next turn decides what waits, this request included unless
            # more than MAX_GROUP waited before it (then it is in a later turn).
            self._service.run(self._decide)
        if request.error is not None:
            raise request.error
        assert request.answer is not None
        return request.answer

    def _decide(self, engine: Engine) -> None:
        """In the engine's turn: decide the waiting requests as one group."""
        with self._mutex:
            group, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
        # Empty when the turn before took this thread's request along: nothing to do.
        admitted: list[tuple[_Request, Any]] = []
        for request in group:
            try:
                admitted.append((request, request.check(engine)))
            except Exception as exc:  # this request's own (401, 415, 422...): never the others'
                request.error, request.done = exc, True
        if not admitted:
            return
        try:
            results = self._observer.handle_group(engine, [event for _, event in admitted])
        except BaseException as exc:  # the store failed: every request of the group did
            for request, _ in admitted:
                request.error, request.done = exc, True
            return
        for (request, _), result in zip(admitted, results, strict=True):
            if isinstance(result, EventError):
                request.error = result
            else:
                request.answer = result.model_dump_json().encode()
            request.done = True
