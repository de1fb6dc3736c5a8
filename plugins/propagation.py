"""Linked-record propagation modes of multiple-owner accounts (the seed's Examples 1 and 2)."""

from __future__ import annotations

from collections.abc import Sequence

from salesbot_core import hookimpl
from salesbot_core.propagation import PropagationMode


def add(owners: Sequence[str], picked: str) -> list[str]:
    """The picked user becomes one more owner; the others stay."""
    return [*owners, picked] if picked not in owners else list(owners)


def replace(owners: Sequence[str], picked: str) -> list[str]:
    """The picked user becomes the only owner."""
    return [picked]


@hookimpl
def salesbot_register_propagation_modes() -> list[PropagationMode]:
    return [
        PropagationMode("add", add, "add the picked user to the linked record's owners"),
        PropagationMode("replace", replace, "make the picked user the linked record's only owner"),
    ]
