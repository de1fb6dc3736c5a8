"""``serve``: the engine behind an HTTP API, on uvicorn (the ``server`` extra)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import uvicorn

from ..vocabulary import MAX_RATE, RATE_BURST_VARIABLE, RATE_LIMIT_VARIABLE
from .common import db_option, fail, rules_from_option, rulesets_option, warn
from .delivery import schedule_options, schedule_settings


@click.command()
@rulesets_option
@rules_from_option
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on."
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes, each with its own engine (use a PostgreSQL store for many).",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    default="json",
    show_default=True,
    help="Log lines on stderr: one JSON object per line, or text for a terminal.",
)
@click.option(
    "--deliver/--no-deliver",
    default=True,
    show_default=True,
    help="Run a webhook delivery worker in each worker process (or run `salesbot deliver` apart).",
)
@click.option(
    "--reload-interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds between checks for changed rules (the folder's files, or versions published "
    "to the store); changed rules are reloaded (0: never; events check the store themselves).",
)
@click.option(
    "--tick",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds between SLA ticks in each worker (hands on records past their deadline); 0: none.",
)
@click.option(
    "--rate-limit",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, MAX_RATE),
    envvar=RATE_LIMIT_VARIABLE,
    show_envvar=True,
    help="Requests a second each account may make, unless the operator set its own "
    "(`salesbot account set`); past it a 429. 0: no limit. Each of N workers allows 1/N "
    "(see docs/service.md, 'Rate limits').",
)
@click.option(
    "--rate-burst",
    default=None,
    type=click.IntRange(1, MAX_RATE),
    envvar=RATE_BURST_VARIABLE,
    show_envvar=True,
    help="Requests an account may make at once, over its rate [default: the rate, rounded up].",
)
@click.option(
    "--drain-timeout",
    default=30,
    show_default=True,
    type=click.IntRange(min=0, max=3600),
    help="Seconds from SIGTERM to exit: each worker answers 503 to new requests (and to "
    "/readyz) at once, finishes those in flight and its tick or delivery batch, and exits "
    "(see docs/operations.md); a worker still running after this is killed.",
)
@schedule_options
def serve(
    rulesets: Path,
    rules_from: str,
    db: str,
    host: str,
    port: int,
    workers: int,
    log_format: str,
    deliver: bool,
    reload_interval: float,
    tick: float,
    rate_limit: float,
    rate_burst: int | None,
    drain_timeout: int,
    **retries: Any,
) -> None:
    """Serve the engine over HTTP (see docs/service.md): events, list operations,
    records, bots, the outbox and dry runs, per account, with bearer tokens
    (`salesbot token create`). The API is described at /docs and /openapi.json;
    Prometheus metrics are at /metrics, and each event is one log line on stderr."""
    import secrets  # here, not at the top: `salesbot serve --help` needs neither
    import tempfile

    from ..conditions import isolation_seconds
    from ..engine import Engine
    from ..errors import SalesbotError

    try:
        import uvicorn

        from ..http.app import (
            ENV_DB,
            ENV_DRAIN_TIMEOUT,
            ENV_NO_DELIVERY,
            ENV_RELOAD,
            ENV_RULES_FROM,
            ENV_RULESETS,
            ENV_SESSION_KEY,
            ENV_TICK,
        )
        from ..http.observability import MULTIPROC_ENV, log_config
        from ..http.ratelimit import ENV_WORKERS
        from ..vocabulary import SCHEDULE_SETTINGS
    except ImportError:
        fail("salesbot serve needs the web server extra: pip install 'salesbot[server]'")
    try:
        # Fail here, with a readable error, on bad rules, settings or an unreachable
        # store; this also creates or upgrades the store once, before the workers open it.
        isolation_seconds()
        with Engine(rulesets if rules_from == "folder" else None, db) as engine:
            for failure in engine.plugin_failures:
                warn(failure)
    except SalesbotError as exc:
        fail(str(exc))
    os.environ[ENV_RULESETS] = str(rulesets)
    os.environ[ENV_RULES_FROM] = rules_from
    os.environ[ENV_DB] = db
    os.environ[ENV_NO_DELIVERY] = "0" if deliver else "1"
    os.environ[ENV_RELOAD] = str(reload_interval)
    os.environ[ENV_TICK] = str(tick)
    # Each worker allows 1/workers of every limit (see http.ratelimit: no store round trip).
    os.environ[RATE_LIMIT_VARIABLE] = str(rate_limit)
    os.environ[ENV_WORKERS] = str(workers)
    if rate_burst is None:
        os.environ.pop(RATE_BURST_VARIABLE, None)
    else:
        os.environ[RATE_BURST_VARIABLE] = str(rate_burst)
    os.environ[ENV_DRAIN_TIMEOUT] = str(drain_timeout)
    # The workers' delivery threads read the retry schedule from the environment.
    for name, value in schedule_settings(retries).items():
        os.environ[SCHEDULE_SETTINGS[name][0]] = str(value)
    # One admin-page session key for all workers: a session signed by one is valid in all.
    os.environ.setdefault(ENV_SESSION_KEY, secrets.token_hex(32))
    with contextlib.ExitStack() as stack:
        if workers > 1 and not os.environ.get(MULTIPROC_ENV):
            # Metrics of all workers, summed at each scrape: the workers write their samples
            # into a folder named before they start (and removed when serve stops).
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="salesbot-metrics-"))
            os.environ[MULTIPROC_ENV] = folder
        config = uvicorn.Config(
            "salesbot_core.http.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=log_config(log_format),
            # uvicorn's own wait for the requests in flight after SIGTERM; the app's
            # drain (http.draining) keeps to the same deadline.
            timeout_graceful_shutdown=drain_timeout,
        )
        killed = supervise(config, drain_timeout)
    if killed:
        fail(f"{killed} worker process(es) did not drain within --drain-timeout {drain_timeout} s: killed")


#: Seconds past ``--drain-timeout`` the supervisor waits for a draining worker to close
#: its store and exit, before it kills it.
EXIT_GRACE = 5.0


def supervise(config: uvicorn.Config, drain_timeout: float) -> int:
    """Run ``config.workers`` worker processes under this one, which restarts a worker
    that dies and logs why, while the others keep serving. On SIGTERM (or SIGINT) it
    passes SIGTERM on to every worker, which drains (``http.draining``), closes its own
    copy of the listening socket, so that new connections are refused as soon as the
    workers have closed theirs, and waits ``drain_timeout`` (plus ``EXIT_GRACE``)
    seconds for the workers to exit; it kills the ones left and returns how many.

    Why always, even for one worker (where uvicorn would serve in this process): a worker
    can die of something no Python code catches (a C extension's crash, the kernel's OOM
    killer, a stray SIGKILL), and then the service must come back by itself. uvicorn's
    own supervisor restarts a dead worker but says only that it died; this one says how
    (an exit status or the signal), so that a crash can be found in the log.
    """
    import logging
    import signal
    import time

    from uvicorn.supervisors import Multiprocess

    log = logging.getLogger("uvicorn.error")

    class Supervisor(Multiprocess):
        killed = 0  # workers killed after the drain timeout

        def keep_subprocess_alive(self) -> None:
            for process in self.processes:
                code = process.exitcode
                if code is not None and not self.should_exit.is_set():
                    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
                    log.error("worker process [%s] died (%s); starting another", process.pid, how)
            super().keep_subprocess_alive()

        def terminate_all(self) -> None:
            super().terminate_all()
            for sock in self.sockets:
                sock.close()

        def join_all(self) -> None:
            deadline = time.monotonic() + drain_timeout + EXIT_GRACE
            for process in self.processes:
                process.process.join(max(0.0, deadline - time.monotonic()))
                if process.process.exitcode is None:
                    log.error(
                        "worker process [%s] did not drain within %s s; killing it",
                        process.pid,
                        drain_timeout,
                    )
                    process.kill()
                    process.process.join()
                    self.killed += 1

    supervisor = Supervisor(config, sockets=[config.bind_socket()])
    supervisor.run()
    return supervisor.killed
