"""``manage.py salesbot_sync``: make the bots' users and write the ruleset files now,
e.g. at deploy time, so the bots are in the Owner field before anyone saves a record."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from salesbot_django.conf import config
from salesbot_django.sync import sync


class Command(BaseCommand):
    help = "Create a user per Sales Bot and write the accounts' ruleset files from the database."

    def handle(self, *args: Any, **options: Any) -> None:
        changed = sync(config())
        folder = config().rules_dir
        self.stdout.write(f"ruleset files in {folder}: {'updated' if changed else 'unchanged'}")
