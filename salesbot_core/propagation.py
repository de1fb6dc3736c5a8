"""The contract of linked-record propagation modes: how a picked owner reaches a linked record.

Modes are returned by the ``salesbot_register_propagation_modes`` hook; ``add`` and
``replace`` (the Sales Bot's two options in multiple-owner accounts) are built in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PropagationMode:
    """A named way to combine a linked record's owners with the picked user."""

    name: str
    #: ``apply(current owners, picked user) -> new owners``; pure.
    apply: Callable[[Sequence[str], str], list[str]]
    description: str = ""


#: Single-owner accounts always use this mode: the picked user becomes the owner.
SINGLE_OWNER_MODE = "replace"
