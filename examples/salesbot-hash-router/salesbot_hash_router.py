"""Stable territory routing: a salesbot strategy that sends the same record id to the same user.

A third-party plugin, installed like any distribution: its entry point in the ``salesbot``
group registers the strategy ``hash_by_record``, which a ruleset bot uses with
``strategy: hash_by_record``. The user is picked by a CRC-32 of the record id, so the pick
needs no state and is the same on every run and every machine (for the same candidates).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

from salesbot_core import Pick, SelectRequest, Strategy, hookimpl


def select(request: SelectRequest) -> Pick:
    """Pick the candidate the record id hashes to."""
    index = zlib.crc32(request.record.id.encode()) % len(request.candidates)
    user = request.candidates[index]
    return Pick(user=user, state={}, reason=f"record id {request.record.id!r} hashes to {user!r}")


def validate_options(options: Mapping[str, Any]) -> list[str]:
    """This strategy takes no options: one message per option given."""
    return [f"unknown option {key!r}: hash_by_record takes no options" for key in options]


@hookimpl
def salesbot_register_strategies() -> list[Strategy]:
    return [Strategy("hash_by_record", select, "same record id, same user", validate_options)]
