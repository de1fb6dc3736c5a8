"""Counting what a batch of outcomes did: the summaries of ``salesbot run``, ``assign``
and ``simulate`` (and their ``--json`` forms) all count here."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .models import Decision, Outcome

__all__ = ["Tally"]


@dataclass
class Tally:
    """Outcomes counted per decision status and per assignment."""

    #: Decisions per status (``assigned``, ``fallback``, ``not_applied``...), plus
    #: ``duplicate`` for an event id already processed and ``no_bot`` for an outcome
    #: without a decision.
    statuses: Counter[str] = field(default_factory=Counter)
    #: Records given an owner, per ``(account, bot, owner)``.
    assigned: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def add(self, outcome: Outcome, bot: str | None = None) -> Decision | None:
        """Count ``outcome`` (only the decision of ``bot``, when given); returns that
        decision, or None for a duplicate or an outcome with no decision of ``bot``."""
        if outcome.duplicate:
            self.statuses["duplicate"] += 1
            return None
        decisions = [d for d in outcome.decisions if bot is None or d.bot == bot]
        for decision in decisions:
            self.statuses[decision.status] += 1
            if decision.owner is not None:
                self.assigned[(outcome.account, decision.bot, decision.owner)] += 1
        if not decisions:
            self.statuses["no_bot"] += 1
        return decisions[0] if decisions else None

    def line(self, total: int, noun: str, rejected: int, *, zero_rejected: bool) -> str:
        """``271 events: 264 assigned, 1 duplicate, 6 not applied, 0 rejected``: the
        statuses in name order, then the rejected (when none, only with ``zero_rejected``)."""
        parts = [f"{n} {status.replace('_', ' ')}" for status, n in sorted(self.statuses.items())]
        if rejected or zero_rejected:
            parts.append(f"{rejected} rejected")
        return f"{total} {noun}: " + (", ".join(parts) or "none")
