"""Clients of a real ``salesbot serve`` that post events until each is acknowledged, as a
CRM's webhook sender does: on a 503 they wait its ``Retry-After``, on a connection error
a moment, and send the same event again (same id). What they saw is kept, to be checked
against what the store holds: which events were acknowledged with which owner, every
error, and how long each event took."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

#: Seconds a client waits after a connection error before sending again.
RECONNECT_WAIT = 0.2
#: Seconds an event may take, retries included, before its client gives up on it.
GIVE_UP_AFTER = 180.0


@dataclass
class Acknowledged:
    """An event the service answered 2xx: the owners it said, whether it said the event
    was a redelivery, and the seconds from its first send to this answer."""

    owners: tuple[str, ...]
    duplicate: bool
    seconds: float


@dataclass
class Load:
    """What a run of clients saw."""

    acknowledged: dict[str, Acknowledged] = field(default_factory=dict)
    #: Events given up on (``GIVE_UP_AFTER``), and answers that may not be retried.
    failed: list[str] = field(default_factory=list)
    #: Every retryable error: "503 Retry-After: 5 (store-unavailable)" (the problem's
    #: type), or the connection error's class.
    errors: list[str] = field(default_factory=list)
    requests: int = 0
    #: Set when the run is called off (what ran meanwhile failed): clients stop at once.
    stopped: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self) -> int:
        """How many events were acknowledged so far."""
        with self._lock:
            return len(self.acknowledged)

    def p99(self) -> float:
        """The 99th percentile of the seconds an event took to be acknowledged."""
        seconds = sorted(ack.seconds for ack in self.acknowledged.values())
        return seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))]

    def _add(
        self, event_id: str, *, ack: Acknowledged | None = None, error: str = "", failed: str = ""
    ) -> None:
        with self._lock:
            self.requests += 1
            if ack is not None:
                self.acknowledged[event_id] = ack
            if error:
                self.errors.append(error)
            if failed:
                self.failed.append(f"{event_id}: {failed}")


def post_until_acknowledged(
    base: str, auth: dict[str, str], account: str, events: Sequence[dict[str, Any]], load: Load
) -> None:
    """One client: each event in turn on one keep-alive connection, sent again until the
    service acknowledges it (2xx)."""
    url = f"/v1/accounts/{account}/events"
    with httpx.Client(base_url=base, headers=auth, timeout=GIVE_UP_AFTER) as http:
        for event in events:
            first = time.monotonic()
            while not load.stopped.is_set():
                if time.monotonic() - first > GIVE_UP_AFTER:
                    load._add(event["id"], failed=f"not acknowledged in {GIVE_UP_AFTER} s")
                    break
                try:
                    answer = http.post(url, json=event)
                except httpx.TransportError as exc:
                    load._add(event["id"], error=type(exc).__name__)
                    time.sleep(RECONNECT_WAIT)
                    continue
                if answer.is_success:
                    body = answer.json()
                    ack = Acknowledged(
                        tuple(body["owners_after"]), body["duplicate"], time.monotonic() - first
                    )
                    load._add(event["id"], ack=ack)
                    break
                retry_after = answer.headers.get("retry-after")
                if answer.status_code == 503 and retry_after is not None:
                    kind = str(answer.json().get("type", "")).rpartition(":")[2]
                    load._add(event["id"], error=f"503 Retry-After: {retry_after} ({kind})")
                    time.sleep(float(retry_after))
                    continue
                load._add(event["id"], failed=f"{answer.status_code} {answer.text}")
                break


def run_clients(
    base: str,
    auth: dict[str, str],
    events: Sequence[dict[str, Any]],
    clients: int = 8,
    account: str = "default",
    meanwhile: Callable[[Load], None] | None = None,
) -> Load:
    """``clients`` clients at once, each posting its share of ``events`` (every
    ``clients``-th one) until acknowledged; ``meanwhile(load)`` runs in this thread while
    they do (to break something mid-run). Returns once every client is done."""
    load = Load()
    with ThreadPoolExecutor(clients) as pool:
        running = [
            pool.submit(post_until_acknowledged, base, auth, account, events[i::clients], load)
            for i in range(clients)
        ]
        try:
            if meanwhile is not None:
                meanwhile(load)
        except BaseException:
            load.stopped.set()
            raise
        finally:
            for client in running:
                client.result()
    return load
