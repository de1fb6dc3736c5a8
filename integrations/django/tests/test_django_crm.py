"""The seed's story in Django CRM: a deal whose Owner is "Sales Bot: Inbound leads" gets
a user of the bot's pool once the save commits, and so do its company and contact, with
the tag, a Memo and a notification; a rolled-back save routes nothing; a save delivered
twice is routed once; the changelist action routes a selection exactly once."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from admin_form import form_data
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.db.models.signals import post_save
from django.test import Client, override_settings

pytestmark = pytest.mark.usefixtures("crm")

BOT = "Sales Bot: Inbound leads"


def bot() -> User:
    from salesbot_django.backends import backend

    backend().refresh()  # the bot's user is made when salesbot first runs (or salesbot_sync)
    return User.objects.get(username=BOT)


def user(name: str) -> User:
    return User.objects.get(username=name)


def department() -> Group:
    return Group.objects.get(name="Global sales")


def company(name: str, owner: User) -> Any:
    from crm.models import Company

    return Company.objects.create(full_name=name, owner=owner, department=department())


def contact(first_name: str, owner: User, at: Any) -> Any:
    from crm.models import Contact

    return Contact.objects.create(first_name=first_name, owner=owner, company=at, department=department())


def deal(name: str, owner: User, **fields: Any) -> Any:
    """A deal as Django CRM makes one: from a customer's request, sharing its ticket."""
    from crm.models import Deal, Request, Stage

    request = Request.objects.create(
        request_for=name, first_name="Piotr", owner=owner, department=department()
    )
    return Deal.objects.create(
        name=name,
        next_step="call back",
        next_step_date=datetime.date(2026, 12, 8),
        stage=Stage.objects.get(department=department(), default=True),
        request=request,
        ticket=request.ticket,
        owner=owner,
        department=department(),
        **fields,
    )


def owner_of(record: Any) -> str:
    record.refresh_from_db()
    return record.owner.username


def test_the_bot_is_a_user_offered_as_owner_who_cannot_sign_in() -> None:
    robot = bot()
    assert not robot.has_usable_password()
    assert (robot.is_active, robot.is_staff) == (True, True)
    # Django CRM puts every new user in "co-workers" itself.
    assert sorted(robot.groups.values_list("name", flat=True)) == ["Global sales", "co-workers", "managers"]
    assert Client().login(username=BOT, password="") is False
    manager = user("IamGlobalSALES")  # Django CRM's sales manager of Global sales
    client = Client()
    client.force_login(manager)
    page = client.get(f"/en/123/crm/deal/{deal('Offer', manager).pk}/change/")
    assert page.status_code == 200
    assert f">{BOT}</option>" in page.content.decode()


def test_a_manager_picks_the_bot_in_the_deal_form_and_a_user_of_the_pool_owns_it() -> None:
    """Through Django CRM's own change form, as a manager of Global sales saves it."""
    from tasks.models import Memo

    robot, manager = bot(), user("IamGlobalSALES")
    offer = deal("Offer for Warsztat", manager)
    client = Client()
    client.force_login(manager)
    url = f"/en/123/crm/deal/{offer.pk}/change/"
    data = form_data(client.get(url).content.decode(), "deal_form")
    assert data["owner"] == [str(manager.pk)]
    page = client.post(url, {**data, "owner": [str(robot.pk)], "_save": ["Save"]})
    assert page.status_code == 302, page.context["adminform"].form.errors
    assert owner_of(offer) == "anna"
    assert [tag.name for tag in offer.tags.all()] == ["inbound-bot"]
    assert list(Memo.objects.filter(deal=offer).values_list("note", flat=True)) == [
        "Assigned by Inbound leads to Anna Nowak"
    ]
    # Anna sees the notification on her next page.
    client.force_login(user("anna"))
    shown = [str(m) for m in client.get("/en/123/crm/deal/").context["messages"]]
    assert shown == ["New deal for you: Offer for Warsztat"]


def test_a_deal_saved_with_the_bot_as_owner_gets_the_next_user_in_rotation() -> None:
    robot = bot()
    deals = [deal(f"Deal {n}", robot) for n in range(4)]
    assert [owner_of(d) for d in deals] == ["anna", "bartek", "celina", "anna"]


