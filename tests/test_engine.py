"""The engine end to end: triggers, candidates, idempotency, bad events, host plugins."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from factories import PYDANTIC, TEAM, Message, deal_event
from salesbot_core import Engine, EventError, Outcome, Pick, Skip, StoreError, hookimpl
from salesbot_core.fields import FieldSpec, answers_for
from salesbot_plugins.sqlite_store import SCHEMA_VERSION as SQLITE_VERSION

TRIGGERED = (
    TEAM
    + """
settings: {multiple_owners: true}
bots:
  - id: sales
    users: [anna, bartek]
    trigger: {events: [created], processes: [Sales, Partners]}
  - id: paused
    active: false
    users: [anna]
  - id: people
    entity: person
    users: [jan]
  - id: ghosts
    users: [olga]
"""
)


@pytest.fixture
def triggered(write_rules, tmp_path: Path):
    with Engine(write_rules(**{"t.yaml": TRIGGERED}), tmp_path / "s.db") as engine:
        yield engine


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            deal_event(1, ["bot:sales"], process="Support"),
            "process 'Support' is not one of ['Sales', 'Partners']",
        ),
        (deal_event(1, ["bot:sales"], process=None), "process None is not one of ['Sales', 'Partners']"),
        (
            deal_event(1, ["bot:sales"], kind="updated", process="Sales"),
            "the bot does not fire on 'updated' events",
        ),
        (deal_event(1, ["bot:paused"]), "the bot is switched off"),
        (deal_event(1, ["bot:people"]), "the bot handles person records, not deal records"),
    ],
)
def test_a_bot_that_does_not_apply_is_removed_and_says_why(triggered: Engine, event, reason) -> None:
    outcome = triggered.handle(event)
    assert outcome.owners_after == []
    (decision,) = outcome.decisions
    assert (decision.status, decision.reason, decision.owner) == ("not_applied", reason, None)


def test_processes_filter_accepts_each_listed_process(triggered: Engine) -> None:
    owners = [
        triggered.handle(deal_event(n, ["bot:sales"], process=p)).owners_after
        for n, p in enumerate(["Sales", "Partners", "Sales"])
    ]
    assert owners == [["anna"], ["bartek"], ["anna"]]


def test_a_pool_with_nobody_eligible_assigns_nobody(triggered: Engine) -> None:
    triggered.handle(deal_event(1, ["jan"]))
    outcome = triggered.handle(
        {
            **deal_event(2, ["bot:ghosts"], kind="updated"),
            "record": {"entity": "deal", "id": "d1", "owners": ["bot:ghosts"]},
        }
    )
    assert outcome.owners_after == ["jan"]
    (decision,) = outcome.decisions
    assert decision.status == "no_candidate"
    assert decision.skipped == [Skip(user="olga", reason="user is deactivated")]


def test_a_bot_beside_other_owners_is_replaced_in_place(triggered: Engine) -> None:
    outcome = triggered.handle(deal_event(1, ["jan", "bot:sales", "celina"], process="Sales"))
    assert outcome.owners_after == ["jan", "anna", "celina"]
    again = triggered.handle(deal_event(2, ["bartek", "bot:sales"], process="Sales"))
    # bartek, next in rotation, already owns it: he is skipped, and the next user is added.
    assert again.owners_after == ["bartek", "anna"]
    assert again.decisions[0].skipped[0].reason == "already an owner of the record"


def test_a_redelivered_event_returns_its_first_outcome_and_changes_nothing(engine: Engine) -> None:
    first = engine.handle(deal_event(1))
    again = engine.handle(deal_event(1))
    assert again.duplicate is True and first.duplicate is False
    assert again.model_copy(update={"duplicate": False}) == first
    assert engine.handle(deal_event(2)).owners_after == ["bartek"]
    assert engine.store.assignment_counts() == [
        ("default", "inbound", "anna", 1),
        ("default", "inbound", "bartek", 1),
    ]


def test_a_record_without_bot_is_stored_untouched(triggered: Engine) -> None:
    outcome = triggered.handle(deal_event(1, ["jan", "anna"], title="Warsztat"))
    assert (outcome.owners_after, outcome.decisions) == (["jan", "anna"], [])
    stored = triggered.store.get_record("default", "deal", "d1")
    assert stored is not None and (stored["owners"], stored["title"]) == (["jan", "anna"], "Warsztat")


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            {"kind": "created", "record": {"entity": "deal", "id": "d1"}},
            Message(f"event: field 'id': {PYDANTIC}"),
        ),
        (
            {"id": "e1", "kind": "deleted", "record": {"entity": "deal", "id": "d1"}},
            Message(f"event 'e1': field 'kind': {PYDANTIC}"),
        ),
        (
            {"id": "e1", "kind": "created", "record": {"entity": "lead", "id": "d1"}},
            Message(f"event 'e1': field 'record': {PYDANTIC}'lead'{PYDANTIC}"),
        ),
        (
            {"id": "e1", "kind": "created", "record": {"entity": "deal", "id": "d1", "value": "lots"}},
            Message(f"event 'e1': field 'record.deal.value': {PYDANTIC}"),
        ),
        (
            deal_event(1, ["bot:nobot"]),
            "event 'e1': field 'record.owners.0': 'bot:nobot' is not a bot of account 'default'",
        ),
        (
            deal_event(1, ["zofia"]),
            "event 'e1': field 'record.owners.0': 'zofia' is not a user of account 'default'",
        ),
        (
            {**deal_event(1), "account": "acme"},
            "event 'e1': field 'record.owners.0': 'bot:inbound' is not a bot of account 'acme'",
        ),
    ],
)
def test_a_bad_event_is_rejected_naming_the_field_and_changes_nothing(engine: Engine, event, message) -> None:
    with pytest.raises(EventError) as info:
        engine.handle(event)
    assert str(info.value) == message
    assert engine.store.get_record("default", "deal", "d1") is None
    assert engine.store.assignment_counts() == []
    assert engine.handle(deal_event(2)).owners_after == ["anna"]  # rotation untouched


class HolidayCalendar:
    """A host plugin: bartek is on holiday; every outcome is reported to the host."""

    def __init__(self) -> None:
        self.seen: list[Outcome] = []

    @hookimpl
    def salesbot_skip_candidate(self, bot, record, user):
        return "on holiday" if user.id == "bartek" else None

    @hookimpl
    def salesbot_after_assign(self, outcome):
        self.seen.append(outcome)


def test_host_plugins_filter_candidates_and_observe_outcomes(deal_bot_rules: Path, tmp_path: Path) -> None:
    calendar = HolidayCalendar()
    with Engine(deal_bot_rules, tmp_path / "s.db", plugins=[calendar]) as engine:
        owners = [engine.handle(deal_event(n)).owners_after[0] for n in range(4)]
        engine.handle(deal_event(0))  # a duplicate is not reported again
    assert owners == ["anna", "celina", "anna", "celina"]
    assert [o.event_id for o in calendar.seen] == ["e0", "e1", "e2", "e3"]
    assert calendar.seen[0].decisions[0].skipped == [Skip(user="bartek", reason="on holiday")]


class Says:
    """A host plugin skipping one candidate with its own words."""

    def __init__(self, user: str, reason: str) -> None:
        self.user, self.reason = user, reason

    @hookimpl
    def salesbot_skip_candidate(self, user):
        return self.reason if user.id == self.user else None


class Overrules:
    """A wrapper around the other implementations: nobody is skipped for being busy."""

    @hookimpl(wrapper=True)
    def salesbot_skip_candidate(self, user):
        reason = yield
        return None if reason == "busy" else reason


def test_per_candidate_hooks_keep_pluggys_order_wrappers_and_late_plugins(
    deal_bot_rules: Path, tmp_path: Path
) -> None:
    # The engine calls per-candidate hooks without pluggy's call machinery: the same answers.
    first, last = Says("anna", "busy"), Says("anna", "on a call")
    with Engine(deal_bot_rules, tmp_path / "s.db", plugins=[first, last]) as engine:
        (decision,) = engine.handle(deal_event(1)).decisions
        # The last registered answers first, as pluggy calls them.
        assert (decision.owner, decision.skipped) == ("bartek", [Skip(user="anna", reason="on a call")])
        engine.registry.pm.unregister(last)
        engine.registry.pm.register(Says("bartek", "at lunch"))  # after the engine was built
        (decision,) = engine.handle(deal_event(2)).decisions
        assert (decision.owner, [s.reason for s in decision.skipped]) == ("celina", ["busy", "at lunch"])
        engine.registry.pm.register(Overrules())
        (decision,) = engine.handle(deal_event(3)).decisions
        assert (decision.owner, [s.reason for s in decision.skipped]) == ("anna", ["at lunch"])


class PicksLast:
    """A preselect plugin taking some of the hook's arguments, in an order of its own."""

    @hookimpl
    def salesbot_preselect(self, candidates, bot):
        return Pick(candidates[-1], reason=f"{bot.id} picks the last")


