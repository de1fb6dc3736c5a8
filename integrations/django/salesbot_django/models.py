"""The app's tables: which Django user stands for which bot, the outcomes written back,
and the events waiting for a ``salesbot serve`` that did not answer.

A bot is offered in the host's Owner field as a user; its row tells that user from a
person (it is never in a pool and never gets a record) and says which bot of which
account it is, whatever its username is renamed to. An outcome can reach the CRM twice
(the answer to a request, then its webhook; a retried signal): its event id, kept in the
same transaction as the write-back, makes the second a no-op.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from salesbot_core.models import BOT_PREFIX


class BotUser(models.Model):
    """A Django user that stands for a salesbot bot."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="salesbot_bot"
    )
    account = models.CharField(max_length=200)
    bot = models.CharField(max_length=200)

    class Meta:
        constraints = (models.UniqueConstraint(fields=("account", "bot"), name="salesbot_bot_once"),)

    def __str__(self) -> str:
        return f"{self.account}/{self.bot}"

    @property
    def owner_ref(self) -> str:
        """How salesbot writes this bot in a record's owners."""
        return BOT_PREFIX + self.bot


class AppliedOutcome(models.Model):
    """An outcome already written back to the CRM, by its event id."""

    event_id = models.CharField(max_length=250, unique=True)
    applied_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.event_id


class PendingEvent(models.Model):
    """A routing the service did not take (down, overloaded): its events, in order, sent
    again by ``salesbot_retry`` and before the next routing, oldest first."""

    account = models.CharField(max_length=200)
    entity = models.CharField(max_length=20)
    record_id = models.CharField(max_length=200)
    #: The events to send, the record's own last (its linked records' first).
    events = models.JSONField()
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.account}/{self.entity}/{self.record_id}"
