"""Everything the Sales Bot add-on does: entities, accounts and plans, triggers, linked
records, tag, wall note and notification."""

from __future__ import annotations

from pathlib import Path

import pytest

from factories import PYDANTIC, TEAM, Message, deal_event
from salesbot_core import Engine, EventError, RulesetError, hookimpl


def rules_with(write_rules, settings: str, bot: str, team: str = TEAM) -> Path:
    return write_rules(**{"account.yaml": team + f"settings: {settings}\nbots:\n" + bot})


WARSZTAT_BOT = """
  - id: warsztat
    name: Warsztat bot
    users: [anna, bartek]
    actions:
      related: {{company: true, persons: true, mode: {mode}}}
"""


def seed_warsztat(engine: Engine) -> None:
    """Company "Warsztat" and its deal, both owned by Jan Kowalski, as the seed describes."""
    engine.handle(
        {
            "id": "c-created",
            "kind": "created",
            "record": {"entity": "company", "id": "warsztat", "name": "Warsztat", "owners": ["jan"]},
        }
    )
    engine.handle(
        {
            "id": "d-created",
            "kind": "created",
            "record": {
                "entity": "deal",
                "id": "warsztat-deal",
                "title": "Warsztat: new lift",
                "process": "Sales",
                "company": "warsztat",
                "owners": ["jan"],
            },
        }
    )


def add_extra_owner_through_the_bot(engine: Engine):
    return engine.handle(
        {
            "id": "d-extra-owner",
            "kind": "updated",
            "changed": ["owners"],
            "record": {
                "entity": "deal",
                "id": "warsztat-deal",
                "title": "Warsztat: new lift",
                "process": "Sales",
                "company": "warsztat",
                "owners": ["jan", "bot:warsztat"],
            },
        }
    )


def run_seed_example(write_rules, tmp_path: Path, mode: str):
    """The seed's examples: Jan owns company "Warsztat" and its deal; a bot whose
    linked-object mode is ``mode`` is added to the deal's owners. Returns the outcome and
    the deal and company as stored afterwards."""
    rules = rules_with(write_rules, "{multiple_owners: true}", WARSZTAT_BOT.format(mode=mode))
    with Engine(rules, tmp_path / "s.db") as engine:
        seed_warsztat(engine)
        outcome = add_extra_owner_through_the_bot(engine)
        return (
            outcome,
            engine.record("default", "deal", "warsztat-deal"),
            engine.record("default", "company", "warsztat"),
        )


def test_example_1_mode_add(write_rules, tmp_path: Path) -> None:
    outcome, deal, company = run_seed_example(write_rules, tmp_path, "add")
    assert outcome.owners_after == ["jan", "anna"]
    assert deal is not None and deal.owners == ["jan", "anna"]
    assert company is not None and company.owners == ["jan", "anna"]
    (change,) = outcome.decisions[0].related
    assert (change.entity, change.record_id, change.owners_before, change.owners_after) == (
        "company",
        "warsztat",
        ["jan"],
        ["jan", "anna"],
    )


def test_example_2_mode_replace(write_rules, tmp_path: Path) -> None:
    outcome, deal, company = run_seed_example(write_rules, tmp_path, "replace")
    assert outcome.owners_after == ["jan", "anna"]
    assert deal is not None and deal.owners == ["jan", "anna"]
    assert company is not None and company.owners == ["anna"]
    assert company.name == "Warsztat"  # the rest of the company is untouched


def test_single_owner_account_gives_linked_records_the_picked_owner(write_rules, tmp_path: Path) -> None:
    rules = rules_with(write_rules, "{multiple_owners: false}", WARSZTAT_BOT.format(mode="add"))
    with Engine(rules, tmp_path / "s.db") as engine:
        engine.handle(
            {
                "id": "p1",
                "kind": "created",
                "record": {
                    "entity": "person",
                    "id": "ewa",
                    "name": "Ewa",
                    "owners": ["jan"],
                    "company": "warsztat",
                },
            }
        )
        outcome = engine.handle(deal_event(1, ["bot:warsztat"], persons=["ewa", "piotr"], company="warsztat"))
        records = {
            (e, i): engine.record("default", e, i)
            for e, i in [("person", "ewa"), ("person", "piotr"), ("company", "warsztat")]
        }
    assert outcome.owners_after == ["anna"]
    # mode "add" has no effect in single-owner accounts: the linked owner is replaced,
    # and a linked record salesbot had not seen yet is created with that owner.
    assert {key: rec.owners for key, rec in records.items()} == {
        ("person", "ewa"): ["anna"],
        ("person", "piotr"): ["anna"],
        ("company", "warsztat"): ["anna"],
    }
    assert records[("person", "ewa")].name == "Ewa"
    assert [(c.entity, c.record_id) for c in outcome.decisions[0].related] == [
        ("person", "ewa"),
        ("person", "piotr"),
        ("company", "warsztat"),
    ]


