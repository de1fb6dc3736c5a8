"""``manage.py salesbot_retry``: send again the routings a ``salesbot serve`` did not
take (HTTP mode); run it from cron or a worker so an outage ends without waiting for the
next save."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from salesbot_django.models import PendingEvent
from salesbot_django.outbox import retry


class Command(BaseCommand):
    help = "Send again the routings salesbot serve did not take, oldest first."

    def handle(self, *args: Any, **options: Any) -> None:
        sent = retry()
        self.stdout.write(f"sent {sent}, waiting {PendingEvent.objects.count()}")
