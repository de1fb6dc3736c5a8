"""Multiple-owner accounts: a bot added beside the current owners picks someone new."""

from __future__ import annotations

from pathlib import Path

from factories import TEAM, deal_event
from salesbot_core import Engine


def trio_rules(write_rules, fallback: str | None = None) -> Path:
    extra = f"\n    fallback: {fallback}" if fallback else ""
    return write_rules(
        **{
            "account.yaml": TEAM
            + "settings: {multiple_owners: true}\n"
            + "bots:\n  - id: trio\n    users: [jan, anna, bartek]\n"
            + "    actions: {notify: 'deal {record.id} is yours'}"
            + extra
            + "\n"
        }
    )


def test_the_pick_skips_users_who_already_own_the_record(write_rules, tmp_path: Path) -> None:
    with Engine(trio_rules(write_rules), tmp_path / "s.db") as engine:
        outcomes = [engine.handle(deal_event(n, ["jan", "bot:trio"])) for n in range(30)]
        picked = [o.owners_after for o in outcomes]
        # jan owns every deal: he is never "picked", and the rotation alternates the others.
        assert picked == [["jan", "anna"], ["jan", "bartek"]] * 15
        assert outcomes[0].decisions[0].skipped[0].model_dump() == {
            "user": "jan",
            "reason": "already an owner of the record",
        }
        assert outcomes[0].decisions[0].candidates == ["anna", "bartek"]
        notified = [(n.user, n.text) for n in engine.outbox(limit=100)]
        assert notified == [("anna" if n % 2 == 0 else "bartek", f"deal d{n} is yours") for n in range(30)]


def test_when_every_pool_user_owns_the_record_the_bot_is_removed_and_the_turn_kept(
    write_rules, tmp_path: Path
) -> None:
    with Engine(trio_rules(write_rules), tmp_path / "s.db") as engine:
        first = engine.handle(deal_event(1, ["bot:trio"]))
        assert first.owners_after == ["jan"]
        outcome = engine.handle(deal_event(2, ["jan", "anna", "bartek", "bot:trio"]))
        assert outcome.owners_after == ["jan", "anna", "bartek"]
        (decision,) = outcome.decisions
        assert (decision.status, decision.owner, decision.reason) == (
            "no_candidate",
            None,
            "no user in the pool is eligible",
        )
        assert [s.user for s in decision.skipped] == ["jan", "anna", "bartek"]
        assert decision.state_after == decision.state_before == first.decisions[0].state_after
        # The rotation did not move: the next deal goes to the user after jan.
        assert engine.handle(deal_event(3, ["bot:trio"])).owners_after == ["anna"]
        assert [n.user for n in engine.outbox(limit=100)] == ["jan", "anna"]


def test_a_fallback_owner_who_already_owns_the_record_is_not_notified_again(
    write_rules, tmp_path: Path
) -> None:
    with Engine(trio_rules(write_rules, fallback="jan"), tmp_path / "s.db") as engine:
        outcome = engine.handle(deal_event(1, ["jan", "anna", "bartek", "bot:trio"]))
        assert outcome.owners_after == ["jan", "anna", "bartek"]
        (decision,) = outcome.decisions
        assert (decision.status, decision.owner) == ("no_candidate", None)
        assert decision.reason == (
            "no user in the pool is eligible, and the fallback owner 'jan' already owns the record"
        )
        assert engine.outbox() == []


def test_explain_a_linked_record_shows_every_outcome_that_changed_it(write_rules, tmp_path: Path) -> None:
    """The seed's company "Warsztat" got its second owner through its deal: explaining the
    company shows that deal's event, which named no company itself."""
    rules = write_rules(
        **{
            "account.yaml": TEAM
            + "settings: {multiple_owners: true}\nbots:\n"
            + "  - id: warsztat\n    users: [anna, bartek]\n"
            + "    actions: {related: {company: true, mode: add}, note: 'by {bot.id}'}\n"
        }
    )
    with Engine(rules, tmp_path / "s.db") as engine:
        company = {"entity": "company", "id": "warsztat", "owners": ["jan"]}
        engine.handle({"id": "c1", "kind": "created", "record": company})
        for n in (1, 2):
            deal = {"entity": "deal", "id": f"d{n}", "company": "warsztat", "owners": ["jan", "bot:warsztat"]}
            engine.handle({"id": f"e{n}", "kind": "created", "record": deal})
        explained = engine.explain("default", "company", "warsztat")
        assert [(o.event_id, o.entity, o.record_id) for o in explained] == [
            ("c1", "company", "warsztat"),
            ("e1", "deal", "d1"),
            ("e2", "deal", "d2"),
        ]
        assert [c.owners_after for o in explained[1:] for c in o.decisions[0].related] == [
            ["jan", "anna"],
            ["jan", "anna", "bartek"],
        ]
        assert len(engine.wall("default", "company", "warsztat")) == 2
        # The deals' own explanations are unchanged: one event each.
        assert [o.event_id for o in engine.explain("default", "deal", "d2")] == ["e2"]


def test_salesbot_explain_a_company_lists_the_deals_that_gave_it_its_owner(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from salesbot_core.cli import main

    root = Path(__file__).parent.parent
    db, rules = str(tmp_path / "s.db"), str(root / "rulesets")
    runner = CliRunner()
    assert (
        runner.invoke(
            main, ["run", str(root / "examples/events.jsonl"), "-r", rules, "--db", db, "-q"]
        ).exit_code
        == 0
    )
    result = runner.invoke(main, ["explain", "company", "company-01", "-r", rules, "--db", db])
    assert result.exit_code == 0, result.output
    headers = [line for line in result.output.splitlines() if line.startswith("event ")]
    assert len(headers) == 9
    assert headers[0] == "event 'evt-0001' (created) on deal deal-0001: owners ['bot:inbound'] -> ['anna']"
    assert "    company company-01: owners [] -> ['anna']" in result.output.splitlines()
