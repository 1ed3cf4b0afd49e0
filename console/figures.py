"""The console's reads of InfluxDB: a hall's day, its clerks' month for the wall display, its
terminals, and the poor ratings the follow-up register reconciles against.

Each function sends its few InfluxQL statements in one request (collector/influx.py's
InfluxHttp) and lets InfluxDB count, grouped by tags, so a page costs what counting its hall's
points costs InfluxDB, not what sending them would; only the poor ratings, which the register
needs one by one, come back as points. The figures are the appraisal's (dashboards/appraisal.py):
a rating is honest when `"suspect" = 0` (an appeal that is upheld marks the rating suspect, so
it leaves these figures as it leaves the appraisal's), rated counts honest ratings with a score,
satisfied those of them scoring 4 or 5, and satisfaction is satisfied / rated.

The site is checked against the contract's name rule (firmware/contract.py) before it goes into
a statement, so no text of a caller's ever reaches InfluxQL; identifiers are double-quoted and
the site single-quoted, as InfluxQL writes them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from collector.influx import InfluxHttp
from dashboards import appraisal
from firmware import contract

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# the counts today()'s statements give, each as the appraisal counts it (appraisal.compute)
DAY_COUNTS = ("rated", "satisfied", "poor", "skipped", "suspect")
# the fields of a terminal's `device` points the terminals page shows, besides `online`
TERMINAL_FIELDS = ("queue", "fw", "stuck_keys", "rssi", "heap_free", "dropped")


def satisfaction(satisfied: int, rated: int) -> float | None:
    """满意率 as the appraisal defines it (appraisal.Row.satisfaction): satisfied / rated over
    honest ratings; None with nothing rated."""
    return satisfied / rated if rated else None


@dataclass
class Tally:
    """The ratings of a counter, a clerk or a hall over a time, counted as the appraisal counts
    a clerk's month: rated, satisfied and poor are honest ratings with a score (poor: 1 or 2);
    skipped, windows closed unrated; suspect, scored ratings flagged suspect (never in rated)."""

    rated: int = 0
    satisfied: int = 0
    poor: int = 0
    skipped: int = 0
    suspect: int = 0

    @property
    def satisfaction(self) -> float | None:
        return satisfaction(self.satisfied, self.rated)

    def add(self, found: Mapping[str, Any]) -> None:
        """Add the counts a row of today()'s statements holds (each holds some of them)."""
        for name in DAY_COUNTS:
            if name in found:
                setattr(self, name, getattr(self, name) + int(found[name] or 0))


@dataclass(frozen=True)
class Today:
    """A hall's ratings from local midnight (since) to now (until, not included).

    counters and clerks hold those with a rating (or a skipped window) in the time; a rating
    from a terminal with no counter set, or with nobody logged in, counts in the hall's total
    only, as the appraisal's hall row counts ratings with nobody logged in."""

    site: str
    since: dt.datetime
    until: dt.datetime
    hall: Tally
    counters: dict[str, Tally] = field(default_factory=dict)
    clerks: dict[str, Tally] = field(default_factory=dict)


@dataclass(frozen=True)
class ClerkMonth:
    """A clerk's honest ratings in one hall over the month to date, for the wall display.

    stars: the mean score rounded to the nearest half star (halves up: a mean of 4.25 shows
    4.5), from 1 to 5 in steps of 0.5; None under the appraisal's minimum sample, where the
    wall shows no stars. The mean score and not the satisfaction share, because stars are the
    scale the customers themselves pressed (5 非常满意 is five stars), so a row of stars reads
    as what they gave on average; a share of 0.9 has no number of stars of its own. Half stars
    because that is what a wall display draws, and a finer step would be noise at the few
    dozen ratings of a clerk's month."""

    staff: str
    rated: int
    satisfied: int
    score_sum: int  # the sum of the rated scores, from which mean_score and stars follow exactly
    stars: float | None

    @property
    def satisfaction(self) -> float | None:
        return satisfaction(self.satisfied, self.rated)

    @property
    def mean_score(self) -> float | None:
        return self.score_sum / self.rated if self.rated else None


@dataclass(frozen=True)
class Wall:
    """A hall's clerks over [since, until): the month's first instant in the hall's time zone,
    and now, or the month's end once it is over. clerks: by staff number, each clerk with a
    rated rating in that time."""

    site: str
    since: dt.datetime
    until: dt.datetime
    clerks: dict[str, ClerkMonth]


@dataclass(frozen=True)
class Terminal:
    """What a terminal last said of itself (its `device` points, docs/contract.md): each
    field as its last point that carried it gave it, None if none in the time did."""

    device: str
    last_seen: dt.datetime  # its last device point's time (the collector's receipt), UTC
    online: bool  # the last point's: false from its last will, true on telemetry and state
    queue: int | None  # ratings waiting on the terminal to be sent
    fw: str | None
    stuck_keys: int | None  # keys held down (telemetry reports 0 while none are)
    rssi: int | None
    heap_free: int | None
    dropped: int | None  # ratings refused for a full flash outbox, since first set up


