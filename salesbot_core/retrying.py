"""Retrying a store transaction that failed in a way that passes.

Why separate: the event path, SLA ticks, offboarding and the readers (each a module of
the engine) all retry their transactions the same way.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from .errors import TransientStoreError

T = TypeVar("T")

#: How often a transaction is tried when the store fails in a way that passes
#: (``TransientStoreError``: a deadlock, a lost connection, a server restarting).
RETRY_ATTEMPTS = 12
#: Backoff before each retry: a random wait (full jitter, so workers that failed together
#: don't retry together) of up to 50 ms, doubling each time, up to 5 s. The 11 waits of
#: 12 attempts add up to at most about 26 s (13 s on average), plus the pool's own wait
#: for a connection: enough to ride out a PostgreSQL restart.
RETRY_FIRST_WAIT = 0.05
RETRY_MAX_WAIT = 5.0


def retry_wait(attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...): full jitter."""
    return random.uniform(0, min(RETRY_MAX_WAIT, RETRY_FIRST_WAIT * 2 ** (attempt - 1)))


def retrying(fn: Callable[[], T]) -> T:
    """Run ``fn`` (one whole store transaction) until it does not fail transiently, at
    most ``RETRY_ATTEMPTS`` times. Safe because a failed transaction left nothing behind
    and every event is idempotent: one that did commit is answered from the log."""
    for attempt in range(1, RETRY_ATTEMPTS):
        try:
            return fn()
        except TransientStoreError:
            time.sleep(retry_wait(attempt))
    return fn()
