"""Bar charts of the admin page, drawn server-side as SVG: numbers as text beside each bar.

Pure geometry: ``bars`` turns counts into rows a template draws; nothing here knows HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: The widest bar, in SVG units; the label column and the count sit beside it.
BAR_WIDTH = 300
ROW_HEIGHT = 24
LABEL_WIDTH = 160


@dataclass(frozen=True)
class Bar:
    """One user's bar: label, count, and where it is drawn."""

    label: str
    count: int
    y: int
    width: int


@dataclass(frozen=True)
class Chart:
    """A horizontal bar chart: a title, its bars, and the SVG's size."""

    title: str
    bars: list[Bar]
    total: int
    height: int
    width: int = LABEL_WIDTH + BAR_WIDTH + 60
    label_width: int = LABEL_WIDTH


def bars(title: str, counts: Mapping[str, int], order: Sequence[str] = ()) -> Chart:
    """A chart of ``counts``: the users of ``order`` first (0 included), then any other
    user counted (a fallback owner outside the pool), by name."""
    users = [*order, *sorted(set(counts) - set(order))]
    top = max([counts.get(user, 0) for user in users] + [1])
    drawn = [
        Bar(user, counts.get(user, 0), i * ROW_HEIGHT, round(BAR_WIDTH * counts.get(user, 0) / top))
        for i, user in enumerate(users)
    ]
    return Chart(title, drawn, sum(counts.get(user, 0) for user in users), max(1, len(users)) * ROW_HEIGHT)
