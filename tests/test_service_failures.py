"""``salesbot serve`` when things go wrong outside the client's request: a store that stays
locked past the engine's retries (503 with ``Retry-After``), and a body streamed without a
Content-Length that grows past the limit (413), each against a real serve process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_service import DEAL_EVENT, bearer, is_problem, rules, serve, tokens

from salesbot_core import Engine
from salesbot_core.http.common import MAX_BODY_BYTES, RETRY_AFTER_SECONDS

serving = contextmanager(serve)

#: Holds SQLite's write lock on the file named by argv[1] until its stdin closes.
LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


@pytest.mark.slow
def test_a_store_locked_past_the_retries_is_503_with_retry_after(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    """Another process holds the SQLite write lock for longer than the engine retries (12
    attempts, each waiting 50 ms for the lock, with backoff between them: at most ~27 s):
    the answer is a 503 problem with ``Retry-After``, and nothing of the event was written,
    so the same event once the lock is gone is processed for the first time."""
    folder = rules(write_rules)
    path = tmp_path / "salesbot.db"
    with Engine(folder, str(path)):
        pass
    made = tokens(str(path))
    auth = bearer(made["all"])
    url = "/v1/accounts/default/events"
    with serving(folder, f"sqlite:///{path}?busy_timeout=50", tmp_path, "--no-deliver") as client:
        holder = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            refused = client.post(url, json=DEAL_EVENT, headers=auth)
            problem = is_problem(refused, 503)
            assert refused.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
            assert problem["type"] == "urn:salesbot:problem:store-unavailable"
        finally:
            holder.communicate("", timeout=30)
        done = client.post(url, json=DEAL_EVENT, headers=auth)
        assert done.status_code == 200, done.text
        assert (done.json()["duplicate"], done.json()["owners_after"]) == (False, ["anna"])


def chunked_post(port: int, path: str, headers: dict[str, str], chunks: list[bytes]) -> tuple[int, bytes]:
    """POST ``chunks`` with ``Transfer-Encoding: chunked`` (no Content-Length) over a raw
    socket, then read the answer: its status and body."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        for chunk in chunks:
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_a_chunked_body_without_content_length_over_the_limit_is_413(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    """The limit holds for a body streamed in chunks with no Content-Length: the service
    counts what arrives and answers 413 once it passes ``MAX_BODY_BYTES``; a chunked body
    under the limit is an ordinary event."""
    folder = rules(write_rules)
    db = str(tmp_path / "salesbot.db")
    with Engine(folder, db):
        pass
    made = tokens(db)
    headers = {**bearer(made["all"]), "Content-Type": "application/json"}
    with serving(folder, db, tmp_path, "--no-deliver") as client:
        port = int(str(client.base_url).rsplit(":", 1)[1].strip("/"))
        # 2 MiB and one byte in 64 KiB chunks: the last byte tips it over. Nothing more
        # is sent, so the server has read all of it when it answers.
        chunk = 64 * 1024
        over = [b" " * chunk] * (MAX_BODY_BYTES // chunk) + [b" "]
        status, body = chunked_post(port, "/v1/accounts/default/events", headers, over)
        assert status == 413
        problem = json.loads(body)
        assert problem["status"] == 413 and str(MAX_BODY_BYTES) in problem["detail"]

        event = json.dumps(DEAL_EVENT).encode()
        parts = [event[:10], event[10:], b""]  # the empty chunk ends the body
        status, body = chunked_post(port, "/v1/accounts/default/events", headers, parts)
        assert status == 200, body
        assert json.loads(body)["owners_after"] == ["anna"]
        # The service is still up and answers the next request.
        assert client.get("/healthz").status_code == 200


def test_the_sqlite_busy_timeout_is_a_url_option(tmp_path: Path) -> None:
    from salesbot_core.engine import open_store
    from salesbot_core.errors import StoreError
    from salesbot_core.registry import make_plugin_manager

    registry = make_plugin_manager()
    store = open_store(registry, f"sqlite:///{tmp_path / 'a.db'}?busy_timeout=75")
    try:
        assert store._conn.execute("PRAGMA busy_timeout").fetchone() == (75,)  # type: ignore[attr-defined]
    finally:
        store.close()
    for bad in ("abc", "-1", "1" * 10):
        with pytest.raises(StoreError, match="busy_timeout must be a whole number of milliseconds"):
            open_store(registry, f"sqlite:///{tmp_path / 'b.db'}?busy_timeout={bad}")