def test_a_multiple_owner_deal_keeps_its_other_owners(write_rules, tmp_path: Path) -> None:
    rules = rules_with(write_rules, "{multiple_owners: true}", "  - {id: extra, users: [celina]}\n")
    with Engine(rules, tmp_path / "s.db") as engine:
        outcome = engine.handle(deal_event(1, ["jan", "bartek", "bot:extra"]))
    assert outcome.owners_after == ["jan", "bartek", "celina"]


def test_single_owner_accounts_reject_two_owners(engine: Engine) -> None:
    with pytest.raises(EventError) as info:
        engine.handle(deal_event(1, ["jan", "bot:inbound"]))
    assert str(info.value) == (
        "event 'e1': field 'record.owners': account 'default' allows one "
        "owner per record (settings.multiple_owners is off)"
    )


@pytest.mark.parametrize("entity", ["deal", "person", "company", "task"])
def test_bots_for_all_four_entities(write_rules, tmp_path: Path, entity: str) -> None:
    rules = rules_with(
        write_rules, "{plan: growth}", f"  - {{id: b, entity: {entity}, users: [bartek, celina]}}\n"
    )
    with Engine(rules, tmp_path / "s.db") as engine:
        owners = [
            engine.handle(
                {
                    "id": f"e{n}",
                    "kind": "created",
                    "record": {"entity": entity, "id": f"r{n}", "owners": ["bot:b"]},
                }
            ).owners_after
            for n in range(3)
        ]
        assert engine.record("default", entity, "r2").owners == ["bartek"]
    assert owners == [["bartek"], ["celina"], ["bartek"]]


def test_a_task_about_a_deal_keeps_its_link(write_rules, tmp_path: Path) -> None:
    rules = rules_with(write_rules, "{}", "  - {id: todo, entity: task, users: [jan]}\n")
    with Engine(rules, tmp_path / "s.db") as engine:
        engine.handle(
            {
                "id": "e1",
                "kind": "created",
                "record": {
                    "entity": "task",
                    "id": "call",
                    "title": "Call back",
                    "owners": ["bot:todo"],
                    "link": {"entity": "deal", "id": "d9"},
                },
            }
        )
        task = engine.record("default", "task", "call")
    assert task is not None and (task.owners, task.link.entity, task.link.id) == (["jan"], "deal", "d9")


TWO_ACCOUNTS = {
    "acme.yaml": """
        account: acme
        users: [{id: anna}, {id: bartek}]
        bots:
          - {id: inbound, users: [anna, bartek], actions: {tag: acme-bot}}
        """,
    "zeta.yaml": """
        account: zeta
        settings: {plan: automation}
        users: [{id: anna}, {id: bartek}]
        bots:
          - {id: inbound, users: [bartek, anna]}
        """,
}


def test_accounts_share_nothing_even_with_the_same_ids(write_rules, tmp_path: Path) -> None:
    with Engine(write_rules(**TWO_ACCOUNTS), tmp_path / "s.db") as engine:
        picks = []
        for n in range(3):
            for account in ("acme", "zeta"):
                picks.append(engine.handle({**deal_event(n), "account": account}).owners_after[0])
        acme, zeta = engine.record("acme", "deal", "d0"), engine.record("zeta", "deal", "d0")
        assert engine.store.assignment_counts() == [
            ("acme", "inbound", "anna", 2),
            ("acme", "inbound", "bartek", 1),
            ("zeta", "inbound", "anna", 1),
            ("zeta", "inbound", "bartek", 2),
        ]
    assert picks == ["anna", "bartek", "bartek", "anna", "anna", "bartek"]
    assert (acme.owners, acme.tags) == (["anna"], ["acme-bot"])
    assert (zeta.owners, zeta.tags) == (["bartek"], [])


