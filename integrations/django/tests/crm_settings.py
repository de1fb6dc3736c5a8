"""Django CRM's own settings (``webcrm.settings``), with salesbot_django installed and the
mapping the docs show: docs/django.md quotes the block between the markers verbatim
(tests/test_readme.py checks it).

Paths come from the environment the tests set (a database file, a salesbot store and a
rules folder per test), never a path in the repository.
"""

import importlib

# --8<-- [start:salesbot]
import os

from salesbot_django.django_crm import DJANGO_CRM

SALESBOT = {
    **DJANGO_CRM,
    "MODE": "embedded",
    "STORE": os.environ["SALESBOT_STORE"],  # a SQLite file, or postgresql://...
    "RULES_DIR": os.environ["SALESBOT_RULES_DIR"],  # written from the database
    "ACCOUNTS": {"Global sales": {"plan": "professional", "multiple_owners": False}},
    "BOTS": [
        {
            "account": "Global sales",
            "id": "inbound",
            "name": "Inbound leads",
            "entity": "deal",
            "users": ["anna", "bartek", "celina"],
            "trigger": {"events": ["created", "updated", "list"]},
            "actions": {
                "related": {"company": True, "persons": True},
                "tag": "inbound-bot",
                "note": "Assigned by {bot.name} to {owner.name}",
                "notify": "New deal for you: {record.title}",
            },
        }
    ],
}
# --8<-- [end:salesbot]

# Everything else is Django CRM's, as it ships (imported by name: this module is read
# where Django CRM's top-level packages are installed).
crm = importlib.import_module("webcrm.settings")
globals().update({name: value for name, value in vars(crm).items() if name.isupper() and name != "SALESBOT"})

INSTALLED_APPS = [*crm.INSTALLED_APPS, "salesbot_django"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["SALESBOT_DJANGO_DB"],
        "TEST": {"NAME": os.environ["SALESBOT_DJANGO_DB"]},
        # Writers queue for the lock from their first statement, instead of failing when
        # two read transactions both try to write (the threads of the concurrency test).
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30},
    }
}
ROOT_URLCONF = "crm_urls"
SECURE_SSL_REDIRECT = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast sign-ins
