"""Deadlines on China's official calendar (console/workdays.py), against days the State
Council fixed for 2026: the National Day holidays (1 to 7 October) with their make-up Sunday
(20 September) and Saturday (10 October), Mid-Autumn (25 to 27 September); and weekdays for a
year not yet published."""

from __future__ import annotations

import datetime as dt

import pytest

from console import workdays

D = dt.date


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        (D(2026, 9, 30), 1, D(2026, 10, 8)),  # National Day: 1 to 7 October off
        (D(2026, 9, 30), 3, D(2026, 10, 10)),  # 8, 9, then the make-up Saturday
        (D(2026, 9, 30), 5, D(2026, 10, 13)),  # 8, 9, 10 (Sat), 12, 13 October
        (D(2026, 10, 3), 1, D(2026, 10, 8)),  # a rating on a holiday counts from after it
        (D(2026, 9, 19), 1, D(2026, 9, 20)),  # a make-up Sunday is a working day too
        (D(2026, 9, 24), 1, D(2026, 9, 28)),  # Mid-Autumn: 25 to 27 September off
        (D(2026, 11, 6), 1, D(2026, 11, 9)),  # Friday to Monday
        (D(2026, 11, 6), 0, D(2026, 11, 6)),
    ],
)
def test_a_deadline_counts_the_official_working_days(start: D, days: int, due: D):
    deadline = workdays.after(start, days)
    assert deadline == workdays.Deadline(due, known=True)


def test_a_year_not_yet_published_is_counted_in_weekdays_and_says_so():
    assert workdays.is_working_day(D(2026, 10, 10)) == (True, True)  # the make-up Saturday
    assert workdays.is_working_day(D(2026, 10, 2)) == (False, True)  # a holiday's Friday
    future = D(2099, 1, 1)  # no calendar can know it yet
    assert workdays.is_working_day(future) == (future.weekday() < 5, False)
    friday = D(2099, 1, 2)
    assert friday.weekday() == 4
    assert workdays.after(friday, 1) == workdays.Deadline(D(2099, 1, 5), known=False)
    assert workdays.after(friday, 0) == workdays.Deadline(friday, known=False)


def test_a_deadline_across_the_years_edge_is_provisional_once_it_leaves_the_calendar():
    last = max(d for d in (D(y, 12, 31) for y in range(2024, 2100)) if _known(d))
    deadline = workdays.after(last, 5)
    assert deadline.due > last and not deadline.known
    assert workdays.after(last - dt.timedelta(days=40), 5).known


def test_a_negative_count_is_refused():
    with pytest.raises(ValueError, match="0 or more"):
        workdays.after(D(2026, 10, 1), -1)


def _known(day: D) -> bool:
    return workdays.is_working_day(day)[1]