def test_an_event_of_another_account_cannot_use_its_bots_or_users(write_rules, tmp_path: Path) -> None:
    with Engine(write_rules(**TWO_ACCOUNTS), tmp_path / "s.db") as engine, pytest.raises(EventError) as info:
        engine.handle({**deal_event(1, ["bot:inbound"]), "account": "default"})
    assert str(info.value) == (
        "event 'e1': field 'record.owners.0': 'bot:inbound' is not a bot of account 'default'"
    )


@pytest.mark.parametrize(
    ("settings", "bots", "problem"),
    [
        (
            "{plan: automation}",
            "  - {id: one, users: [anna]}\n  - {id: two, users: [anna]}\n",
            "bot 'two': plan 'automation' allows 1 bot(s) per account; 'one' in {file} is already one",
        ),
        (
            "{plan: automation}",
            "  - {id: people, entity: person, users: [anna]}\n",
            "bot 'people': field 'entity': plan 'automation' allows bots for deal records only",
        ),
        (
            "{plan: automation, multiple_owners: true}",
            "  - {id: one, users: [anna]}\n",
            "field 'settings.multiple_owners': plan 'automation' does not allow multiple owners",
        ),
        (
            "{plan: starter}",
            "  - {id: one, users: [anna]}\n",
            f"field 'settings.plan': {PYDANTIC}'automation'{PYDANTIC}",
        ),
    ],
)
def test_a_ruleset_beyond_the_plan_is_an_error(write_rules, settings, bots, problem) -> None:
    folder = rules_with(write_rules, settings, bots)
    with pytest.raises(RulesetError) as info:
        Engine(folder, folder.parent / "s.db")
    file = folder / "account.yaml"
    assert str(info.value) == Message(f"{file}: " + problem.format(file=file))


def test_settings_of_one_account_live_in_one_file(write_rules) -> None:
    folder = write_rules(
        **{"a.yaml": TEAM + "settings: {plan: growth}\n", "b.yaml": "settings: {enabled: false}\n"}
    )
    with pytest.raises(RulesetError) as info:
        Engine(folder, folder.parent / "s.db")
    assert str(info.value) == (
        f"{folder / 'b.yaml'}: field 'settings': account 'default' already "
        f"has its settings in {folder / 'a.yaml'}"
    )


OPTIONS = """
  - {id: inbound, name: Inbound leads, users: [anna]}
  - {id: paused, users: [anna], active: false}
  - {id: contacts, entity: person, users: [anna]}
"""


def test_owner_options_list_active_bots_per_entity(write_rules, tmp_path: Path) -> None:
    with Engine(rules_with(write_rules, "{}", OPTIONS), tmp_path / "s.db") as engine:
        assert [b.id for b in engine.owner_options("default", "deal")] == ["inbound"]
        assert [b.id for b in engine.owner_options("default", "person")] == ["contacts"]
        assert engine.owner_options("default", "task") == []
        engine.set_bot_active("default", "paused", True)
        engine.set_bot_active("default", "inbound", False)
        assert [b.id for b in engine.owner_options("default", "deal")] == ["paused"]
        outcome = engine.handle(deal_event(1, ["bot:inbound"]))
        assert (outcome.decisions[0].status, outcome.decisions[0].reason) == (
            "not_applied",
            "the bot is switched off",
        )
        assert engine.handle(deal_event(2, ["bot:paused"])).owners_after == ["anna"]


def test_a_disabled_add_on_offers_no_bot_and_fires_none(write_rules, tmp_path: Path) -> None:
    with Engine(rules_with(write_rules, "{enabled: false}", OPTIONS), tmp_path / "s.db") as engine:
        assert engine.owner_options("default", "deal") == []
        engine.handle(deal_event(1, ["jan"]))
        outcome = engine.handle(
            deal_event(2, ["bot:inbound"], kind="updated")
            | {"record": {"entity": "deal", "id": "d1", "owners": ["bot:inbound"]}}
        )
    assert outcome.owners_after == ["jan"]
    assert outcome.decisions[0].reason == "the Sales Bot add-on is switched off for account 'default'"


def test_an_update_fires_only_when_it_set_the_bot(write_rules, tmp_path: Path) -> None:
    with Engine(rules_with(write_rules, "{}", OPTIONS), tmp_path / "s.db") as engine:
        engine.handle(deal_event(1, ["jan"]))
        stale = {
            "id": "e2",
            "kind": "updated",
            "changed": ["title"],
            "record": {"entity": "deal", "id": "d1", "title": "renamed", "owners": ["bot:inbound"]},
        }
        outcome = engine.handle(stale)
        fresh = engine.handle({**stale, "id": "e3", "changed": ["owners", "title"]})
    assert (outcome.owners_after, outcome.decisions[0].reason) == (
        ["jan"],
        "the update did not change the owners",
    )
    assert fresh.owners_after == ["anna"]