def test_per_decision_hooks_pass_each_plugin_its_arguments_and_see_late_plugins(
    deal_bot_rules: Path, tmp_path: Path
) -> None:
    # The engine calls firstresult hooks without pluggy's call machinery, each plugin
    # given the arguments it names, and notices a plugin registered or unregistered since.
    with Engine(deal_bot_rules, tmp_path / "s.db") as engine:
        assert engine.handle(deal_event(1)).owners_after == ["anna"]
        late = PicksLast()
        engine.registry.pm.register(late)
        (decision,) = engine.handle(deal_event(2)).decisions
        assert (decision.owner, decision.reason) == ("celina", "inbound picks the last")
        engine.registry.pm.unregister(late)
        # A preselect plugin leaves the rotation where it was: bartek follows anna.
        assert engine.handle(deal_event(3)).owners_after == ["bartek"]


ON_CALL: FieldSpec[str | None] = FieldSpec("user", "on_call", str | None, default=None)
LATE_SHIFT: FieldSpec[bool] = FieldSpec("bot", "late_shift", bool, default=False)


class OnCall:
    """A host plugin answering only about users with ``on_call`` set, or for a bot with a
    ``late_shift``, and saying so (``answers_for``); it notes whom it was asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    @hookimpl
    def salesbot_ruleset_fields(self):
        return [ON_CALL, LATE_SHIFT]

    @hookimpl
    @answers_for(ON_CALL, LATE_SHIFT)
    def salesbot_skip_candidate(self, bot, user):
        self.asked.append(user.id)
        return f"on call: {ON_CALL.get(user)}" if ON_CALL.get(user) else None


class Asked:
    """A host plugin that declares nothing: asked about every candidate."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    @hookimpl
    def salesbot_user_available(self, user):
        self.asked.append(user.id)


