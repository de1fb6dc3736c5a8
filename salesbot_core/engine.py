"""The Engine: what a host app embeds. It owns a plugin manager, the loaded rules and a store.

``Engine.handle`` validates an event, then in ONE store transaction: answers a repeated
event id from the log, reads the strategy state, lets the dispatcher decide, and writes
the record, the new state and the outcome together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .dispatcher import Dispatcher
from .errors import EventError, StoreError
from .models import BOT_PREFIX, Event, Outcome
from .registry import Registry, make_plugin_manager
from .rulesets import Rules, load_rulesets
from .store import Store

DEFAULT_RULESETS = "rulesets"
DEFAULT_STORE = "salesbot.db"


def open_store(registry: Registry, url: str) -> Store:
    """Ask the store plugins for a store that handles ``url`` (a path or a URL)."""
    store = registry.pm.hook.salesbot_open_store(url=url)
    if store is None:
        raise StoreError(f"no store plugin handles {url!r}")
    return store


class Engine:
    """Routes CRM records to owners by the bots of a rulesets folder.

    >>> engine = Engine("rulesets", "salesbot.db")            # doctest: +SKIP
    >>> engine.handle({"id": "e1", "kind": "created",
    ...                "record": {"entity": "deal", "id": "d1", "owners": ["bot:inbound"]}})
    """

    def __init__(
        self,
        rulesets: str | Path | Rules = DEFAULT_RULESETS,
        store: str | Path | Store = DEFAULT_STORE,
        *,
        plugins: Iterable[object] = (),
        block: Iterable[str] = (),
        autoload: bool | None = None,
    ):
        """Build the plugin registry, load the rules, open the store.

        ``plugins`` are extra plugin objects or modules from the host; ``block`` names
        plugins not to load; ``autoload`` controls the ``salesbot`` entry points.
        Raises ``RulesetError``, ``PluginError`` or ``StoreError`` with a readable message.
        """
        self.registry = make_plugin_manager(plugins, block=block, autoload=autoload)
        self.strategies = self.registry.strategies()
        self.rules = (
            rulesets if isinstance(rulesets, Rules) else load_rulesets(rulesets, self.strategies)
        )
        self.store = store if isinstance(store, Store) else open_store(self.registry, str(store))
        self._dispatcher = Dispatcher(self.rules, self.strategies, self.registry.pm.hook)

    @property
    def plugin_failures(self) -> list[str]:
        """Entry-point plugins that failed to import, one readable line each."""
        return [str(failure) for failure in self.registry.failures]

    def validate(self, event: Event | Mapping[str, Any]) -> Event:
        """Return ``event`` as a valid ``Event`` or raise ``EventError`` naming the field."""
        if not isinstance(event, Event):
            try:
                event = Event.model_validate(event)
            except ValidationError as exc:
                event_id = event.get("id") if isinstance(event, Mapping) else None
                raise EventError(_describe(event_id, exc)) from None
        account = event.account
        for i, owner in enumerate(event.record.owners):
            if owner.startswith(BOT_PREFIX):
                if self.rules.bot(account, owner[len(BOT_PREFIX):]) is None:
                    raise EventError(f"event {event.id!r}: field 'record.owners.{i}': "
                                     f"{owner!r} is not a bot of account {account!r}")
            elif self.rules.user(account, owner) is None:
                raise EventError(f"event {event.id!r}: field 'record.owners.{i}': "
                                 f"{owner!r} is not a user of account {account!r}")
        return event

    def handle(self, event: Event | Mapping[str, Any]) -> Outcome:
        """Process one event exactly once and return its outcome.

        An event id seen before returns the first outcome (``duplicate=True``) and
        changes nothing. Raises ``EventError`` for an invalid event, changing nothing.
        """
        event = self.validate(event)
        record = event.record
        with self.store.transaction() as tx:
            seen = tx.outcome(event.account, event.id)
            if seen is not None:
                return seen.model_copy(update={"duplicate": True})
            stored = tx.get_record(event.account, record.entity, record.id)
            states = {b: tx.get_state(event.account, b) for b in record.bot_ids()}
            decided = self._dispatcher.decide(
                event, stored["owners"] if stored else None, states
            )
            for bot_id, state in decided.states.items():
                tx.put_state(event.account, bot_id, state)
            tx.put_record(event.account, decided.record.model_dump(mode="json"))
            tx.put_outcome(decided.outcome)
        self.registry.pm.hook.salesbot_after_assign(outcome=decided.outcome)
        return decided.outcome

    def explain(self, account: str, entity: str, record_id: str) -> list[Outcome]:
        """Every outcome logged for a record, oldest first: who got it and why."""
        return list(self.store.outcomes(account, entity, record_id))

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _describe(event_id: object, exc: ValidationError) -> str:
    label = f"event {event_id!r}" if isinstance(event_id, str) else "event"
    return "; ".join(
        f"{label}: field {'.'.join(str(p) for p in err['loc'])!r}: {err['msg']}"
        for err in exc.errors()
    )
