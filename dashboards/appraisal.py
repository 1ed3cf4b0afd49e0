"""The month's appraisal: per (hall, clerk), per clerk over every hall and per hall figures,
fair, stored and exported.

Run by `svc-appraisal` on demand or by its monthly timer. The calendar month is taken in the
halls' time zone, and written 2026-01 whether given so or as 2026-1. Everything is counted by
InfluxDB (a few grouped InfluxQL queries over the month), and the results are written back as
the `appraisal` and `appraisal_hours` measurements that the 员工考核 dashboard reads
(docs/contract.md); a re-run first deletes the month's points, so it overwrites and never adds.

- rated: ratings with a score that are not suspect; satisfied: those scoring 4 or 5;
  satisfaction = satisfied / rated; wilson_low: the 95 % Wilson lower bound of that share;
- poor: rated scoring 1 or 2; reason_*: poor ratings by the reason given;
- skipped: windows closed unrated; suspect: scored ratings flagged suspect by the collector
  and not cleared by a manager (never in rated);
- excluded: scored ratings an upheld appeal took out (console/reviews.py): flagged suspect with
  `excluded` 1, so out of every figure as suspects are, counted here apart and not in suspect;
- prompted and participation: prompt-mode windows, and the share of them rated;
- rank: 1, 2, ... over every (hall, clerk) row with at least min_ratings rated, by wilson_low,
  higher first, then by rated; rows equal in both (so in satisfied too) share a rank, and the
  next rank skips as many (1, 2, 2, 4);
- a clerk's row over every hall sums their rows in each hall, and is ranked likewise among
  those rows, the minimum applied to that sum: a clerk working in several halls may be under
  it in each and still be ranked;
- a hall's row counts its ratings with nobody logged in too; a clerk's row counts only theirs;
- {aspect}_rated and {aspect}_mean: in the aspect mode (docs/contract.md), the rated ratings
  that answered attitude (efficiency) and their mean score; absent where no terminal used it;
- staff_name: a clerk row's name, the latest the logins gave for the staff number before the
  month's end (the collector's `clerk` points), so a re-run of an old month names its clerks
  as they were: in that hall for a row in a hall, in any hall for a row over every hall; with
  none by then, the first after; exported only, never stored.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from collector import lineprotocol
from collector.influx import InfluxHttp
from firmware import contract

Z = 1.96  # 95 %
# the reasons a poor rating may give, in the contract's order (the export's), with their names
REASONS = contract.REASONS
REASON_NAMES = dict(zip(REASONS, ("态度", "效率", "业务能力", "环境", "其他"), strict=True))
COUNTS = (
    "rated",
    "satisfied",
    "poor",
    "skipped",
    "suspect",
    "prompted",
    "prompted_rated",
    "excluded",
)
ASPECTS = contract.ASPECTS
ASPECT_NAMES = dict(zip(ASPECTS, ("服务态度", "工作效率"), strict=True))
MONTH = re.compile(r"([0-9]{4})-([0-9]{1,2})")


@dataclass
class Row:
    """One row of the appraisal: a clerk in a hall, a hall (staff None), or a clerk over every
    hall (site None)."""

    site: str | None
    staff: str | None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    reasons: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    hours: dict[tuple[int, int], int] = field(default_factory=dict)  # (weekday, hour): rated
    # per aspect: the rated ratings that answered it, and the sum of their answers
    aspects: dict[str, list[int]] = field(default_factory=lambda: {a: [0, 0] for a in ASPECTS})
    rank: int | None = None
    staff_name: str | None = None  # the clerk's latest name; None for a hall, or none known

    @property
    def scope(self) -> str:
        """The row's `scope` tag (docs/contract.md)."""
        if self.staff is None:
            return "hall"
        return "clerk" if self.site is not None else "clerk_all"

    @property
    def rated(self) -> int:
        return self.counts["rated"]

    @property
    def satisfaction(self) -> float | None:
        return self.counts["satisfied"] / self.rated if self.rated else None

    @property
    def wilson_low(self) -> float | None:
        return wilson_lower_bound(self.counts["satisfied"], self.rated)

    def aspect_rated(self, aspect: str) -> int | None:
        """How many answered this aspect; None where the aspect mode was not used."""
        return self.aspects[aspect][0] or None

    def aspect_mean(self, aspect: str) -> float | None:
        answered, total = self.aspects[aspect]
        return total / answered if answered else None

    @property
    def participation(self) -> float | None:
        prompted = self.counts["prompted"]
        return self.counts["prompted_rated"] / prompted if prompted else None

    def add(self, other: Row) -> None:
        for name, n in other.counts.items():
            self.counts[name] += n
        for reason, n in other.reasons.items():
            self.reasons[reason] += n
        for slot, n in other.hours.items():
            self.hours[slot] = self.hours.get(slot, 0) + n
        for aspect, (answered, total) in other.aspects.items():
            self.aspects[aspect][0] += answered
            self.aspects[aspect][1] += total


