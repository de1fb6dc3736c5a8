"""Work that runs beside the engine in a daemon thread until it is told to stop: the
webhook delivery worker, the rulesets watcher and the SLA ticks of ``salesbot serve``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


def in_background(
    name: str, work: Callable[[threading.Event], None], join_seconds: float
) -> Callable[[], None]:
    """Start ``work(stop)`` in a daemon thread called ``name``; returns what stops it: it
    sets ``stop`` and waits up to ``join_seconds`` for ``work`` to return."""
    stop = threading.Event()
    thread = threading.Thread(target=work, args=(stop,), name=name, daemon=True)
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(join_seconds)

    return halt


def every(name: str, seconds: float, work: Callable[[], object], log: logging.Logger) -> Callable[[], None]:
    """Call ``work()`` every ``seconds`` in a daemon thread called ``name``; a round that
    fails is logged to ``log`` and the next one tries again. Returns what stops it."""

    def repeat(stop: threading.Event) -> None:
        while not stop.wait(seconds):
            try:
                work()
            except Exception:  # e.g. the store closing under it: the next round may pass
                log.exception("%s failed", name)

    return in_background(name, repeat, seconds + 5)