def test_a_list_operation_gives_each_record_its_own_pick(engine: Engine) -> None:
    for n in range(4):
        engine.handle(deal_event(n, ["jan"]))
    outcomes = engine.assign_list("default", "deal", ["d0", "d1", "d2", "d3"], "inbound", "bulk-7")
    assert [o.owners_after for o in outcomes] == [["anna"], ["bartek"], ["celina"], ["anna"]]
    assert [o.event_id for o in outcomes] == [f"list/bulk-7/deal/d{n}" for n in range(4)]
    assert {o.kind for o in outcomes} == {"list"}
    again = engine.assign_list("default", "deal", ["d0", "d1", "d2", "d3"], "inbound", "bulk-7")
    assert [o.duplicate for o in again] == [True] * 4
    assert engine.record("default", "deal", "d3").owners == ["anna"]


class RenamesD2AfterD1:
    """A host plugin that, once d1's list event is committed, saves an edit of d2 (as
    another worker would between two batches of a list operation)."""

    def __init__(self) -> None:
        self.engine: Engine | None = None

    @hookimpl
    def salesbot_after_assign(self, outcome):
        if outcome.event_id == "list/bulk-9/deal/d1" and self.engine is not None:
            edit = {"entity": "deal", "id": "d2", "title": "Renamed", "owners": ["anna", "jan"]}
            self.engine.handle({"id": "edit-d2", "kind": "updated", "record": edit})


def test_a_list_operation_reads_each_record_in_its_own_transaction(write_rules, tmp_path: Path) -> None:
    rules = rules_with(write_rules, "{multiple_owners: true}", "  - {id: inbound, users: [bartek, celina]}\n")
    plugin = RenamesD2AfterD1()
    with Engine(rules, tmp_path / "s.db", plugins=[plugin]) as engine:
        plugin.engine = engine
        for n in (1, 2):
            engine.handle(deal_event(n, ["anna"], title=f"Deal {n}"))
        outcomes = engine.assign_list("default", "deal", ["d1", "d2"], "inbound", "bulk-9", batch_size=1)
        d2 = engine.record("default", "deal", "d2")
    assert [o.owners_after for o in outcomes] == [["anna", "bartek"], ["anna", "jan", "celina"]]
    # the edit committed between the two batches is kept, not overwritten by a stale copy
    assert (d2.title, d2.owners) == ("Renamed", ["anna", "jan", "celina"])


def test_a_list_operation_with_an_unknown_record_changes_nothing(engine: Engine) -> None:
    engine.handle(deal_event(1, ["jan"]))
    with pytest.raises(EventError) as info:
        engine.assign_list("default", "deal", ["d1", "d404"], "inbound", "bulk-8")
    assert str(info.value) == "list operation 'bulk-8': no deal record 'd404' in account 'default'"
    assert engine.record("default", "deal", "d1").owners == ["jan"]
    assert engine.store.assignment_counts() == []


def test_a_batch_with_one_bad_event_processes_none(engine: Engine) -> None:
    with pytest.raises(EventError) as info:
        engine.handle_many([deal_event(1), deal_event(2, ["zofia"]), deal_event(3)])
    assert (
        str(info.value) == "event 'e2': field 'record.owners.0': 'zofia' is not a user of account 'default'"
    )
    assert engine.store.assignment_counts() == []


ANNOUNCING = """
  - id: announcer
    name: Inbound leads
    users: [anna, bartek]
    actions:
      related: {company: true}
      tag: from-salesbot
      note: "Assigned by {bot.name} to {owner.name} <{owner.email}>"
      notify: "New deal {record.title} ({record.value:,.0f} PLN, {record.source}) is yours"
"""
TEAM_WITH_EMAIL = TEAM.replace(
    "{id: anna, name: Anna Nowak}", "{id: anna, name: Anna Nowak, email: anna@example.com}"
)


