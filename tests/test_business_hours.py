"""Business-time arithmetic for SLAs: weekends, absences, DST days, a working day that
ends just after the assignment (the SLA issue's "hard part").

Europe/Warsaw moves to summer time on Sunday 2026-03-29 (02:00 -> 03:00, UTC+1 -> UTC+2)
and back on Sunday 2026-10-25 (03:00 -> 02:00). 2026-03-23 and 2026-10-19 are Mondays.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from salesbot_plugins.availability import Absence, WorkingHours
from salesbot_plugins.business_hours import HORIZON, business_deadline

WARSAW = ZoneInfo("Europe/Warsaw")
OFFICE = WorkingHours()  # mon-fri 09:00-17:00


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=WARSAW)  # type: ignore[misc]


def deadline(start: datetime, within: timedelta, hours: WorkingHours | None = OFFICE, absences=()):  # type: ignore[no-untyped-def]
    found = business_deadline(start, within, hours=hours, absences=list(absences), zone=WARSAW)
    return None if found is None else found.astimezone(WARSAW)


def test_within_one_working_day() -> None:
    assert deadline(local(2026, 3, 23, 10, 0), timedelta(hours=2)) == local(2026, 3, 23, 12, 0)


def test_the_working_day_ends_ten_minutes_after_the_assignment() -> None:
    # 10 minutes on Monday, the other 110 from Tuesday 09:00.
    assert deadline(local(2026, 3, 23, 16, 50), timedelta(hours=2)) == local(2026, 3, 24, 10, 50)


def test_a_deadline_on_the_closing_minute_stays_on_that_day() -> None:
    assert deadline(local(2026, 3, 23, 15, 0), timedelta(hours=2)) == local(2026, 3, 23, 17, 0)


def test_friday_afternoon_runs_over_the_weekend() -> None:
    assert deadline(local(2026, 3, 20, 16, 0), timedelta(hours=2)) == local(2026, 3, 23, 10, 0)


def test_an_assignment_outside_working_hours_starts_the_clock_at_the_next_opening() -> None:
    assert deadline(local(2026, 3, 21, 12, 0), timedelta(minutes=30)) == local(2026, 3, 23, 9, 30)
    assert deadline(local(2026, 3, 23, 7, 0), timedelta(minutes=30)) == local(2026, 3, 23, 9, 30)
    assert deadline(local(2026, 3, 23, 7, 0), timedelta(0)) == local(2026, 3, 23, 9, 0)


def test_the_weekend_of_the_spring_dst_change_counts_wall_hours() -> None:
    # Friday 16:00 CET (15:00Z) + 2 h of work = Monday 10:00 CEST (08:00Z): 65 hours later
    # in absolute time, where a fixed UTC+1 offset would say 09:00 CEST.
    found = deadline(local(2026, 3, 27, 16, 0), timedelta(hours=2))
    assert found == local(2026, 3, 30, 10, 0)
    assert found is not None and found.astimezone(UTC) == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)


def test_the_autumn_dst_change_likewise() -> None:
    assert deadline(local(2026, 10, 23, 16, 0), timedelta(hours=2)) == local(2026, 10, 26, 10, 0)


def test_a_night_shift_over_the_spring_change_is_an_hour_shorter() -> None:
    # Sunday 00:00-08:00 on 2026-03-29 has 7 real hours (02:00-03:00 never happens).
    nights = WorkingHours(days=["sun", "mon"], start=time(0, 0), end=time(8, 0))
    start = local(2026, 3, 29, 0, 0)
    assert deadline(start, timedelta(hours=7), nights) == local(2026, 3, 29, 8, 0)
    assert deadline(start, timedelta(hours=7, minutes=30), nights) == local(2026, 3, 30, 0, 30)
    # And over the autumn change, 9 hours.
    autumn = local(2026, 10, 25, 0, 0)
    assert deadline(autumn, timedelta(hours=9), nights) == local(2026, 10, 25, 8, 0)


def test_working_hours_starting_in_the_skipped_hour_start_when_the_clock_jumps() -> None:
    early = WorkingHours(days=["sun"], start=time(2, 30), end=time(6, 0))
    assert deadline(local(2026, 3, 29, 0, 0), timedelta(minutes=10), early) == local(2026, 3, 29, 3, 10)


def test_an_absence_stops_the_clock() -> None:
    tuesday_off = Absence(start=datetime(2026, 3, 24, 0, 0), end=datetime(2026, 3, 25, 0, 0))
    assert deadline(local(2026, 3, 23, 16, 0), timedelta(hours=2), absences=[tuesday_off]) == local(
        2026, 3, 25, 10, 0
    )


def test_an_absence_in_the_middle_of_a_day_splits_it() -> None:
    lunch = Absence(start=datetime(2026, 3, 23, 12, 0), end=datetime(2026, 3, 23, 13, 30))
    dentist = Absence(start=datetime(2026, 3, 23, 14, 0), end=datetime(2026, 3, 23, 14, 15))
    # 10:00-12:00 (2 h), 13:30-14:00 (30 min), 14:15-14:45 (30 min) = 3 h.
    assert deadline(local(2026, 3, 23, 10, 0), timedelta(hours=3), absences=[dentist, lunch]) == local(
        2026, 3, 23, 14, 45
    )


def test_an_absence_given_as_an_instant_in_another_zone() -> None:
    # 08:00Z-11:00Z on Monday is 09:00-12:00 in Warsaw (CET).
    morning = Absence(
        start=datetime(2026, 3, 23, 8, 0, tzinfo=UTC), end=datetime(2026, 3, 23, 11, 0, tzinfo=UTC)
    )
    assert deadline(local(2026, 3, 23, 9, 0), timedelta(hours=1), absences=[morning]) == local(
        2026, 3, 23, 13, 0
    )


def test_without_working_hours_time_counts_around_the_clock_except_absences() -> None:
    off = Absence(start=datetime(2026, 3, 21, 0, 0), end=datetime(2026, 3, 23, 0, 0))
    assert deadline(local(2026, 3, 20, 23, 0), timedelta(hours=2), None, [off]) == local(2026, 3, 23, 1, 0)
    assert deadline(local(2026, 3, 28, 23, 0), timedelta(hours=4), None) == local(2026, 3, 29, 4, 0)


def test_no_deadline_when_the_owner_is_away_beyond_the_horizon() -> None:
    gone = Absence(start=datetime(2026, 1, 1), end=datetime(2026, 3, 23) + HORIZON + timedelta(days=30))
    assert deadline(local(2026, 3, 23, 10, 0), timedelta(hours=2), absences=[gone]) is None


def test_a_negative_time_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        deadline(local(2026, 3, 23, 10, 0), timedelta(minutes=-1))
