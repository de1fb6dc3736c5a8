"""The contract of linked-record propagation modes: how a picked owner reaches a linked record.

Modes are returned by the ``salesbot_register_propagation_modes`` hook; they apply in
multiple-owner accounts only (in a single-owner account the picked user becomes the linked
record's owner, whatever the mode).
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
