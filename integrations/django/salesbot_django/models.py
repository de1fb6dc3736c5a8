"""The one table the app adds: which Django user stands for which bot.

A bot is offered in the host's Owner field as a user; this row tells that user from a
person (it is never in a pool and never gets a record) and says which bot of which
account it is, whatever its username is renamed to.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


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
        return f"bot:{self.bot}"