def wilson_lower_bound(successes: int, n: int, z: float = Z) -> float | None:
    """The lower end of the Wilson score interval of successes / n; None for no trials.

    With no successes it is 0, and exactly so: rounding would leave some -1e-17 and others 0,
    which would order clerks none of whose customers were satisfied by noise, not by rated.
    """
    if n == 0:
        return None
    p = successes / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - margin) / (1 + z * z / n))


def normal_month(month: str) -> str:
    """The month as it is stored and shown, 2026-01, from 2026-01 or 2026-1; ValueError else.

    One spelling, so that a run for 2026-01 replaces the points of a run for 2026-1.
    """
    found = MONTH.fullmatch(month)
    if found is None or not 1 <= int(found[2]) <= 12:
        raise ValueError(f"month {month!r} is not like 2026-11")
    return f"{found[1]}-{int(found[2]):02d}"


def month_bounds(month: str, tz: str) -> tuple[dt.datetime, dt.datetime]:
    """The first instant of the month and of the next, in that time zone."""
    first = dt.datetime.strptime(normal_month(month), "%Y-%m")
    zone = ZoneInfo(tz)
    start = first.replace(tzinfo=zone)
    after = (first + dt.timedelta(days=32)).replace(day=1, tzinfo=zone)
    return start, after


