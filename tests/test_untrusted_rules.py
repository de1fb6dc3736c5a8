"""Rules that arrive over HTTP cannot take ``salesbot serve`` down.

Defence in depth, each against a real ``salesbot serve`` or a real child process:
durable-rules is given no pattern (RE2 matches them, see ``conditions.patterns``), so the
request that killed a worker with a class of 4,097 characters is now answered; candidate
rules are compiled in a short-lived child process first (``check_in_child``), where a
crash or an endless compile is a refusal naming the condition; and a worker that dies
anyway is restarted by ``serve``'s supervisor, which logs how it died.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from test_durable_fuzz import checked_patterns
from test_observability import Served, served
from test_service import bearer, is_problem, rules, tokens

from factories import NO_DURABLE
from salesbot_core import Engine
from salesbot_core.conditions import (
    ISOLATION_VARIABLE,
    ConditionCompileError,
    ConditionSet,
    EvaluatorError,
    durable_available,
)
from salesbot_core.replay import MAX_REPLAY_EVENTS

durable_only = pytest.mark.skipif(not durable_available(), reason=NO_DURABLE)

#: The issue's reproduction: one request of a `manage` token killed the server, when
#: durable-rules' own engine matched patterns.
CLASS_4097 = "[a-\u1061]"


def candidate(pattern: str) -> str:
    """A ruleset file of one bot matching titles with ``pattern`` (written by PyYAML,
    which escapes what YAML cannot hold raw, such as U+FFFF)."""
    rules = {"account": "default", "users": [{"id": "anna"}], "bots": [bot(pattern)]}
    return yaml.safe_dump(rules, allow_unicode=True)


def bot(pattern: str) -> dict[str, Any]:
    return {"id": "b", "users": ["anna"], "trigger": {"where": {"$mt": {"title": pattern}}}}


def replay(client: httpx.Client, token: str, pattern: str) -> httpx.Response:
    body = {"files": {"c.yaml": candidate(pattern)}, "since": "30d"}
    return client.post("/v1/accounts/default/replay", json=body, headers=bearer(token))


def children(pid: int) -> list[int]:
    """The child processes of ``pid``, from any of its threads."""
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def workers(server: Served) -> list[int]:
    """The pids of the worker processes under ``serve`` (its other child is
    multiprocessing's resource tracker)."""
    return [pid for pid in children(server.process.pid) if b"spawn_main" in cmdline(pid)]


@pytest.fixture
def prepared(write_rules: Callable[..., Path], tmp_path: Path) -> tuple[Path, str, str]:
    folder = rules(write_rules)
    db = str(tmp_path / "salesbot.db")
    return folder, db, tokens(db)["manage"]


def heavy(count: int) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Conditions and records that keep a child busy for seconds: megabyte texts."""
    conditions = {
        f"c{i}": {"$and": [{"$mt": {"title": ".*x.*"}}, {"$lt": {"title": "y"}}]} for i in range(count)
    }
    return conditions, [{"title": "a" * 1_000_000}]


@durable_only
def test_a_child_killed_by_a_signal_names_the_condition_it_was_on() -> None:
    from salesbot_core.conditions.durable import check_in_child

    conditions, records = heavy(200)
    with ThreadPoolExecutor(1) as pool:
        checking = pool.submit(check_in_child, conditions, records, 120)
        deadline = time.monotonic() + 30
        while not (child := [c for c in children(os.getpid()) if b"conditions.durable" in cmdline(c)]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.5)  # past its start-up, into the conditions
        os.kill(child[0], signal.SIGSEGV)
        errors = checking.result()
    ((key, why),) = errors.items()
    assert key in conditions
    assert why == "durable-rules crashed (SIGSEGV) on this condition; it is refused"


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:  # gone meanwhile
        return b""


@durable_only
def test_a_child_past_its_time_is_stopped_and_names_the_condition_it_was_on() -> None:
    from salesbot_core.conditions.durable import check_in_child

    conditions, records = heavy(200)
    errors = check_in_child(conditions, records, timeout=2)
    ((key, why),) = errors.items()
    assert key in conditions
    assert why == "durable-rules took more than 2 s on this condition; it is refused"


@durable_only
def test_isolated_conditions_are_compiled_in_a_child_given_isolation_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The child's time limit applies, so the compile happened there."""
    conditions, _ = heavy(3000)
    monkeypatch.setenv(ISOLATION_VARIABLE, "0.001")
    with pytest.raises(ConditionCompileError) as caught:
        ConditionSet(conditions, "durable", isolated=True)
    assert caught.value.errors == {
        "*": "durable-rules took more than 0.001 s on this condition; it is refused"
    }
    ConditionSet(conditions, "durable").close()  # the same, not isolated: compiled here
    monkeypatch.setenv(ISOLATION_VARIABLE, "soon")
    with pytest.raises(
        EvaluatorError,
        match=r"^SALESBOT_ISOLATION_SECONDS must be seconds above 0 and at most 3600, not 'soon'$",
    ):
        ConditionSet(conditions, "durable", isolated=True)


def test_the_reproduction_is_answered_and_the_server_stays_up(
    prepared: tuple[Path, str, str], tmp_path: Path
) -> None:
    """The class of 4,097 characters is a valid pattern, matched by RE2: the replay
    answers; a pattern outside the language is a 422 naming the condition."""
    folder, db, token = prepared
    for server, client in served(folder, db, tmp_path):
        before = workers(server)
        answer = replay(client, token, CLASS_4097)
        assert answer.status_code == 200, answer.text
        assert answer.json()["distribution"] == [{"bot": "b", "user": "anna", "actual": 0, "candidate": 0}]
        problem = is_problem(replay(client, token, "(a{11}){100}"), 422)
        assert problem["errors"] == [
            {
                "field": "files.c.yaml",
                "message": "c.yaml: bot 'b': field 'trigger.where.$mt.title': pattern '(a{11}){100}': "
                "repeats nested in one another multiply to 1100; at most 1000",
            }
        ]
        assert client.get("/healthz").status_code == 200
        assert workers(server) == before


@pytest.mark.slow
def test_a_fuzz_of_candidate_rules_over_replay_leaves_healthz_at_200(
    prepared: tuple[Path, str, str], tmp_path: Path
) -> None:
    folder, db, token = prepared
    rng = random.Random(28)
    malformed = ["[]", "[^]", "(", "a{0}", "\\d", "%", "(a{11}){100}", "^a", "(?=a)", "a**"]
    patterns = [CLASS_4097, "[a-\uffff]", "[^a-\u1060]", "([a-zA-Z]?){100}", *malformed]
    # Those YAML reads back as written (it folds line breaks such as U+0085 into spaces).
    patterns += [p for p in checked_patterns(28, 40) if yaml.safe_load(candidate(p))["bots"][0] == bot(p)][
        :30
    ]
    rng.shuffle(patterns)
    statuses: dict[int, int] = {}
    for server, client in served(folder, db, tmp_path):
        before = workers(server)
        for pattern in patterns:
            answer = replay(client, token, pattern)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            assert answer.status_code == (422 if pattern in malformed else 200), answer.text
            assert client.get("/healthz").status_code == 200
        assert workers(server) == before
        assert "died" not in server.output()
    assert statuses == {200: len(patterns) - len(malformed), 422: len(malformed)}


@pytest.mark.slow
@durable_only  # the Python evaluator cannot crash: it compiles no child
def test_candidate_rules_are_compiled_in_a_child_by_the_serving_worker(
    prepared: tuple[Path, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's answer carries the child's time limit: the compile happened there."""
    folder, db, token = prepared
    monkeypatch.setenv(ISOLATION_VARIABLE, "0.001")  # inherited by serve
    for _, client in served(folder, db, tmp_path):
        problem = is_problem(replay(client, token, "[a-z]+"), 422)
        assert "durable-rules took more than 0.001 s on this condition; it is refused" in problem["detail"]
        assert client.get("/healthz").status_code == 200


@pytest.mark.slow
def test_a_second_replay_while_one_runs_is_a_429(prepared: tuple[Path, str, str], tmp_path: Path) -> None:
    folder, db, token = prepared
    with Engine(folder, db) as engine:  # kept events for the replay to decide again
        for n in range(MAX_REPLAY_EVENTS):
            record = {"entity": "deal", "id": f"d{n}", "owners": ["bot:inbound"]}
            engine.handle({"id": f"e{n}", "kind": "created", "account": "default", "record": record})
    # The running rules as the candidate: every kept event is decided again.
    body = {"files": {"c.yaml": (folder / "default.yaml").read_text()}, "since": "30d"}

    def post(client: httpx.Client) -> httpx.Response:
        return client.post("/v1/accounts/default/replay", json=body, headers=bearer(token))

    for _, client in served(folder, db, tmp_path):
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(post, client)
            time.sleep(0.5)
            busy = post(client)
            assert first.result().json()["events"] == MAX_REPLAY_EVENTS
        assert is_problem(busy, 429)["detail"] == "a replay is already running on this worker; retry later"
        assert busy.headers["retry-after"] == "5"
        assert post(client).status_code == 200  # and once it ended, the next one runs


def _wait_for_new_worker(server: Served, old: list[int]) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = workers(server)
        if len(now) == len(old) and now != old:
            try:
                if httpx.get(f"{server.base}/healthz", timeout=1).status_code == 200:
                    return now
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    pytest.fail(f"no worker came back: {server.output()}")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_serve_restarts_its_one_worker_when_it_dies_and_logs_how(
    prepared: tuple[Path, str, str], tmp_path: Path, sig: signal.Signals
) -> None:
    folder, db, _ = prepared
    for server, client in served(folder, db, tmp_path, "--log-format", "text"):
        (dead,) = workers(server)
        os.kill(dead, sig)
        (alive,) = _wait_for_new_worker(server, [dead])
        assert alive != dead
        assert client.get("/healthz").status_code == 200
        line = f"worker process [{dead}] died (killed by {sig.name}); starting another"
        # The supervisor logs it before it starts the new worker, but the log is read from
        # its pipe by another thread: a busy machine may hand it over a little later.
        deadline = time.monotonic() + 10
        while line not in server.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert line in server.output()


@pytest.mark.slow
def test_with_two_workers_the_other_keeps_serving_while_one_is_restarted(
    prepared: tuple[Path, str, str], tmp_path: Path
) -> None:
    folder, db, _ = prepared
    for server, _client in served(folder, db, tmp_path, "--workers", "2"):
        first, second = workers(server)
        os.kill(first, signal.SIGKILL)
        # New connections, as a client's after a reset: the live worker takes them all.
        answers = [httpx.get(f"{server.base}/healthz", timeout=5).status_code for _ in range(20)]
        assert answers == [200] * 20
        now = _wait_for_new_worker(server, [first, second])
        assert second in now and first not in now
