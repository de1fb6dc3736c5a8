"""Workers racing on one store: threads that take each round together."""

from __future__ import annotations

import threading
from collections.abc import Callable


def race(workers: int, rounds: int, step: Callable[[int, int], None]) -> None:
    """Run ``step(worker, round)`` for every round on ``workers`` threads, each round
    started by all of them at once (a barrier); the first failure is raised here, not
    lost in its thread."""
    barrier = threading.Barrier(workers)
    failures: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            for r in range(rounds):
                barrier.wait(timeout=60)
                step(w, r)
        except BaseException as exc:
            failures.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