def test_tag_wall_note_and_notification(write_rules, tmp_path: Path) -> None:
    rules = rules_with(write_rules, "{}", ANNOUNCING, team=TEAM_WITH_EMAIL)
    with Engine(rules, tmp_path / "s.db") as engine:
        engine.handle(
            {
                "id": "c1",
                "kind": "created",
                "record": {
                    "entity": "company",
                    "id": "warsztat",
                    "name": "Warsztat",
                    "owners": ["jan"],
                    "tags": ["vip"],
                },
            }
        )
        outcome = engine.handle(
            deal_event(
                1,
                ["bot:announcer"],
                title="Lift",
                value=12000,
                company="warsztat",
                tags=["inbound"],
                fields={"source": "web form"},
            )
        )
        deal, company = (
            engine.record("default", "deal", "d1"),
            engine.record("default", "company", "warsztat"),
        )
        deal_wall = [(n.text, n.bot, n.event_id) for n in engine.wall("default", "deal", "d1")]
        company_wall = [n.text for n in engine.wall("default", "company", "warsztat")]
        outbox = [(n.account, n.user, n.text, n.event_id, n.entity, n.record_id) for n in engine.outbox()]
        second = engine.handle(deal_event(2, ["bot:announcer"], title="Gate"))
        pending = [n.id for n in engine.outbox()]
        assert engine.mark_delivered("default", pending[:1]) == (pending[:1], [])
        # the first was delivered already
        assert engine.mark_delivered("default", pending) == (pending[1:], pending[:1])
        assert engine.outbox() == []
    (decision,) = outcome.decisions
    assert (decision.tag, decision.note, decision.notification) == (
        "from-salesbot",
        "Assigned by Inbound leads to Anna Nowak <anna@example.com>",
        "New deal Lift (12,000 PLN, web form) is yours",
    )
    assert (deal.owners, deal.tags) == (["anna"], ["inbound", "from-salesbot"])
    assert (company.owners, company.tags) == (["anna"], ["vip", "from-salesbot"])
    assert deal_wall == [("Assigned by Inbound leads to Anna Nowak <anna@example.com>", "announcer", "e1")]
    assert company_wall == ["Assigned by Inbound leads to Anna Nowak <anna@example.com>"]
    assert outbox == [
        ("default", "anna", "New deal Lift (12,000 PLN, web form) is yours", "e1", "deal", "d1")
    ]
    assert second.decisions[0].notification == "New deal Gate ( PLN, ) is yours"
    assert second.decisions[0].note == "Assigned by Inbound leads to Bartek Wiśniewski <>"


def test_a_redelivered_event_notifies_once(write_rules, tmp_path: Path) -> None:
    with Engine(rules_with(write_rules, "{}", ANNOUNCING), tmp_path / "s.db") as engine:
        engine.handle(deal_event(1, ["bot:announcer"], title="Lift"))
        engine.handle(deal_event(1, ["bot:announcer"], title="Lift"))
        assert [n.user for n in engine.outbox()] == ["anna"]
        assert len(engine.wall("default", "deal", "d1")) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "{record.__class__}",
            "placeholder '{record.__class__}' is not allowed: field names cannot start with '_'",
        ),
        (
            "{owner.__init__.__globals__}",
            "placeholder '{owner.__init__.__globals__}' is not allowed: "
            "only one field can be named: owner.<field>",
        ),
    ],
)
def test_a_text_that_walks_attributes_is_rejected_when_validated(write_rules, text, message) -> None:
    folder = rules_with(
        write_rules, "{}", f"  - {{id: sneaky, users: [anna], actions: {{note: '{text}'}}}}\n"
    )
    with pytest.raises(RulesetError) as info:
        Engine(folder, folder.parent / "s.db")
    assert str(info.value) == f"{folder / 'account.yaml'}: bot 'sneaky': field 'actions.note': {message}"


@pytest.mark.parametrize(
    ("bot", "problem"),
    [
        (
            "{id: p, entity: person, users: [anna], actions: {related: {persons: true}}}",
            "field 'actions.related.persons': person records have no linked persons",
        ),
        (
            "{id: c, entity: company, users: [anna], actions: {related: {company: true}}}",
            "field 'actions.related.company': company records have no linked company",
        ),
        (
            "{id: m, users: [anna], actions: {related: {company: true, mode: merge}}}",
            "field 'actions.related.mode': unknown mode 'merge'; available: add, replace",
        ),
    ],
)
def test_related_options_are_checked_per_entity(write_rules, bot, problem) -> None:
    folder = rules_with(write_rules, "{}", f"  - {bot}\n")
    with pytest.raises(RulesetError) as info:
        Engine(folder, folder.parent / "s.db")
    bot_id = bot.split(",")[0].split(": ")[1]
    assert str(info.value) == f"{folder / 'account.yaml'}: bot '{bot_id}': {problem}"
