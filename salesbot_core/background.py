"""Work that runs beside the engine in a daemon thread until it is told to stop: the
webhook delivery worker and the rulesets watcher of ``salesbot serve``."""

from __future__ import annotations

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
