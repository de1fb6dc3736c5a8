"""Models reject bad input with an error naming the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from salesbot_core.models import Bot, Deal, Event, Task, User


def fields_in_error(exc: ValidationError) -> list[str]:
    return [".".join(str(p) for p in e["loc"]) for e in exc.errors()]


def test_four_entities_with_their_links() -> None:
    event = Event.model_validate(
        {
            "id": "e1",
            "kind": "list",
            "record": {
                "entity": "task",
                "id": "t1",
                "owners": ["anna"],
                "link": {"entity": "company", "id": "warsztat"},
            },
        }
    )
    assert isinstance(event.record, Task) and event.record.link is not None
    assert (event.record.link.entity, event.record.link.id) == ("company", "warsztat")
    deal = Deal(id="d1", persons=["p1", "p2"], company="warsztat", process="Sales", value=1.5)
    assert deal.condition_fields() == {
        "id": "d1",
        "open": True,
        "entity": "deal",
        "title": "",
        "process": "Sales",
        "value": 1.5,
        "persons": ["p1", "p2"],
        "company": "warsztat",
    }


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"id": "d1", "owners": ["anna", "anna"]}, "owners"),
        ({"id": "has space"}, "id"),
        ({"id": "d1", "persons": [""]}, "persons.0"),
        ({"id": "d1", "colour": "red"}, "colour"),
    ],
)
def test_bad_records_name_the_field(data, field) -> None:
    with pytest.raises(ValidationError) as info:
        Deal.model_validate(data)
    assert fields_in_error(info.value) == [field]


def test_a_task_cannot_link_to_a_task() -> None:
    with pytest.raises(ValidationError) as info:
        Task.model_validate({"id": "t1", "link": {"entity": "task", "id": "t2"}})
    assert fields_in_error(info.value) == ["link.entity"]


def test_bots_and_users() -> None:
    bot = Bot(id="inbound", users=["anna"])
    assert (bot.entity, bot.strategy, bot.active) == ("deal", "round_robin", True)
    assert bot.owner_ref == "bot:inbound"
    assert bot.trigger.events == ["created", "updated", "list"] and bot.trigger.processes is None
    assert User(id="anna").display_name == "anna"
    with pytest.raises(ValidationError) as info:
        Bot(id="x", users=["anna"], trigger={"events": []})
    assert fields_in_error(info.value) == ["trigger.events"]


def test_a_record_knows_the_bots_in_its_owner_field() -> None:
    assert Deal(id="d1", owners=["jan", "bot:inbound", "bot:vip"]).bot_ids() == ["inbound", "vip"]


def test_an_event_fingerprint_keeps_its_form_across_new_optional_fields() -> None:
    """Stored fingerprints were taken of these keys: a field added to Event later is
    written only when set (models.ADDED_LATER), so a redelivery across an upgrade is a
    duplicate, not an idempotency conflict."""
    import json

    from salesbot_core.models import Event

    payload = {"id": "e1", "kind": "created", "record": {"entity": "deal", "id": "d1", "owners": ["bot:x"]}}
    plain = Event.model_validate(payload)
    assert sorted(json.loads(plain.canonical)) == ["account", "at", "changed", "id", "kind", "record"]
    by_anna = Event.model_validate({**payload, "by": "anna"})
    assert json.loads(by_anna.canonical)["by"] == "anna"
    assert by_anna.fingerprint != plain.fingerprint
