"""Deadlines in working days on China's official calendar: the State Council's holidays and
its make-up working days (调休), as the `chinesecalendar` package knows them year by year.

A year the package does not know yet (the State Council publishes each year's calendar in
the November before) is counted in weekdays, Monday to Friday, and the deadline says so
(`Deadline.known` false), so that a page can show it as provisional.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import chinese_calendar


@dataclass(frozen=True)
class Deadline:
    due: dt.date  # the last day: the case is overdue from the day after
    known: bool  # every day counted was on the official calendar, none only a weekday


def is_working_day(day: dt.date) -> tuple[bool, bool]:
    """Whether the day is a working day, and whether the official calendar said so."""
    try:
        return bool(chinese_calendar.is_workday(day)), True
    except NotImplementedError:  # a year it has no data for yet
        return day.weekday() < 5, False


def after(start: dt.date, working_days: int) -> Deadline:
    """The `working_days`-th working day after `start` (a rating on a Saturday, or on a
    holiday, counts from the next working day; 0 is the start itself)."""
    if working_days < 0:
        raise ValueError(f"working days must be 0 or more, not {working_days}")
    day, counted, known = start, 0, is_working_day(start)[1]
    while counted < working_days:
        day += dt.timedelta(days=1)
        working, official = is_working_day(day)
        known = known and official
        counted += working
    return Deadline(day, known)
