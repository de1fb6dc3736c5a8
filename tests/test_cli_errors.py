"""The error paths of every ``salesbot`` command: exit status 1 and ``error:`` lines for a
user mistake in input, rules, store or data; 2 for a command-line usage error; never a
traceback. And nothing from the input reaches the terminal unescaped."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from factories import PYDANTIC, TEAM, Message, deal_event
from salesbot_core.cli import main

BOTS = """
bots:
  - id: inbound
    users: [anna, bartek]
    actions: {note: "Got {record.title}"}
"""


@dataclass
class Salesbot:
    """Runs ``salesbot`` in this process on one ruleset folder and one store file."""

    folder: Path
    db: Path

    def __call__(self, *args: str, store: bool = True) -> Result:
        options = ["-r", str(self.folder), "--db", str(self.db)] if store else ["-r", str(self.folder)]
        result = CliRunner(env={"COLUMNS": "200"}).invoke(main, [*args, *options])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return result

    def run(self, *lines: str | bytes) -> Result:
        """``salesbot run`` on a file of these lines."""
        path = self.db.parent / "events.jsonl"
        path.write_bytes(
            b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines)
        )
        return self("run", str(path), "--quiet")


@pytest.fixture
def salesbot(write_rules: Callable[..., Path], tmp_path: Path) -> Salesbot:
    return Salesbot(write_rules(**{"team.yaml": TEAM, "bots.yaml": BOTS}), tmp_path / "salesbot.db")


def fails(result: Result, *errors: str) -> None:
    """Exit status 1, nothing on stdout, and exactly these ``error:`` lines on stderr."""
    assert (result.exit_code, result.stdout) == (1, ""), result.output
    assert result.stderr.splitlines() == [f"error: {e}" for e in errors]


def usage(result: Result, message: str) -> None:
    """Exit status 2 (a command-line usage error) and click's message."""
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1] == f"Error: {message}"


def test_run_reports_every_bad_line_goes_on_and_a_rerun_does_the_same(salesbot: Salesbot) -> None:
    path = salesbot.db.parent / "events.jsonl"
    lines: list[str | bytes] = [
        json.dumps(deal_event(1)),
        b'{"id": "e9", "kind": "created", "title": "caf\xe9"}',
        "[1, 2]",
        "17",
        '"e1"',
        '{"id": "e3", "kind": "created", "record": {"entity": "deal", "id": "d3", "value": NaN}}',
        '{"id": "e4", "kind": "created", "record": {"entity": "deal", "id": "d4", "value": -Infinity}}',
        '{"id": "e5", "kind": "created", "record": {"entity": "deal", "id": "d5", "value": 1e999}}',
        '{"id": "e6", "kind": "created", "record": {"entity": "deal", "id": "d6", "fields": {"n": '
        + "9" * 5000
        + "}}}",
        "[" * 100_000 + "]" * 100_000,
        json.dumps({**deal_event(1), "record": {**deal_event(1)["record"], "title": "other"}}),
        json.dumps({**deal_event(7), "id": "e\x1b[2J7"}, ensure_ascii=False)[:-1] + ', "x": 1}',
        '{"id": "e8", "kind": "created", "record": {"entity": "deal", "id": "d8", "title": "\\ud800"}}',
        json.dumps(deal_event(2)),
    ]
    expected = [
        f"{path}:2: not valid UTF-8 (byte 0xe9 at column 46)",
        f"{path}:3: event: not a JSON object but an array",
        f"{path}:4: event: not a JSON object but a number",
        f"{path}:5: event: not a JSON object but a string",
        f"{path}:6: not valid JSON: NaN is not a JSON number",
        f"{path}:7: not valid JSON: -Infinity is not a JSON number",
        f"{path}:8: event 'e5': field 'record.value': inf is not a finite number",
        f"{path}:9: not valid JSON: integer '99999999999999999999…' is out of range: "
        "at most ±9007199254740991",
        f"{path}:10: not valid JSON: nested deeper than 32 levels",
        f"{path}:11: event 'e1': field 'id': already processed with a different payload; the first "
        "delivery's outcome stands (a new event needs a new id)",
        Message(
            f"{path}:12: event 'e\\x1b[2J7': field 'id': {PYDANTIC}; "
            f"event 'e\\x1b[2J7': field 'x': {PYDANTIC}"
        ),
        f"{path}:13: event 'e8': field 'record.title': text holds a lone surrogate \\ud800 at position 0",
    ]
    first = salesbot.run(*lines)
    assert (first.exit_code, first.stdout) == (1, "")
    assert first.stderr.splitlines() == expected
    assert salesbot("show", "deal", "d2").stdout.splitlines()[1] == "owners: bartek"
    again = salesbot.run(*lines)
    assert (again.exit_code, again.stderr.splitlines()) == (1, expected)
    summary = salesbot("run", str(path)).stdout.splitlines()[-1]
    assert summary == "14 events: 2 duplicate, 12 rejected"


