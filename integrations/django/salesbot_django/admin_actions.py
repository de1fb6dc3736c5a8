"""The seed's list operation as a changelist action, "Assign with Sales Bot: <bot>".

The action is added to the admin of every mapped model, on every admin site (Django CRM
has its own beside ``admin.site``), one per bot of that entity, without subclassing or
re-registering the host's admin classes. Each run is one salesbot list operation
(``Engine.assign_list``) with an operation id of its own: every selected record gets its
own pick, exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.sites import all_sites
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.text import slugify

from .conf import Config, EntityMap
from .sync import bot_username


def _action(mapped: EntityMap, bot: Mapping[str, Any]) -> Callable[..., None]:
    label = f"Assign with {bot_username(bot)}"

    @admin.action(description=label)
    def assign(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
        from . import routing
        from .backends import Unavailable, backend
        from .models import BotUser
        from .sync import DEFAULT_ACCOUNT, account_id

        backend().refresh()
        account = account_id(bot["account"]) if "account" in bot else DEFAULT_ACCOUNT
        link = BotUser.objects.get(account=account, bot=bot["id"])
        try:
            outcomes = routing.assign(mapped, queryset, link)
        except Unavailable as exc:
            model_admin.message_user(
                request, f"salesbot did not answer, nothing was assigned: {exc}", messages.ERROR
            )
            return
        assigned = sum(1 for outcome in outcomes if outcome.owners_after != outcome.owners_before)
        skipped = queryset.count() - len(outcomes)
        level = messages.SUCCESS if assigned == len(outcomes) and not skipped else messages.WARNING
        text = f"{bot_username(bot)} assigned {assigned} of {len(outcomes)} records"
        if skipped:
            text += f"; {skipped} of another department left as they were"
        model_admin.message_user(request, text, level)

    # Admin actions are told apart by name: one per bot of each account.
    assign.__name__ = f"salesbot_assign_{slugify(bot.get('account', ''))}_{bot['id']}"
    return assign


def install(config: Config) -> None:
    """Add each bot's action to the admin of its entity's model on every admin site."""
    for site in list(all_sites):
        for mapped in config.entities.values():
            if not site.is_registered(mapped.model):
                continue
            model_admin = site.get_model_admin(mapped.model)
            actions = [
                _action(mapped, bot) for bot in config.bots if bot.get("entity", "deal") == mapped.entity
            ]
            if actions:
                model_admin.actions = [*(model_admin.actions or ()), *actions]
