"""Builders of test events, and a matcher for messages that quote pydantic."""

from __future__ import annotations

import re
from typing import Any

#: Stands, in an expected message, for words pydantic writes ("Input should be ...",
#: "Value error, "): they change between pydantic releases and say nothing about salesbot.
PYDANTIC = "<pydantic's words>"


class Message:
    """Equal to a text that reads as ``expected``, each ``PYDANTIC`` in it standing for any
    words (at least one at the end): salesbot's own part (file, bot, event, field, its own
    reason) is compared exactly. Usable inside lists: ``lines == ["a", Message(...)]``."""

    def __init__(self, expected: str) -> None:
        self.expected = expected
        parts = [re.escape(part) for part in expected.split(PYDANTIC)]
        pattern = "(?s:.*?)".join(parts)
        self.pattern = re.compile(pattern + "(?s:.+)" if expected.endswith(PYDANTIC) else pattern)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and self.pattern.fullmatch(other) is not None

    def __hash__(self) -> int:
        return hash(self.expected)

    def __repr__(self) -> str:
        return f"Message({self.expected!r})"


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
