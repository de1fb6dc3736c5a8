"""Issue 16: bot schedules, as Frappe's rule days: a bot works on some weekdays and hours of
the account's time zone (``settings.timezone``), daylight saving included."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml

from factories import PYDANTIC, Message
from salesbot_core import Decision, Engine, RulesetError
from salesbot_core.registry import make_plugin_manager
from salesbot_core.schema import ruleset_schema

RULES = """
settings: {timezone: Europe/Warsaw}
users:
  - {id: anna}
  - {id: jan}
bots:
  - id: office
    users: [anna]
    schedule: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00"}
  - id: night
    priority: 1
    users: [jan]
"""


@pytest.fixture
def engine(write_rules: Callable[..., Path], tmp_path: Path) -> Iterator[Engine]:
    with Engine(write_rules(**{"a.yaml": RULES}), tmp_path / "salesbot.db") as engine:
        yield engine


def route(engine: Engine, at: str, owners: list[str] | None = None) -> list[Decision]:
    record = {"entity": "deal", "id": "d-" + at.replace(":", "."), "owners": owners or []}
    outcome = engine.route({"id": f"e-{at}", "kind": "created", "at": at, "record": record})
    return outcome.decisions


def test_rule_days_outside_schedule_does_not_apply(engine: Engine) -> None:
    # Saturday 2026-03-28, 12:00 in Warsaw (CET, UTC+1).
    office, night = route(engine, "2026-03-28T11:00:00Z")
    assert office == Decision(
        bot="office",
        status="not_applied",
        reason="outside the bot's schedule: it does not work on sat (Europe/Warsaw)",
    )
    assert (night.bot, night.status, night.owner) == ("night", "assigned", "jan")


def test_rule_days_inside_schedule_applies(engine: Engine) -> None:
    # Monday 2026-03-23, 12:00 in Warsaw.
    (office,) = route(engine, "2026-03-23T11:00:00Z")
    assert (office.bot, office.status, office.owner) == ("office", "assigned", "anna")


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        # Monday 08:59 and 17:00 in Warsaw (CET): the end is not included.
        ("2026-03-23T07:59:00Z", "it works 09:00-17:00, not at 08:59 (Europe/Warsaw)"),
        ("2026-03-23T16:00:00Z", "it works 09:00-17:00, not at 17:00 (Europe/Warsaw)"),
        # Friday 23:30 UTC is already Saturday 00:30 in Warsaw.
        ("2026-03-27T23:30:00Z", "it does not work on sat (Europe/Warsaw)"),
    ],
)
def test_rule_hours_are_the_account_time_zone(engine: Engine, at: str, reason: str) -> None:
    office, night = route(engine, at)
    assert office.reason == f"outside the bot's schedule: {reason}"
    assert night.owner == "jan"


@pytest.mark.parametrize(
    ("at", "owner"),
    [
        # 07:30 UTC is 08:30 in Warsaw in winter time (CET) ...
        ("2026-03-23T07:30:00Z", "jan"),
        # ... and 09:30 after the change to summer time on 2026-03-29 (CEST, UTC+2).
        ("2026-03-30T07:30:00Z", "anna"),
        # 15:30 UTC: 16:30 in winter, 17:30 in summer.
        ("2026-03-23T15:30:00Z", "anna"),
        ("2026-03-30T15:30:00Z", "jan"),
    ],
)
def test_schedule_follows_daylight_saving_time(engine: Engine, at: str, owner: str) -> None:
    assert route(engine, at)[-1].owner == owner


def test_outside_schedule_a_bot_in_the_owner_field_leaves_the_previous_owner(engine: Engine) -> None:
    record = {"entity": "deal", "id": "d1", "owners": []}
    engine.route({"id": "e1", "kind": "created", "at": "2026-03-28T11:00:00Z", "record": record})
    outcome = engine.handle(
        {
            "id": "e2",
            "kind": "updated",
            "at": "2026-03-28T11:05:00Z",
            "record": {**record, "owners": ["bot:office"]},
        }
    )
    assert outcome.owners_after == ["jan"]
    assert outcome.decisions == [
        Decision(
            bot="office",
            status="not_applied",
            reason="outside the bot's schedule: it does not work on sat (Europe/Warsaw)",
        )
    ]


def test_an_account_without_a_time_zone_keeps_schedules_in_utc(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    folder = write_rules(**{"a.yaml": RULES.replace("settings: {timezone: Europe/Warsaw}\n", "")})
    with Engine(folder, tmp_path / "salesbot.db") as engine:
        # Monday 08:30 UTC (09:30 in Warsaw): outside 09:00-17:00 UTC.
        office, _ = route(engine, "2026-03-23T08:30:00Z")
        assert office.reason == "outside the bot's schedule: it works 09:00-17:00, not at 08:30 (UTC)"


def test_schedule_without_end_runs_to_midnight(write_rules: Callable[..., Path], tmp_path: Path) -> None:
    folder = write_rules(**{"a.yaml": RULES.replace(', end: "17:00"', "")})
    with Engine(folder, tmp_path / "salesbot.db") as engine:
        assert route(engine, "2026-03-23T22:59:00Z")[0].owner == "anna"  # 23:59 in Warsaw
        assert route(engine, "2026-03-23T07:59:00Z")[0].reason == (
            "outside the bot's schedule: it works 09:00-24:00, not at 08:59 (Europe/Warsaw)"
        )


def problems(folder: Path, tmp_path: Path) -> list[str]:
    with pytest.raises(RulesetError) as info:
        Engine(folder, tmp_path / "salesbot.db")
    assert not (tmp_path / "salesbot.db").exists()
    return [str(p) for p in info.value.problems]


def test_a_bad_time_zone_or_schedule_names_file_bot_and_field(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    bad = RULES.replace("Europe/Warsaw", "Mars/Olympus").replace('"09:00"', '"18:00"')
    folder = write_rules(**{"a.yaml": bad.replace("mon, tue", "mon, someday")})
    assert problems(folder, tmp_path) == [
        Message(f"{folder / 'a.yaml'}: bot 'office': field 'schedule.days.1': {PYDANTIC}"),
        Message(
            f"{folder / 'a.yaml'}: field 'settings.timezone': {PYDANTIC}unknown time zone 'Mars/Olympus'"
        ),
    ]
    folder = write_rules(**{"a.yaml": bad.replace("Mars/Olympus", "UTC")})
    assert problems(folder, tmp_path) == [
        Message(f"{folder / 'a.yaml'}: bot 'office': field 'schedule': {PYDANTIC}start must be before end")
    ]


def test_salesbot_schema_describes_the_routing_sections() -> None:
    """Editors complete and check the routing rules as the admin types."""
    schema = ruleset_schema(make_plugin_manager(autoload=False).catalog())
    validator = jsonschema.Draft202012Validator(schema)
    good = yaml.safe_load(RULES)
    good["bots"][0] |= {
        "fall_through": True,
        "unassign": {"then": "reroute"},
        "trigger": {"owned": "reassign"},
    }
    assert list(validator.iter_errors(good)) == []
    bad = yaml.safe_load(RULES)
    bad["settings"]["timezone"] = 7
    bad["bots"][0] |= {
        "fall_through": "yes",
        "unassign": {"then": "forget"},
        "schedule": {"days": ["someday"]},
        "trigger": {"owned": "steal"},
    }
    assert sorted(".".join(map(str, e.absolute_path)) for e in validator.iter_errors(bad)) == [
        "bots.0.fall_through",
        "bots.0.schedule",
        "bots.0.trigger.owned",
        "bots.0.unassign",
        "settings",  # the timezone: settings may be null, so the anyOf reports it here
    ]
