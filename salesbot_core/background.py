"""Work that runs beside the engine in a daemon thread until it is told to stop: the
webhook delivery worker, the rulesets watcher and the SLA ticks of ``salesbot serve``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class Background:
    """A daemon thread running ``work(stop)``: ``ask_to_stop`` sets ``stop`` at once (the
    work ends its round, e.g. a tick or a delivery batch, then returns); calling the
    handle also waits for that, up to its join time."""

    def __init__(self, name: str, work: Callable[[threading.Event], None], join_seconds: float):
        self.join_seconds = join_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=work, args=(self._stop,), name=name, daemon=True)
        self._thread.start()

    def ask_to_stop(self) -> None:
        """Set ``stop`` without waiting: a drain asks every worker first, then waits."""
        self._stop.set()

    def __call__(self, timeout: float | None = None) -> None:
        """Set ``stop`` and wait for ``work`` to return: up to the join time, or up to
        ``timeout`` seconds when that is shorter (a drain's time left)."""
        self._stop.set()
        self._thread.join(self.join_seconds if timeout is None else min(timeout, self.join_seconds))


def in_background(name: str, work: Callable[[threading.Event], None], join_seconds: float) -> Background:
    """Start ``work(stop)`` in a daemon thread called ``name``; returns what stops it: it
    sets ``stop`` and waits up to ``join_seconds`` for ``work`` to return."""
    return Background(name, work, join_seconds)


def every(name: str, seconds: float, work: Callable[[], object], log: logging.Logger) -> Background:
    """Call ``work()`` every ``seconds`` in a daemon thread called ``name``; a round that
    fails is logged to ``log`` and the next one tries again. Returns what stops it."""

    def repeat(stop: threading.Event) -> None:
        while not stop.wait(seconds):
            try:
                work()
            except Exception:  # e.g. the store closing under it: the next round may pass
                log.exception("%s failed", name)

    return Background(name, repeat, seconds + 5)