def test_run_skips_a_line_too_long_to_be_an_event_without_holding_it(salesbot: Salesbot) -> None:
    from salesbot_core.limits import MAX_LINE_BYTES

    path = salesbot.db.parent / "events.jsonl"
    huge = '{"id": "big", "kind": "created", "record": {"entity": "deal", "id": "d9", "title": "'
    huge += "x" * MAX_LINE_BYTES + '"}}'
    result = salesbot.run(json.dumps(deal_event(1)), huge, json.dumps(deal_event(2)))
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        f"{path}:2: the line is longer than {MAX_LINE_BYTES} bytes, the most an event may take"
    ]
    assert salesbot("show", "deal", "d2").stdout.splitlines()[1] == "owners: bartek"


def test_run_and_validate_with_a_broken_ruleset_or_store(salesbot: Salesbot, tmp_path: Path) -> None:
    (salesbot.folder / "bad.yaml").write_text("bots:\n  - {id: x, users: [ghost]}\n")
    problem = (
        f"{salesbot.folder / 'bad.yaml'}: bot 'x': field 'users.0': unknown user 'ghost': "
        "declare it under 'users' in a ruleset file of account 'default'"
    )
    fails(salesbot.run(json.dumps(deal_event(1))), problem)
    fails(salesbot("validate", store=False), problem)
    (salesbot.folder / "bad.yaml").unlink()
    usage(
        salesbot("run", str(tmp_path / "missing.jsonl")),
        f"Invalid value for '[EVENTS]': File '{tmp_path / 'missing.jsonl'}' does not exist.",
    )
    usage(salesbot("validate", "--colour", store=False), "No such option '--colour'.")
    salesbot.db.write_text("not a database")
    fails(
        salesbot.run(json.dumps(deal_event(1))),
        f"cannot open SQLite store '{salesbot.db}': file is not a database",
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("bots", "--account", "a\x1b[31m"), None),
        (("bot", "enable", "ghost"), "no bot 'ghost' in account 'default'"),
        (("bot", "disable", "gh\x07ost"), "no bot 'gh\\x07ost' in account 'default'"),
        (("show", "deal", "nope"), "no deal record 'nope' in account 'default'"),
        (("explain", "deal", "nope"), "salesbot has processed no event for deal 'nope' in account 'default'"),
        (
            ("assign", "deal", "d1", "--bot", "ghost", "--operation", "op"),
            "no bot 'ghost' in account 'default'",
        ),
        (
            ("assign", "deal", "nope", "--bot", "inbound", "--operation", "op"),
            "list operation 'op': no deal record 'nope' in account 'default'",
        ),
        (
            ("assign", "deal", "d1", "--bot", "inbound", "--operation", "x" * 188),
            f"list operation '{'x' * 188}': the operation id must be 1 to 187 characters long "
            "(event ids, 'list/<operation>/deal/d1', are at most 200)",
        ),
        (("simulate", "ghost"), "no bot 'ghost' in account 'default'"),
    ],
)
def test_a_user_mistake_is_an_error_line_and_exit_status_1(
    salesbot: Salesbot, args: tuple[str, ...], error: str | None
) -> None:
    assert salesbot.run(json.dumps(deal_event(1))).exit_code == 0
    result = salesbot(*args)
    if error is None:  # an account with no bots is no mistake; its name is shown escaped
        assert result.exit_code == 0
        assert "0 bots of account 'a\\x1b[31m'" in result.stdout
        return
    fails(result, error)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--quiet", "--nope"), "No such option '--nope'."),
        (("bots", "extra"), "Got unexpected extra argument (extra)"),
        (("bot", "enable"), "Missing argument 'BOT'."),
        (("bot", "disable"), "Missing argument 'BOT'."),
        (
            ("options", "lead"),
            "Invalid value for 'ENTITY': 'lead' is not one of 'deal', 'person', 'company', 'task'.",
        ),
        (
            ("show", "lead", "d1"),
            "Invalid value for 'ENTITY': 'lead' is not one of 'deal', 'person', 'company', 'task'.",
        ),
        (
            ("explain", "lead", "d1"),
            "Invalid value for 'ENTITY': 'lead' is not one of 'deal', 'person', 'company', 'task'.",
        ),
        (("assign", "deal", "d1", "--bot", "inbound"), "Missing option '--operation'."),
        (
            ("outbox", "list", "--limit", "0"),
            "Invalid value for '--limit': 0 is not in the range 1<=x<=10000.",
        ),
        (("outbox", "mark-delivered", "one"), "Invalid value for 'ID...': 'one' is not a valid integer."),
        (("outbox", "mark-delivered"), "Missing argument 'ID...'."),
        (
            ("simulate", "inbound", "--count", "3", "--records", "{events}"),
            "--count and --records cannot be used together",
        ),
        (
            ("simulate", "inbound", "--count", "0"),
            "Invalid value for '--count' / '-n': 0 is not in the range x>=1.",
        ),
    ],
)
def test_a_command_line_usage_error_is_exit_status_2(
    salesbot: Salesbot, args: tuple[str, ...], message: str
) -> None:
    salesbot.run(json.dumps(deal_event(1)))  # also writes events.jsonl for --records
    events = str(salesbot.db.parent / "events.jsonl")
    usage(salesbot(*(arg.format(events=events) for arg in args)), message)