def test_a_hook_implementation_declaring_its_fields_is_asked_only_where_they_are_set(
    write_rules: Callable[..., Path], tmp_path: Path
) -> None:
    team = TEAM.replace("{id: bartek, name: Bartek Wiśniewski}", "{id: bartek, on_call: support}")
    bot = "bots:\n  - {id: inbound, entity: deal, users: [anna, bartek, celina], strategy: round_robin%s}\n"
    rules = write_rules(**{"team.yaml": team, "inbound.yaml": bot % ""})
    on_call, asked = OnCall(), Asked()
    with Engine(rules, tmp_path / "s.db", plugins=[on_call, asked]) as engine:
        (decision,) = engine.handle(deal_event(1)).decisions
        skip = Skip(user="bartek", reason="on call: support")
        assert (decision.owner, decision.skipped) == ("anna", [skip])
        assert (on_call.asked, asked.asked) == (["bartek"], ["anna", "celina"])
    # A bot that sets a field it declares has it asked about every candidate.
    (rules / "inbound.yaml").write_text(bot % ", late_shift: true")
    on_call.asked.clear()
    with Engine(rules, tmp_path / "s2.db", plugins=[on_call, asked]) as engine:
        assert engine.handle(deal_event(1)).owners_after == ["anna"]
        assert on_call.asked == ["anna", "bartek", "celina"]
        # A wrapper wraps every implementation: all of them are called again.
        on_call.asked.clear()
        engine.registry.pm.register(Overrules())
        assert engine.handle(deal_event(2)).owners_after == ["celina"]
        assert on_call.asked == ["anna", "bartek", "celina"]


