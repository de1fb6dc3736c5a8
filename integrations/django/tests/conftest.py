"""A real Django CRM for each test: its migrations and its starting data (``setupdata``)
run once into a template database file, copied for every test, so each test commits for
real (``on_commit`` runs as in production) and starts from the same CRM.

Django CRM's departments "Global sales" and "Local sales" and its groups come from
``setupdata``; the tests add the sales team of the docs' example (Anna, Bartek, Celina and
Jan, managers of Global sales) and give each test its own salesbot store and rules folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SETTINGS = "crm_settings"
#: The session's folder: the template database, and the paths the settings module reads
#: before any test has a folder of its own (each test overrides them).
SESSION = Path(tempfile.mkdtemp(prefix="salesbot-django-"))


def pytest_configure(config: pytest.Config) -> None:
    """Django is set up before the test modules import models."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE=SETTINGS,
        SALESBOT_DJANGO_DB=str(SESSION / "template.sqlite3"),
        SALESBOT_STORE=str(SESSION / "unused-salesbot.db"),
        SALESBOT_RULES_DIR=str(SESSION / "unused-rules"),
    )
    import django
    from django.test.utils import setup_test_environment

    django.setup()
    setup_test_environment()


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(SESSION, ignore_errors=True)


@pytest.fixture(scope="session")
def crm_template() -> Path:
    """A migrated Django CRM database with its starting data, made once per session."""
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    call_command("setupdata", verbosity=0, stdout=open(os.devnull, "w"))
    connection.close()
    return SESSION / "template.sqlite3"


@pytest.fixture
def crm(crm_template: Path, tmp_path: Path) -> Iterator[Path]:
    """This test's copy of the CRM database, its own salesbot store and rules folder, and
    the sales team of Global sales."""
    from django.db import connection
    from django.test import override_settings

    database = tmp_path / "crm.sqlite3"
    shutil.copy(crm_template, database)
    connection.close()
    connection.settings_dict["NAME"] = str(database)
    from django.conf import settings

    salesbot = {
        **settings.SALESBOT,
        "STORE": str(tmp_path / "salesbot.db"),
        "RULES_DIR": str(tmp_path / "rules"),
    }
    with override_settings(SALESBOT=salesbot):
        team()
        yield tmp_path
    connection.close()


TEAM = [("anna", "Anna", "Nowak"), ("bartek", "Bartek", "Wiśniewski"), ("celina", "Celina", "Zając")]


def team() -> None:
    """Anna, Bartek, Celina (the bot's pool) and Jan: managers of Global sales."""
    from django.contrib.auth.models import Group, User

    groups = [Group.objects.get(name="managers"), Group.objects.get(name="Global sales")]
    for username, first, last in [*TEAM, ("jan", "Jan", "Kowalski")]:
        user = User.objects.create_user(
            username,
            f"{username}@example.com",
            "s3cret!pass",
            first_name=first,
            last_name=last,
            is_staff=True,
        )
        user.groups.add(*groups)