@dataclass(frozen=True)
class PoorRating:
    """A stored rating with `"poor" = 1`, identified by (site, device, seq).

    time_ns: its point's time. For a dated rating, the press time in ns with the seq in the
    sub-millisecond digits (press ms = time_ns // 10**6); for an undated one (the terminal
    never learnt the time, `undated` = 1), its first receipt by a collector, the seq again
    in the sub-millisecond digits (docs/collector.md): the press was before it, by how much
    nobody knows."""

    site: str
    device: str
    seq: int
    time_ns: int
    undated: bool
    counter: str | None
    staff: str | None
    score: int
    reason: str | None
    suspect: bool


def today(influx: InfluxHttp, site: str, zone: ZoneInfo, now: dt.datetime) -> Today:
    """The hall's ratings since local midnight (in its time zone) until now, per counter, per
    clerk and in total: the appraisal's three statements over one day of one hall, grouped by
    counter and clerk, added up here."""
    since = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    where = f'"site" = {_site(site)} AND time >= {_ns(since)} AND time < {_ns(now)}'
    by = 'GROUP BY "counter", "staff"'
    hall = Tally()
    counters: dict[str, Tally] = {}
    clerks: dict[str, Tally] = {}
    for found in influx.query(
        f'SELECT count("score") AS "rated", sum("satisfied") AS "satisfied", '
        f'sum("poor") AS "poor" FROM "rating" WHERE {where} AND "suspect" = 0 {by}; '
        f'SELECT count("rated") AS "skipped" FROM "rating" WHERE {where} AND "rated" = 0 {by}; '
        f'SELECT count("score") AS "suspect" FROM "rating" WHERE {where} AND "suspect" = 1 {by}'
    ):
        hall.add(found)
        if found.get("counter"):
            counters.setdefault(str(found["counter"]), Tally()).add(found)
        if found.get("staff"):
            clerks.setdefault(str(found["staff"]), Tally()).add(found)
    return Today(
        site, since, now, hall, dict(sorted(counters.items())), dict(sorted(clerks.items()))
    )


def month_wall(
    influx: InfluxHttp, site: str, month_start: dt.datetime, now: dt.datetime, min_ratings: int
) -> Wall:
    """Each clerk's month to date in the hall: honest ratings from month_start (the month's
    first instant, in the hall's time zone as a ZoneInfo) until now or the month's end,
    whichever is first; for a month that is over, the appraisal's rated and satisfied for that
    clerk and hall exactly. Stars only for a clerk with at least min_ratings rated, the
    appraisal's minimum sample."""
    zone = month_start.tzinfo
    if not isinstance(zone, ZoneInfo):
        raise ValueError(f"month_start {month_start!r} needs a ZoneInfo, the hall's time zone")
    since, after = appraisal.month_bounds(month_start.strftime("%Y-%m"), zone.key)
    if since != month_start:
        raise ValueError(f"month_start {month_start!r} is not the first instant of its month")
    until = min(now, after)
    clerks: dict[str, ClerkMonth] = {}
    for found in influx.query(
        f'SELECT count("score") AS "rated", sum("satisfied") AS "satisfied", '
        f'sum("score") AS "score_sum" FROM "rating" WHERE "site" = {_site(site)} '
        f'AND time >= {_ns(since)} AND time < {_ns(until)} AND "suspect" = 0 GROUP BY "staff"'
    ):
        staff, rated = str(found.get("staff") or ""), int(found["rated"] or 0)
        if staff and rated:
            score_sum = int(found["score_sum"])
            # the nearest half star, halves up: floor(2 * mean + 1/2) halves, in integers
            half_stars = (4 * score_sum + rated) // (2 * rated)
            stars = half_stars / 2 if rated >= min_ratings else None
            clerks[staff] = ClerkMonth(staff, rated, int(found["satisfied"]), score_sum, stars)
    return Wall(site, since, until, dict(sorted(clerks.items())))