def previous_month(tz: str, now: dt.datetime | None = None) -> str:
    """The calendar month before the current one in that time zone, like 2026-10."""
    today = (now or dt.datetime.now(dt.UTC)).astimezone(ZoneInfo(tz))
    return (today.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")


def compute(
    influx: InfluxHttp, month: str, tz: str = "Asia/Shanghai", min_ratings: int = 30
) -> list[Row]:
    """The month's rows: per site, its clerks by staff number, then the hall."""
    start, after = month_bounds(month, tz)
    when = f"time >= {_ns(start)} AND time < {_ns(after)}"
    honest = f'{when} AND "suspect" = 0'
    by = 'GROUP BY "site", "staff"'
    clerks: dict[tuple[str, str], Row] = {}

    def row(found: dict[str, object]) -> Row:
        key = (str(found["site"]), str(found.get("staff") or ""))
        return clerks.setdefault(key, Row(key[0], key[1] or None))

    queries = {
        f'SELECT count("score") AS "rated", sum("satisfied") AS "satisfied", '
        f'sum("poor") AS "poor" FROM rating WHERE {honest} {by}': ("rated", "satisfied", "poor"),
        f'SELECT count("rated") AS "skipped" FROM rating WHERE {when} AND "rated" = 0 {by}': (
            "skipped",
        ),
        f'SELECT count("score") AS "suspect" FROM rating WHERE {when} AND "suspect" = 1 {by}': (
            "suspect",
        ),
        f'SELECT count("score") AS "excluded" FROM rating WHERE {when} AND "suspect" = 1 '
        f'AND "excluded" = 1 {by}': ("excluded",),
        f'SELECT count("rated") AS "prompted", sum("rated") AS "prompted_rated" FROM rating '
        f"WHERE {honest} AND \"mode\" = 'prompt' {by}": ("prompted", "prompted_rated"),
    }
    for query, names in queries.items():
        for found in influx.query(query):
            for name in names:
                row(found).counts[name] = int(found[name] or 0)
    for counted in clerks.values():  # an upheld appeal's rating is flagged suspect too
        counted.counts["suspect"] -= counted.counts["excluded"]
    for found in influx.query(
        f'SELECT count("score") AS "n" FROM rating WHERE {honest} AND "poor" = 1 {by}, "reason"'
    ):
        if found.get("reason") in REASONS:
            row(found).reasons[str(found["reason"])] = int(found["n"])
    aspect_query = ", ".join(f'count("{a}") AS "{a}_n", sum("{a}") AS "{a}_sum"' for a in ASPECTS)
    for found in influx.query(f"SELECT {aspect_query} FROM rating WHERE {honest} {by}"):
        for a in ASPECTS:
            row(found).aspects[a] = [int(found[f"{a}_n"] or 0), int(found[f"{a}_sum"] or 0)]
    zone = ZoneInfo(tz)
    for found in influx.query(
        f'SELECT count("score") AS "n" FROM rating WHERE {honest} '
        f"{by}, time(1h) fill(none) tz('{tz}')"
    ):
        local = dt.datetime.fromtimestamp(int(found["time"]) / 1e9, zone)
        hours = row(found).hours
        slot = (local.isoweekday(), local.hour)  # every Monday 09:00 of the month in one
        hours[slot] = hours.get(slot, 0) + int(found["n"])
    rows = _arrange(clerks, min_ratings)
    _name(influx, rows, _ns(after))
    return rows


def _name(influx: InfluxHttp, rows: list[Row], before_ns: int) -> None:
    """Give each clerk row its name: the latest `clerk` point's before the month's end
    (before_ns) for the staff number, of the row's hall, or of any hall for a row over every
    hall (the collector writes a point when a login brings a name other than the last stored,
    so the latest then is the name the month was worked under, whenever this runs). A staff
    number with no point by then (its logins stored only after the month, as where the
    collector came after them) takes the first one after."""
    in_hall, anywhere = _names(influx, 'last("name")', f"time < {before_ns}", latest=True)
    later_in_hall, later = _names(influx, 'first("name")', f"time >= {before_ns}", latest=False)
    for key, name in later_in_hall.items():
        in_hall.setdefault(key, name)
    for staff, name in later.items():
        anywhere.setdefault(staff, name)
    for row in rows:
        if row.staff is not None:
            found = in_hall.get((row.site, row.staff)) if row.site else anywhere.get(row.staff)
            row.staff_name = found


def _names(
    influx: InfluxHttp, pick: str, when: str, latest: bool
) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    """One `clerk` point a (site, staff) as `pick` takes it; and by staff number alone, the
    latest (or the earliest) of those over every hall."""
    query = f'SELECT {pick} AS "name" FROM "clerk" WHERE {when} GROUP BY "site", "staff"'
    points = sorted(influx.query(query), key=lambda point: int(point["time"]), reverse=not latest)
    in_hall: dict[tuple[str, str], str] = {}
    anywhere: dict[str, str] = {}
    for point in points:  # the one that counts comes last
        staff, name = str(point["staff"]), str(point["name"])
        in_hall[(str(point["site"]), staff)] = name
        anywhere[staff] = name
    return in_hall, anywhere


def _arrange(clerks: dict[tuple[str, str], Row], min_ratings: int) -> list[Row]:
    """Each hall's clerks by staff number and the hall under them, hall by hall; then each
    clerk over every hall, by staff number. Both kinds of clerk row ranked, apart."""
    halls: dict[str, Row] = {}
    everywhere: dict[str, Row] = {}
    for (site, staff), row in sorted(clerks.items()):
        halls.setdefault(site, Row(site, None)).add(row)
        if staff:
            everywhere.setdefault(staff, Row(None, staff)).add(row)
    named = [r for (_, staff), r in clerks.items() if staff]
    _rank(named, min_ratings)
    _rank(list(everywhere.values()), min_ratings)
    ordered: list[Row] = []
    for site in sorted(halls):
        ordered += sorted((r for r in named if r.site == site), key=lambda r: r.staff or "")
        ordered.append(halls[site])
    return ordered + [everywhere[staff] for staff in sorted(everywhere)]


def _rank(rows: list[Row], min_ratings: int) -> None:
    """Competition ranking (1, 2, 2, 4) of the rows with at least min_ratings rated, by
    wilson_low and then rated, higher first. Rows equal in both are equal in satisfied too,
    and their bounds are then the same float: they share a rank."""
    ranked = sorted((r for r in rows if r.rated >= min_ratings), key=_standing, reverse=True)
    rank, ahead = 0, None
    for place, r in enumerate(ranked, 1):
        if _standing(r) != ahead:
            rank, ahead = place, _standing(r)
        r.rank = rank


def _standing(row: Row) -> tuple[float, int]:
    return (row.wilson_low or 0.0, row.rated)


def store(influx: InfluxHttp, month: str, tz: str, rows: list[Row]) -> int:
    """Replace the month's points with these rows; returns the points written.

    The month is tagged as normal_month writes it; the points an earlier version tagged with
    the short spelling it accepted (2026-1) are deleted too, so they do not linger beside them.
    """
    month = normal_month(month)
    year, number = month.split("-")
    spellings = " OR ".join(f"\"month\" = '{m}'" for m in sorted({month, f"{year}-{int(number)}"}))
    for measurement in ("appraisal", "appraisal_hours"):
        influx.execute(f'DELETE FROM "{measurement}" WHERE {spellings}')
    at = _ns(month_bounds(month, tz)[0])
    lines = []
    for r in rows:
        tags = {
            "month": month,
            "scope": r.scope,
            "site": r.site,
            "staff": r.staff,
        }
        fields: dict[str, lineprotocol.FieldValue | None] = {
            **r.counts,
            **{f"reason_{k}": v for k, v in r.reasons.items()},
            "satisfaction": r.satisfaction,
            "wilson_low": r.wilson_low,
            "participation": r.participation,
            "rank": r.rank,
            **{f"{a}_rated": r.aspect_rated(a) for a in ASPECTS},
            **{f"{a}_mean": r.aspect_mean(a) for a in ASPECTS},
        }
        lines.append(lineprotocol.line("appraisal", tags, fields, at))
        by_hour: dict[int, dict[str, lineprotocol.FieldValue | None]] = defaultdict(dict)
        for (weekday, hour), n in r.hours.items():
            by_hour[hour][f"d{weekday}"] = n
        lines += [
            lineprotocol.line("appraisal_hours", {**tags, "hour": f"{hour:02d}"}, counts, at)
            for hour, counts in sorted(by_hour.items())
        ]
    influx.write(lines)
    return len(lines)


def _ns(when: dt.datetime) -> int:
    return int(when.timestamp()) * 10**9
