"""Calendar periods for capacity caps: when the current day, week and month began."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


def period_starts(now: datetime, zone: ZoneInfo) -> dict[str, datetime]:
    """The start of the day, the week (Monday) and the month containing ``now`` in
    ``zone``, as aware UTC datetimes."""
    local = now.astimezone(zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    starts = {
        "day": midnight,
        "week": midnight - timedelta(days=midnight.weekday()),
        "month": midnight.replace(day=1),
    }
    # Rebuild each start from its wall-clock fields so a DST change between it and now
    # does not shift it by an hour.
    return {
        period: datetime(start.year, start.month, start.day, tzinfo=zone).astimezone(UTC)
        for period, start in starts.items()
    }