def terminals(influx: InfluxHttp, site: str, since: dt.datetime) -> dict[str, Terminal]:
    """The hall's terminals that sent a telemetry or state message since then, by device id:
    the time and `online` of each one's last point, and each other field's last value."""
    where = f'"site" = {_site(site)} AND time >= {_ns(since)}'
    lasts = ", ".join(f'last("{name}") AS "{name}"' for name in TERMINAL_FIELDS)
    # apart: with more than one selector InfluxQL gives no point's time, so last("online"),
    # on every device point, gives alone the time of the last one
    seen: dict[str, dict[str, Any]] = {}
    latest: dict[str, dict[str, Any]] = {}
    for row in influx.query(
        f'SELECT last("online") AS "online" FROM "device" WHERE {where} GROUP BY "device"; '
        f'SELECT {lasts} FROM "device" WHERE {where} GROUP BY "device"'
    ):
        (seen if "online" in row else latest)[str(row["device"])] = row
    found: dict[str, Terminal] = {}
    for device, point in sorted(seen.items()):
        last = latest.get(device, {})
        found[device] = Terminal(
            device,
            last_seen=EPOCH + dt.timedelta(microseconds=int(point["time"]) // 1000),
            online=bool(point["online"]),
            queue=last.get("queue"),
            fw=last.get("fw"),
            stuck_keys=last.get("stuck_keys"),
            rssi=last.get("rssi"),
            heap_free=last.get("heap_free"),
            dropped=last.get("dropped"),
        )
    return found


def poor_ratings(
    influx: InfluxHttp, since_ns: int, until_ns: int, site: str | None = None
) -> list[PoorRating]:
    """Every stored rating with `"poor" = 1` whose point time is in [since_ns, until_ns), of
    one hall or of all, suspect ones too, oldest first, each (site, device, seq) once.

    The time is the point's: the press time of a dated rating, however late it arrived (a
    terminal offline for days sends its queue then), and the first receipt of an undated one;
    consecutive ranges never overlap, and a reconciliation must reach as far back as ratings
    may arrive late. An undated rating two collectors stored at once is two points of one seq
    until the collector settles it on the earliest: the earliest is the one given here."""
    hall = f' AND "site" = {_site(site)}' if site is not None else ""
    found = influx.query(
        'SELECT "score", "seq", "suspect", "undated", "counter", "staff", "reason", "site", '
        f'"device" FROM "rating" WHERE "poor" = 1 AND time >= {since_ns} AND time < {until_ns}'
        f"{hall}"
    )
    ratings: dict[tuple[str, str, int], PoorRating] = {}
    for point in sorted(found, key=lambda row: int(row["time"])):
        key = (str(point["site"]), str(point["device"]), int(point["seq"]))
        ratings.setdefault(
            key,
            PoorRating(
                *key,
                time_ns=int(point["time"]),
                undated=bool(point["undated"]),
                counter=point["counter"] or None,
                staff=point["staff"] or None,
                score=int(point["score"]),
                reason=point["reason"] or None,
                suspect=bool(point["suspect"]),
            ),
        )
    return list(ratings.values())


@dataclass(frozen=True)
class Flagged:
    """A rating the collector flagged suspect, with what has been decided of it since: the
    suspects page's row (a manager confirms or clears each)."""

    device: str
    seq: int
    time: dt.datetime  # its point's time, UTC
    counter: str | None
    staff: str | None
    score: int | None  # None: a window closed unrated
    why: str | None  # the collector's rule; `appeal_upheld` once an appeal excluded it
    suspect: bool  # as it counts now: False once a manager cleared it
    excluded: bool  # an upheld appeal took it out


def suspect_ratings(
    influx: InfluxHttp, site: str, since: dt.datetime, until: dt.datetime
) -> list[Flagged]:
    """Every rating of the hall in [since, until) that has a `suspect_why` (the collector
    flagged it, or an appeal excluded it), newest first: cleared ones too, which count again
    but stay on the page with their verdict."""
    found = influx.query(
        'SELECT "score", "seq", "suspect", "suspect_why", "excluded", "counter", "staff", '
        f'"device" FROM "rating" WHERE "site" = {_site(site)} AND "suspect_why" =~ /./ '
        f"AND time >= {_ns(since)} AND time < {_ns(until)}"
    )
    return [
        Flagged(
            device=str(row["device"]),
            seq=int(row["seq"]),
            time=EPOCH + dt.timedelta(microseconds=int(row["time"]) // 1000),
            counter=row["counter"] or None,
            staff=row["staff"] or None,
            score=None if row["score"] is None else int(row["score"]),
            why=row["suspect_why"],
            suspect=bool(row["suspect"]),
            excluded=row["excluded"] == 1,
        )
        for row in sorted(found, key=lambda r: -int(r["time"]))
    ]


def _site(site: str) -> str:
    """The site as an InfluxQL string literal, once it keeps the contract's name rule: its
    characters (a-z, 0-9, -) need no escaping, and nothing else gets into a statement."""
    if not contract.valid_name("site", site):
        raise ValueError(f"site {site!r} breaks the contract's name rule")
    return f"'{site}'"


def _ns(when: dt.datetime) -> int:
    """An aware time as InfluxDB's ns since 1970, exactly (a float's timestamp is not, in ns)."""
    return (when - EPOCH) // dt.timedelta(microseconds=1) * 1000
