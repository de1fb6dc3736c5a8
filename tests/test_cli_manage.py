"""The managing commands of ``salesbot`` (bots, bot enable/disable, options, show, assign,
outbox), run as a user runs them on a ruleset folder and a store file, in this process
through click's runner (tests/test_cli.py runs the installed command once)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from factories import TEAM, deal_event
from salesbot_core.cli import main

TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"

BOTS = """
settings: {multiple_owners: false}
bots:
  - id: inbound
    name: Inbound leads
    entity: deal
    users: [anna, bartek, celina]
    actions:
      tag: inbound-lead
      note: "Assigned to {owner.name} by {bot.name}"
      notify: "New deal {record.title} is yours"
  - id: partners
    name: Partner contacts
    entity: person
    users: [jan, celina]
"""

#: An account whose Sales Bot add-on is switched off.
ACME = """
account: acme
settings: {enabled: false}
users: [{id: zed, name: Zed Zet}]
bots:
  - {id: sales, users: [zed]}
"""


@dataclass
class Salesbot:
    """Runs ``salesbot`` on one ruleset folder and one store file."""

    folder: Path
    db: Path

    def __call__(self, *args: str) -> Result:
        result = CliRunner(env={"COLUMNS": "200"}).invoke(
            main, [*args, "-r", str(self.folder), "--db", str(self.db)]
        )
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return result

    def feed(self, *events: dict[str, Any]) -> Result:
        """Process ``events`` with ``salesbot run``."""
        path = self.db.parent / "events.jsonl"
        path.write_text("".join(json.dumps(event) + "\n" for event in events), encoding="utf-8")
        result = self("run", str(path))
        assert result.exit_code == 0, result.stderr
        return result


@pytest.fixture
def salesbot(write_rules: Callable[..., Path], tmp_path: Path) -> Salesbot:
    folder = write_rules(**{"team.yaml": TEAM, "bots.yaml": BOTS, "acme.yaml": ACME})
    return Salesbot(folder, tmp_path / "salesbot.db")


def ok(result: Result) -> list[str]:
    """The stdout lines of a command that must succeed without a word on stderr."""
    assert (result.exit_code, result.stderr) == (0, ""), result.stderr
    return result.stdout.splitlines()


def rows(lines: list[str]) -> list[list[str]]:
    """The body rows of the rich tables in ``lines``, each as its stripped cells."""
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines if line.startswith("│")]


def fails(result: Result, message: str) -> None:
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"error: {message}\n"


def test_bots_lists_every_bot_and_switches_change_active_and_owner_options(salesbot: Salesbot) -> None:
    bots_file = str(salesbot.folder / "bots.yaml")
    inbound = ["inbound", "Inbound leads", "deal", "round_robin", "anna, bartek, celina"]
    partners = ["partners", "Partner contacts", "person", "round_robin", "jan, celina"]
    lines = ok(salesbot("bots"))
    assert lines[0].strip() == "2 bots of account 'default'"
    assert rows(lines) == [[*inbound, "yes", bots_file], [*partners, "yes", bots_file]]
    assert ok(salesbot("options", "deal")) == ["bot:inbound\tInbound leads"]
    assert ok(salesbot("options", "person")) == ["bot:partners\tPartner contacts"]
    assert ok(salesbot("options", "company")) == []

    assert ok(salesbot("bot", "disable", "inbound")) == ["bot 'inbound' of account 'default' is now disabled"]
    assert rows(ok(salesbot("bots"))) == [[*inbound, "no", bots_file], [*partners, "yes", bots_file]]
    assert ok(salesbot("options", "deal")) == []
    assert ok(salesbot("options", "person")) == ["bot:partners\tPartner contacts"]

    assert ok(salesbot("bot", "enable", "inbound")) == ["bot 'inbound' of account 'default' is now enabled"]
    assert rows(ok(salesbot("bots"))) == [[*inbound, "yes", bots_file], [*partners, "yes", bots_file]]
    assert ok(salesbot("options", "deal")) == ["bot:inbound\tInbound leads"]


def test_bots_of_an_account_with_the_add_on_switched_off(salesbot: Salesbot) -> None:
    lines = ok(salesbot("bots", "--account", "acme"))
    assert rows(lines) == [
        ["sales", "sales", "deal", "round_robin", "zed", "yes", str(salesbot.folder / "acme.yaml")]
    ]
    assert lines[-1] == (
        "The Sales Bot add-on is switched off for account 'acme': no bot fires "
        "and none is offered as an owner."
    )
    assert ok(salesbot("options", "deal", "--account", "acme")) == []
    assert "switched off" not in ok(salesbot("bots"))[-1]


def test_bot_switch_of_an_unknown_bot_is_an_error(salesbot: Salesbot) -> None:
    fails(salesbot("bot", "enable", "ghost"), "no bot 'ghost' in account 'default'")
    fails(salesbot("bot", "disable", "inbound", "--account", "acme"), "no bot 'inbound' in account 'acme'")


def test_a_broken_ruleset_folder_is_an_error_line(salesbot: Salesbot) -> None:
    (salesbot.folder / "bad.yaml").write_text("bots:\n  - {id: x, users: [ghost]}\n")
    fails(
        salesbot("bots"),
        f"{salesbot.folder / 'bad.yaml'}: bot 'x': field 'users.0': unknown user "
        "'ghost': declare it under 'users' in a ruleset file of account 'default'",
    )


def test_show_prints_owners_tags_fields_and_the_wall(salesbot: Salesbot) -> None:
    salesbot.feed(deal_event(1, title="Acme", fields={"source": "web"}), deal_event(2, title="Beta"))
    lines = ok(salesbot("show", "deal", "d2"))
    assert lines[:-1] == [
        "deal d2 in account 'default'",
        "owners: bartek",
        "tags: inbound-lead",
        "open: true",
        "title: Beta",
        "persons: (none)",
        "wall: 1 note",
    ]
    assert re.fullmatch(
        rf"  {TIMESTAMP}  bot:inbound  Assigned to Bartek Wiśniewski by Inbound leads", lines[-1]
    ), lines[-1]
    assert ok(salesbot("show", "deal", "d1"))[1:7] == [
        "owners: anna",
        "tags: inbound-lead",
        "open: true",
        "title: Acme",
        "persons: (none)",
        "fields.source: web",
    ]


def test_show_an_unknown_record_is_an_error(salesbot: Salesbot) -> None:
    salesbot.feed(deal_event(1))
    fails(salesbot("show", "deal", "x"), "no deal record 'x' in account 'default'")
    fails(salesbot("show", "person", "d1"), "no person record 'd1' in account 'default'")
    fails(salesbot("show", "deal", "d1", "--account", "acme"), "no deal record 'd1' in account 'acme'")


def test_assign_picks_each_record_in_turn_and_a_repeated_operation_changes_nothing(
    salesbot: Salesbot,
) -> None:
    fed = salesbot.feed(*(deal_event(n, ["jan"], title=f"Deal {n}") for n in (1, 2, 3)))
    assert fed.stdout.splitlines()[-1] == "3 events: 3 no bot, 0 rejected"
    assert [ok(salesbot("show", "deal", f"d{n}"))[1] for n in (1, 2, 3)] == ["owners: jan"] * 3

    first = ok(salesbot("assign", "deal", "d1", "d2", "d3", "--bot", "inbound", "--operation", "op1"))
    assert first[:3] == ["d1: anna", "d2: bartek", "d3: celina"]
    assert rows(first) == [["default", "inbound", user, "1", "1"] for user in ("anna", "bartek", "celina")]
    assert first[-1] == "3 events: 3 assigned, 0 rejected"

    again = ok(salesbot("assign", "deal", "d1", "d2", "d3", "--bot", "inbound", "--operation", "op1"))
    assert again[:3] == ["d1: anna", "d2: bartek", "d3: celina"]
    assert rows(again) == [["default", "inbound", user, "0", "1"] for user in ("anna", "bartek", "celina")]
    assert again[-1] == "3 events: 3 duplicate, 0 rejected"

    for n, user in ((1, "anna"), (2, "bartek"), (3, "celina")):
        shown = ok(salesbot("show", "deal", f"d{n}"))
        assert shown[1:3] == [f"owners: {user}", "tags: inbound-lead"]
        assert shown[-2] == "wall: 1 note"
    pending = [json.loads(line) for line in ok(salesbot("outbox", "list", "--json"))]
    assert [(n["user"], n["text"], n["event_id"]) for n in pending] == [
        ("anna", "New deal Deal 1 is yours", "list/op1/deal/d1"),
        ("bartek", "New deal Deal 2 is yours", "list/op1/deal/d2"),
        ("celina", "New deal Deal 3 is yours", "list/op1/deal/d3"),
    ]


def test_assign_with_an_unknown_record_changes_nothing(salesbot: Salesbot) -> None:
    salesbot.feed(deal_event(1, ["jan"], title="Deal 1"), deal_event(2, ["jan"], title="Deal 2"))
    fails(
        salesbot("assign", "deal", "d1", "nope", "d2", "--bot", "inbound", "--operation", "op1"),
        "list operation 'op1': no deal record 'nope' in account 'default'",
    )
    assert ok(salesbot("show", "deal", "d1"))[1:3] == ["owners: jan", "tags: (none)"]
    assert ok(salesbot("outbox", "list", "--json")) == []
    # Nothing of op1 was logged: the same operation id still assigns, starting the rotation.
    assert ok(salesbot("assign", "deal", "d2", "--bot", "inbound", "--operation", "op1", "--quiet")) == [
        "d2: anna"
    ]


def test_assign_with_an_unknown_or_switched_off_bot(salesbot: Salesbot) -> None:
    salesbot.feed(deal_event(1, ["jan"]))
    fails(
        salesbot("assign", "deal", "d1", "--bot", "ghost", "--operation", "op1"),
        "no bot 'ghost' in account 'default'",
    )
    ok(salesbot("bot", "disable", "inbound"))
    lines = ok(salesbot("assign", "deal", "d1", "--bot", "inbound", "--operation", "op2"))
    assert lines[0] == "d1: not assigned (the bot is switched off)"
    assert lines[-1] == "1 events: 1 not applied, 0 rejected"
    assert ok(salesbot("show", "deal", "d1"))[1] == "owners: jan"
    assert ok(salesbot("assign", "deal", "d1", "--bot", "partners", "--operation", "op3", "-q")) == [
        "d1: not assigned (the bot handles person records, not deal records)"
    ]


def test_outbox_lists_pending_notifications_until_marked_delivered(salesbot: Salesbot) -> None:
    salesbot.feed(deal_event(1, title="Acme"), deal_event(2, title="Beta"))
    pending = [json.loads(line) for line in ok(salesbot("outbox", "list", "--json"))]
    for notification in pending:
        assert re.fullmatch(TIMESTAMP, notification.pop("created_at"))
    assert pending == [
        {
            "id": 1,
            "account": "default",
            "user": "anna",
            "text": "New deal Acme is yours",
            "event_id": "e1",
            "entity": "deal",
            "record_id": "d1",
            "delivered_at": None,
        },
        {
            "id": 2,
            "account": "default",
            "user": "bartek",
            "text": "New deal Beta is yours",
            "event_id": "e2",
            "entity": "deal",
            "record_id": "d2",
            "delivered_at": None,
        },
    ]
    first = ok(salesbot("outbox", "list", "--json", "--limit", "1"))
    assert [json.loads(line)["id"] for line in first] == [1]
    assert ok(salesbot("outbox", "list", "--json", "--account", "acme")) == []

    table = ok(salesbot("outbox", "list"))
    assert table[0].strip() == "2 pending notifications"
    assert [row[:5] for row in rows(table)] == [
        ["1", "default", "anna", "deal d1", "New deal Acme is yours"],
        ["2", "default", "bartek", "deal d2", "New deal Beta is yours"],
    ]
    assert all(re.fullmatch(TIMESTAMP, row[5]) for row in rows(table))

    assert ok(salesbot("outbox", "mark-delivered", "--account", "acme", "1")) == [
        "marked 0 of 1 delivered",
        "not pending or not in account 'acme': 1",
    ]
    assert ok(salesbot("outbox", "mark-delivered", "1", "2", "7")) == [
        "marked 2 of 3 delivered",
        "not pending or not in account 'default': 7",
    ]
    assert ok(salesbot("outbox", "list", "--json")) == []
    assert rows(ok(salesbot("outbox", "list"))) == []
    assert ok(salesbot("outbox", "mark-delivered", "-a", "default", "1")) == [
        "marked 0 of 1 delivered",
        "not pending or not in account 'default': 1",
    ]
