"""The mapping for Django CRM (``django-crm-admin``), and its writers of notes,
notifications and tags.

Only names of Django CRM's models and fields appear here, and its models are looked up
through the app registry when a writer runs: this app does not depend on Django CRM, and
none of its code is copied. A Deal's wall note is a Memo on the deal, addressed to the new
owner; Django CRM has no wall for companies and contacts, so they get no note. A
notification is a message kept on the user's profile, which Django CRM shows at their next
page (its ``save_message`` helper).
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db import models

#: ``SALESBOT = {**DJANGO_CRM, "STORE": ..., "BOTS": [...]}`` in the CRM's settings.
DJANGO_CRM: dict[str, Any] = {
    "ENTITIES": {
        "deal": {
            "model": "crm.Deal",
            "owner": "owner",
            "co_owner": "co_owner",
            "title": "name",
            "company": "company",
            "persons": ["contact"],
            "tags": "tags",
            "account": "department",
            "version": "update_date",
            "fields": {"value": "amount"},
        },
        "company": {
            "model": "crm.Company",
            "owner": "owner",
            "title": "full_name",
            "tags": "tags",
            "account": "department",
            "version": "update_date",
        },
        "person": {
            "model": "crm.Contact",
            "owner": "owner",
            "title": "first_name",
            "company": "company",
            "tags": "tags",
            "account": "department",
            "version": "update_date",
        },
    },
    # Departments are groups with a Department row; each is a salesbot account.
    "ACCOUNT_MODEL": "common.Department",
    # Django CRM offers as owners the active staff of the department in these groups.
    "BOT_GROUPS": ["managers"],
    "NOTE": "salesbot_django.django_crm.memo",
    "NOTIFY": "salesbot_django.django_crm.notify",
    "TAG": "salesbot_django.django_crm.tag",
}


def memo(record: models.Model, text: str, bot: Any, owner: Any) -> None:
    """The wall note of a deal: a Memo on it, from the bot to the new owner."""
    if record._meta.label != "crm.Deal":
        return
    memo_model = apps.get_model("tasks", "Memo")
    memo_model._default_manager.create(name=text[:250], note=text, deal=record, to=owner, owner=bot)


def notify(user: Any, text: str, record: models.Model) -> None:
    """A message the user sees at their next page in Django CRM."""
    from common.utils.helpers import save_message

    save_message(user, text)


def tag(record: models.Model, field: str, name: str) -> None:
    """Django CRM's tags belong to a department: the record's."""
    tags = getattr(record, field)
    department = getattr(record, "department", None)
    found, _ = tags.model._default_manager.get_or_create(name=name, department=department)
    tags.add(found)