def test_outbox_and_options_with_a_store_that_cannot_be_opened(salesbot: Salesbot) -> None:
    salesbot.db.write_text("not a database")
    error = f"cannot open SQLite store '{salesbot.db}': file is not a database"
    for args in (("outbox", "mark-delivered", "1"), ("options", "deal"), ("bots",)):
        fails(salesbot(*args), error)
    # outbox list only reads: it opens the store read-only, and says so.
    read_only = f"cannot open SQLite store '{salesbot.db}' read-only: file is not a database"
    fails(salesbot("outbox", "list"), read_only)


def test_show_and_explain_escape_control_characters_from_the_crm(salesbot: Salesbot) -> None:
    title = "Evil\x1b]0;pwned\x07 deal\u202e"
    event = deal_event(1, title=title, fields={"colour\x1b[31m": "red\x00"})
    assert salesbot.run(json.dumps(event)).exit_code == 0
    shown = salesbot("show", "deal", "d1").stdout.splitlines()
    assert "title: Evil\\x1b]0;pwned\\x07 deal\\u202e" in shown
    assert "fields.colour\\x1b[31m: red\\x00" in shown
    assert shown[-1].endswith("bot:inbound  Got Evil\\x1b]0;pwned\\x07 deal\\u202e")
    explained = salesbot("explain", "deal", "d1").stdout
    assert "    wall note: Got Evil\\x1b]0;pwned\\x07 deal\\u202e\n" in explained
    assert "\x1b" not in explained + "\n".join(shown)
