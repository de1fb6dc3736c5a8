"""Clients posting events to ``salesbot serve`` instances, failing over between them as a
client behind a load balancer would, while a test changes what serves them.

The test releases events in steps (``release``) and waits for answers (``wait_acked``), so
each phase of what it does (start, migrate, stop an instance) happens under load, however
fast the machine is. The instances the clients use are ``instances``; the test changes it
as a load balancer's pool would change. A request that fails in a way a client retries
(a connection error, 503) is sent again, to the next instance; any other answer but 200
is a failure. Each event's first answer is its acknowledgement; some events are sent once
more after it, to another instance where there is one, and must be answered as
duplicates with the same owners.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

#: How often (every how many events) an acknowledged event is sent again.
REDELIVER_EVERY = 5
#: A request tried this many times without an answer fails.
ATTEMPTS = 100
RETRY_PAUSE = 0.05


@dataclass
class Figures:
    """What the clients saw."""

    requests: int = 0
    retried: int = 0
    #: ``(status, body)`` of each answer that was neither 200 nor retryable.
    failed: list[tuple[int, str]] = field(default_factory=list)
    #: Redeliveries answered as a new decision, or with other owners.
    doubled: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[max(math.ceil(0.99 * len(ordered)) - 1, 0)] if ordered else 0.0


class Load:
    """``clients`` threads posting ``events`` to ``path`` on ``instances`` with ``headers``."""

    def __init__(
        self, events: Sequence[dict[str, Any]], path: str, headers: dict[str, str], clients: int = 8
    ) -> None:
        self.events = events
        self.path = path
        self.headers = headers
        self.instances: list[str] = []
        self.figures = Figures()
        #: Each acknowledged event's answer, and the instance that gave it, by event id.
        self.acked: dict[str, tuple[dict[str, Any], str]] = {}
        self._released = 0
        self._taken = 0
        self._done = False
        self._changed = threading.Condition()
        self._threads = [threading.Thread(target=self._client, args=(n,)) for n in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._changed:
            self._done = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join()

    @property
    def released(self) -> int:
        """How many events the clients may send so far."""
        return self._released

    def release(self, count: int) -> None:
        """Let the clients send ``count`` more events."""
        with self._changed:
            self._released = min(self._released + count, len(self.events))
            self._changed.notify_all()

    def wait_acked(self, count: int, timeout: float = 300) -> None:
        """Wait until ``count`` events are acknowledged (or fail the test)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.acked) < count:
                assert all(t.is_alive() for t in self._threads), "a client died"
                assert not self.figures.failed, self.figures.failed[:3]
                assert time.monotonic() < deadline, f"{len(self.acked)} of {count} events acknowledged"
                self._changed.wait(0.1)

    def _client(self, n: int) -> None:
        connections: dict[str, httpx.Client] = {}
        turn = n  # each client starts its rotation over the instances at its own place
        try:
            while (index := self._take()) is not None:
                event = self.events[index]
                answer, turn = self._post(event, connections, turn)
                if answer is None:
                    return
                with self._changed:
                    self.acked[event["id"]] = answer
                    self._changed.notify_all()
                if index % REDELIVER_EVERY == 0:
                    again, turn = self._post(event, connections, turn)
                    if again is not None:
                        self._check_duplicate(event["id"], answer[0], again[0])
        finally:
            for connection in connections.values():
                connection.close()

    def _take(self) -> int | None:
        with self._changed:
            while self._taken >= self._released and not self._done:
                self._changed.wait()
            if self._taken >= self._released:
                return None
            self._taken += 1
            return self._taken - 1

    def _post(
        self, event: dict[str, Any], connections: dict[str, httpx.Client], turn: int
    ) -> tuple[tuple[dict[str, Any], str] | None, int]:
        """The first answer 200 to ``event`` and the instance that gave it (None: it failed),
        and where the client's rotation goes on."""
        for _ in range(ATTEMPTS):
            with self._changed:
                pool = list(self.instances)
            base = pool[turn % len(pool)]
            turn += 1
            if base not in connections:
                connections[base] = httpx.Client(base_url=base, headers=self.headers, timeout=60)
            started = time.monotonic()
            try:
                response = connections[base].post(self.path, json=event)
            except httpx.TransportError:
                status, body = 0, ""  # the instance went away: try the next one
                connections.pop(base).close()
            else:
                status, body = response.status_code, response.text
            with self._changed:
                self.figures.requests += 1
                if status == 200:
                    self.figures.latencies.append(time.monotonic() - started)
                    return (response.json(), base), turn
                if status not in (0, 503):
                    self.figures.failed.append((status, body))
                    return None, turn
                self.figures.retried += 1
            time.sleep(RETRY_PAUSE)
        with self._changed:
            self.figures.failed.append((0, f"{event['id']}: no answer in {ATTEMPTS} attempts"))
        return None, turn

    def _check_duplicate(self, event_id: str, first: dict[str, Any], again: dict[str, Any]) -> None:
        if not again["duplicate"] or again["owners_after"] != first["owners_after"]:
            with self._changed:
                self.figures.doubled.append(event_id)

    def decided_by(self) -> Counter[str]:
        """How many events each instance decided (acknowledged as not duplicates)."""
        return Counter(base for answer, base in self.acked.values() if not answer["duplicate"])
