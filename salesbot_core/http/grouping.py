"""Group commit in the service: event requests that wait for the worker's engine together
are decided together, in one transaction (``Engine.handle_group``), one commit for all.

Why: a worker decides one call at a time (``Service``), and at ``synchronous=FULL`` each
event's commit is an fsync that costs more than deciding it. Requests queue here; one
worker thread at a time (the decider) takes the engine for every request waiting then (up
to ``MAX_GROUP``), each under a savepoint of its own, so a refused event undoes only
itself and every event keeps its own outcome, exactly once. Requests that arrive while it
decides are the next group; with nobody else waiting, a request is a group of one:
``Engine.handle``, as before.

Why a decider and not a thread per request: the requests wait on the event loop, not in a
thread each, so a group costs one hop into a thread and one back (every answer of the
group handed to the loop at once), not two per request and a race for the engine's lock.
The answers are made in the decider (each outcome serialised there, never on the event
loop); each request then takes its own answer, or its own error.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from ..engine import Engine
from ..errors import EventError
from .common import Service
from .observability import Observer

#: The most events one transaction takes: a longer queue is decided in turns.
MAX_GROUP = 64


class _Request:
    """One event request waiting for the engine: what admits it and gives its event, and
    the future its answer (serialised outcome) or error is set on."""

    __slots__ = ("answer", "check", "error", "future")

    def __init__(self, check: Callable[[Engine], Any], future: asyncio.Future[bytes]):
        self.check, self.future = check, future
        self.answer: bytes | None = None
        self.error: BaseException | None = None

    def settle(self) -> None:
        """On the event loop: hand the request its answer (unless its client is gone)."""
        if self.future.done():
            return
        if self.error is not None:
            self.future.set_exception(self.error)
        else:
            self.future.set_result(self.answer or b"")


class EventGroups:
    """The queue of one worker's event requests (see the module)."""

    def __init__(self, service: Service, observer: Observer):
        self._service, self._observer = service, observer
        self._waiting: list[_Request] = []
        self._deciding = False
        self._mutex = threading.Lock()
        #: The decider's run, kept so that it is not collected while it runs.
        self._decider: asyncio.Future[None] | None = None

    async def handle(self, check: Callable[[Engine], Any]) -> bytes:
        """The outcome of the event ``check(engine)`` admits and gives, as JSON bytes;
        raises what admitting or deciding it raised."""
        loop = asyncio.get_running_loop()
        request = _Request(check, loop.create_future())
        with self._mutex:
            self._waiting.append(request)
            start, self._deciding = not self._deciding, True
        if start:
            self._decider = loop.run_in_executor(None, self._decide_all, loop)
        return await request.future

    def _decide_all(self, loop: asyncio.AbstractEventLoop) -> None:
        """The decider, in a worker thread: groups in turn until nobody waits."""
        while True:
            with self._mutex:
                group, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
                if not group:
                    self._deciding = False
                    return
            try:
                self._service.run(partial(self._decide, group=group))
            except BaseException as exc:  # no engine (503): every request of the group
                for request in group:
                    request.error = request.error or exc
            loop.call_soon_threadsafe(_settle, group)

    def _decide(self, engine: Engine, *, group: list[_Request]) -> None:
        """In the engine's turn: decide ``group`` as one transaction."""
        admitted: list[tuple[_Request, Any]] = []
        for request in group:
            try:
                admitted.append((request, request.check(engine)))
            except Exception as exc:  # this request's own (401, 415, 422...): never the others'
                request.error = exc
        if not admitted:
            return
        try:
            results = self._observer.handle_group(engine, [event for _, event in admitted])
        except BaseException as exc:  # the store failed: every request of the group did
            for request, _ in admitted:
                request.error = exc
            return
        for (request, _), result in zip(admitted, results, strict=True):
            if isinstance(result, EventError):
                request.error = result
            else:
                request.answer = result.model_dump_json().encode()


def _settle(group: list[_Request]) -> None:
    for request in group:
        request.settle()
