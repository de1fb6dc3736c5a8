"""The app as a distribution and as a configuration: every package is in its
pyproject.toml, its migrations match its models, and a mistake in the ``SALESBOT``
mapping is an error naming the key to fix."""

from __future__ import annotations

import tomllib
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from salesbot_django.conf import load
from salesbot_django.django_crm import DJANGO_CRM

HERE = Path(__file__).resolve().parent.parent


def test_every_package_of_the_app_is_in_its_pyproject() -> None:
    listed = tomllib.loads((HERE / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    found = {
        ".".join(init.parent.relative_to(HERE).parts)
        for init in (HERE / "salesbot_django").rglob("__init__.py")
    }
    assert set(listed["packages"]) == found


@pytest.mark.usefixtures("crm")
def test_the_migrations_match_the_models() -> None:
    out = StringIO()
    call_command("makemigrations", "salesbot_django", "--check", "--dry-run", stdout=out)
    assert out.getvalue() == "No changes detected in app 'salesbot_django'\n"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"MODE": "grpc"}, "SALESBOT['MODE']: 'grpc' is not one of embedded, http"),
        ({"STORES": "x"}, "SALESBOT: unknown keys ['STORES']"),
        ({"MODE": "http"}, "SALESBOT['URL']: the http mode needs the service's 'URL' and a 'TOKEN'"),
        (
            {"NOTE": "salesbot_django.nowhere.memo"},
            "SALESBOT['NOTE']: cannot import 'salesbot_django.nowhere.memo'",
        ),
        (
            {"ENTITIES": {"deal": {**DJANGO_CRM["ENTITIES"]["deal"], "owner": "owned_by"}}},
            "SALESBOT['ENTITIES']['deal']: crm.Deal has no field 'owned_by'",
        ),
        (
            {"ENTITIES": {"lead": {"model": "crm.Lead", "owner": "owner"}}},
            "SALESBOT['ENTITIES']: 'lead' is not a salesbot entity (deal, person, company, task)",
        ),
        ({"ACCOUNT_MODEL": "common.Dept"}, "SALESBOT['ACCOUNT_MODEL']: no installed model 'common.Dept'"),
    ],
)
def test_a_mistake_in_the_mapping_names_the_key(change: dict[str, object], message: str) -> None:
    with pytest.raises(ImproperlyConfigured) as error:
        load({**DJANGO_CRM, **change})
    assert str(error.value).startswith(message)