def test_company_and_contact_follow_and_tag_memo_and_notification_are_written() -> None:
    from tasks.models import Memo

    jan = user("jan")
    warsztat = company("Warsztat", jan)
    person = contact("Piotr", jan, warsztat)
    fleet = deal("Warsztat: fleet service", bot(), company=warsztat, contact=person)
    assert [owner_of(r) for r in (fleet, warsztat, person)] == ["anna", "anna", "anna"]
    for record in (fleet, warsztat, person):
        assert [tag.name for tag in record.tags.all()] == ["inbound-bot"]
    memo = Memo.objects.get(deal=fleet)
    assert (memo.note, memo.to.username, memo.owner.username) == (
        "Assigned by Inbound leads to Anna Nowak",
        "anna",
        BOT,
    )
    assert user("anna").profile.messages == ["New deal for you: Warsztat: fleet service", "INFO"]
    assert user("bartek").profile.messages == []


def test_a_rolled_back_save_routes_nothing() -> None:
    from tasks.models import Memo

    robot = bot()
    kept = deal("Kept", user("jan"))
    with pytest.raises(RuntimeError), transaction.atomic():
        kept.owner = robot
        kept.save()
        deal("Never", robot)
        raise RuntimeError("the view failed after the save")
    assert owner_of(kept) == "jan"
    assert Memo.objects.count() == 0
    # The rotation did not move: the next routed deal is still the first in it.
    assert owner_of(deal("Next", robot)) == "anna"


def test_a_save_delivered_twice_is_routed_once_and_a_resave_changes_nothing() -> None:
    from crm.models import Deal
    from tasks.models import Memo

    saved = deal("Twice", bot())
    as_saved = Deal.objects.get(pk=saved.pk)
    as_saved.owner = bot()  # the instance as the signal first saw it, same update_date
    post_save.send(Deal, instance=as_saved, created=True, raw=False, using="default")
    assert owner_of(saved) == "anna"
    saved.save()  # a user's re-save: the owner is Anna, no bot, nothing to route
    assert owner_of(saved) == "anna"
    assert Memo.objects.filter(deal=saved).count() == 1
    assert user("anna").profile.messages == ["New deal for you: Twice", "INFO"]
    assert owner_of(deal("Next", bot())) == "bartek"


def test_multiple_owners_add_fills_the_co_owner(settings: Any = None) -> None:
    from django.conf import settings as django_settings

    salesbot = {**django_settings.SALESBOT, "ACCOUNTS": {"Global sales": {"multiple_owners": True}}}
    with override_settings(SALESBOT=salesbot):
        jan = user("jan")
        warsztat = company("Warsztat", jan)
        fleet = deal("Warsztat: fleet service", jan, co_owner=bot(), company=warsztat)
        fleet.refresh_from_db()
        assert (fleet.owner.username, fleet.co_owner.username) == ("jan", "anna")
        # A company has one owner field: in add mode its owner stays.
        assert owner_of(warsztat) == "jan"


def test_the_changelist_action_assigns_each_selected_deal_exactly_once(crm: Path) -> None:
    from tasks.models import Memo

    jan = user("jan")
    deals = [deal(f"Listed {n}", jan) for n in range(3)]
    untouched = deal("Not selected", jan)
    bot()
    client = Client()
    client.force_login(User.objects.get(username="IamSUPER"))
    page = client.post(
        "/en/123/crm/deal/",
        {"action": "salesbot_assign_global-sales_inbound", "_selected_action": [d.pk for d in deals]},
        follow=True,
    )
    assert page.status_code == 200
    assert f"{BOT} assigned 3 of 3 records" in page.content.decode()
    # In the order of the list, which shows the newest deal first.
    assert [owner_of(d) for d in reversed(deals)] == ["anna", "bartek", "celina"]
    assert owner_of(untouched) == "jan"
    assert sorted(Memo.objects.values_list("deal__name", flat=True)) == ["Listed 0", "Listed 1", "Listed 2"]


def test_eight_threads_saving_deals_at_once_keep_the_rotation_exact() -> None:
    """Each thread saves its deals with the bot as owner on its own connection: 24 deals,
    8 each for Anna, Bartek and Celina (a spread of 0), each with one Memo."""
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection
    from tasks.models import Memo

    robot = bot()

    def save_three(thread: int) -> list[int]:
        try:
            return [deal(f"Thread {thread} deal {n}", robot).pk for n in range(3)]
        finally:
            connection.close()

    with ThreadPoolExecutor(8) as pool:
        pks = [pk for saved in pool.map(save_three, range(8)) for pk in saved]
    from crm.models import Deal

    owners = Counter(Deal.objects.filter(pk__in=pks).values_list("owner__username", flat=True))
    assert owners == {"anna": 8, "bartek": 8, "celina": 8}
    assert Memo.objects.filter(deal__in=pks).count() == 24
