"""Builders of test events."""

from __future__ import annotations

from typing import Any

#: The users of the default account in most tests; olga is deactivated.
TEAM = """
users:
  - {id: anna, name: Anna Nowak}
  - {id: bartek, name: Bartek Wiśniewski}
  - {id: celina, name: Celina Zając}
  - {id: jan, name: Jan Kowalski}
  - {id: olga, name: Olga Lis, active: false}
"""


def deal_event(
    n: int, owners: list[str] | None = None, kind: str = "created", **fields: Any
) -> dict[str, Any]:
    """An event ``e<n>`` on deal ``d<n>`` whose Owner is the inbound bot unless told otherwise."""
    record = {
        "entity": "deal",
        "id": f"d{n}",
        "owners": ["bot:inbound"] if owners is None else owners,
        **fields,
    }
    return {"id": f"e{n}", "kind": kind, "record": record}


#: Why a durable-only test is skipped where durable-rules does not run (Python 3.13+).
NO_DURABLE = "durable-rules is not installed or does not load on this Python (3.13+)"