def test_blocking_a_builtin_plugin_by_name(deal_bot_rules: Path, tmp_path: Path) -> None:
    rules = deal_bot_rules
    (rules / "team.yaml").write_text(TEAM + "bots:\n  - {id: lis, users: [olga, anna]}\n")
    with Engine(rules, tmp_path / "a.db") as normal:
        assert normal.handle(deal_event(1, ["bot:lis"])).owners_after == ["anna"]
    with Engine(rules, tmp_path / "b.db", block=["salesbot_plugins.eligibility"]) as unfiltered:
        assert unfiltered.handle(deal_event(1, ["bot:lis"])).owners_after == ["olga"]


def test_a_store_that_cannot_be_opened_is_a_clear_error(deal_bot_rules: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "x.db"
    garbage.write_text("not a database")
    with pytest.raises(StoreError) as info:
        Engine(deal_bot_rules, garbage)
    assert str(info.value) == f"cannot open SQLite store '{garbage}': file is not a database"
    with pytest.raises(StoreError) as info:
        Engine(deal_bot_rules, "mysql://localhost/crm")
    assert str(info.value) == "no store plugin handles 'mysql://localhost/crm'"
    with pytest.raises(StoreError) as info:
        Engine(deal_bot_rules, f"sqlite:///{tmp_path / 'y.db'}?synchronous=SOMETIMES")
    assert str(info.value).endswith("synchronous must be one of FULL, NORMAL, EXTRA, OFF")


def test_a_database_from_the_first_schema_is_migrated(deal_bot_rules: Path, tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        """
        CREATE TABLE records (account TEXT NOT NULL, entity TEXT NOT NULL, id TEXT NOT NULL,
            data TEXT NOT NULL, PRIMARY KEY (account, entity, id)) WITHOUT ROWID;
        CREATE TABLE outcomes (seq INTEGER PRIMARY KEY, account TEXT NOT NULL, event_id TEXT NOT NULL,
            entity TEXT NOT NULL, record_id TEXT NOT NULL, outcome TEXT NOT NULL,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            UNIQUE (account, event_id));
        CREATE TABLE assignments (seq INTEGER NOT NULL, account TEXT NOT NULL, bot TEXT NOT NULL,
            user TEXT NOT NULL);
        INSERT INTO records VALUES ('default', 'deal', 'd0',
            '{"entity": "deal", "id": "d0", "owners": ["celina"]}');
        INSERT INTO outcomes (seq, account, event_id, entity, record_id, outcome, created_at)
            VALUES (1, 'default', 'old', 'deal', 'd0', '{}', '2026-01-05T10:00:00.000Z');
        INSERT INTO assignments VALUES (1, 'default', 'inbound', 'celina');
        """
    )
    conn.close()
    with Engine(deal_bot_rules, db) as engine:
        assert engine.handle(deal_event(1)).owners_after == ["anna"]
        with engine.store.transaction() as tx:
            assert tx.open_load("default", "deal", ["anna", "celina"]) == {"anna": 1, "celina": 1}
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone() == (SQLITE_VERSION,)
    # Version 3 indexed every outcome under the records it changed, the old ones included.
    assert conn.execute("SELECT * FROM outcome_records ORDER BY seq").fetchall() == [
        ("default", "deal", "d0", 1),
        ("default", "deal", "d1", 2),
    ]
    assert conn.execute("SELECT at FROM assignments WHERE seq = 1").fetchone() == (
        "2026-01-05T10:00:00.000Z",
    )
    conn.close()
