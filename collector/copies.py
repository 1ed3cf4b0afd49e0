"""A rating sent again is that rating: each rating of a batch is new, a copy, or a conflict.

`(site, device, seq)` identifies a rating (the contract, docs/contract.md). Before a batch is
written, one request asks InfluxDB for what is stored under the batch's seqs, and each rating
is classified:

- **new**: nothing stored under its seq (nor earlier in the batch): it is written;
- **a copy**: the stored rating has the same content (point time, counter, staff, mode, reason,
  score, wait, aspects; the time left out when either has no ts, as when a terminal that stamped
  a rating late sends it again after a reboot without its stamp): it is not written again, so
  the original keeps everything its first receipt gave it, its suspect verdict and delay among
  them;
- **a conflict**: the same seq with other content: set aside as a `conflict` dead letter, never
  written beside or over the original.

Dated ratings are looked up, per terminal, in the batch's seq range within WINDOW_NS of the
batch's times (an original further off in time is out of reach: only a terminal reusing its
seqs could make one, which the firmware never does); undated ones in their seq range over all
time, since they have no time of their own (they are rare). A new undated rating is stored at
its first receipt; two collectors of a share group may each store the same one at the same
moment, each finding nothing, so once written they are settled (`settle`): the earliest point
stays, the later are deleted. A seq found stored twice (a settle cut short) is settled too.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from collector.influx import InfluxHttp
from collector.rating import Rating
from firmware import contract

WINDOW_NS = 86_400_000 * 1_000_000  # a day either side of the batch's ratings of a terminal
LATEST_NS = contract.INT_MAX - 1  # the last time InfluxDB can hold
TAGS = ("counter", "staff", "mode", "reason")
FIELDS = ("score", "wait_ms", *contract.ASPECTS)
COLUMNS = ",".join(f'"{c}"' for c in ("seq", "undated", *TAGS, *FIELDS, "site", "device"))

Key = tuple[str, str, int]  # site, device, seq


class Content(NamedTuple):
    """What a copy must repeat: its point time (None without ts), tags and message fields."""

    time_ns: int | None
    values: tuple[Any, ...]

    def differs(self, copy: Content) -> str | None:
        """What differs in a copy, or None when it is that rating."""
        names = (*TAGS, *FIELDS)
        changed = [
            f"{n} {a!r} -> {b!r}"
            for n, a, b in zip(names, self.values, copy.values, strict=True)
            if a != b
        ]
        if None not in (self.time_ns, copy.time_ns) and self.time_ns != copy.time_ns:
            changed.insert(0, f"time {self.time_ns!r} -> {copy.time_ns!r}")
        return "seq already stored with other content: " + ", ".join(changed) if changed else None


class Verdict(NamedTuple):
    """new: write it (undated_ns: where, for a rating without ts); else a copy, or the
    conflict's reason."""

    new: bool
    undated_ns: int | None = None
    conflict: str | None = None


COPY = Verdict(new=False)


class Found(NamedTuple):
    """A batch classified: a verdict a rating, and the keys found stored more than once."""

    verdicts: list[Verdict]
    doubled: list[Key]


def _values(values: dict[str, Any]) -> tuple[Any, ...]:
    return (*(values.get(k) for k in TAGS), *(values.get(k) for k in FIELDS))


def of_rating(rating: Rating) -> Content:
    values = {k: getattr(rating, k) for k in (*TAGS, "score", "wait_ms")}
    values.update(rating.aspects or {})
    time_ns = None if rating.ts is None else contract.point_time_ns(rating.ts, rating.seq)
    return Content(time_ns, _values(values))


def of_row(row: dict[str, Any]) -> Content:
    return Content(None if row.get("undated") else row.get("time"), _values(row))


def classify(writer: InfluxHttp, ratings: list[tuple[Rating, int]]) -> Found:
    """Each (rating, received_ms) classified against what is stored and what came before it
    in the list; raises InfluxError as queries do."""
    if not ratings:
        return Found([], [])
    wanted = {(r.site, r.device, r.seq) for r, _ in ratings}
    known: dict[Key, Content] = {}
    doubled: set[Key] = set()
    for row in writer.query(";".join(_statements([r for r, _ in ratings]))):
        key = (row.get("site"), row.get("device"), row.get("seq"))
        if key in wanted:  # a range's other seqs, or a row of no rating, are not asked for
            if key in known:
                doubled.add(key)
            known.setdefault(key, of_row(row))
    verdicts = []
    for rating, received_ms in ratings:
        mine = of_rating(rating)
        first = known.setdefault((rating.site, rating.device, rating.seq), mine)
        if first is not mine:
            why = first.differs(mine)
            verdicts.append(COPY if why is None else Verdict(new=False, conflict=why))
        elif rating.ts is None:
            verdicts.append(Verdict(new=True, undated_ns=rating.undated_time_ns(received_ms)))
        else:
            verdicts.append(Verdict(new=True))
    return Found(verdicts, sorted(doubled))


def _statements(ratings: list[Rating]) -> list[str]:
    """One SELECT per terminal for its dated ratings (their seq range, near their times) and
    one for its undated ones (their seq range, any time)."""
    spans: dict[tuple[str, str], list[int]] = {}  # time low, high; seq low, high
    undated: dict[tuple[str, str], list[int]] = {}
    for r in ratings:
        if r.ts is None:
            undated.setdefault((r.site, r.device), []).append(r.seq)
            continue
        t = contract.point_time_ns(r.ts, r.seq)
        span = spans.setdefault((r.site, r.device), [t, t, r.seq, r.seq])
        span[0], span[1] = min(span[0], t), max(span[1], t)
        span[2], span[3] = min(span[2], r.seq), max(span[3], r.seq)
    statements = [
        f"SELECT {COLUMNS} FROM rating WHERE {_terminal(site, device)} "
        f"AND time >= {low - WINDOW_NS} AND time <= {min(high + WINDOW_NS, LATEST_NS)} "
        f'AND "seq" >= {first} AND "seq" <= {last}'
        for (site, device), (low, high, first, last) in spans.items()
    ]
    return statements + [
        _over_all_time(site, device, seqs) for (site, device), seqs in undated.items()
    ]


def settle(writer: InfluxHttp, keys: list[Key]) -> int:
    """Where a rating without ts is stored more than once (two collectors wrote it at the same
    moment, each finding nothing), keep the earliest point and delete the later; every
    collector that wrote one does the same, so they agree. Returns how many were deleted."""
    by_terminal: dict[tuple[str, str], list[int]] = {}
    for site, device, seq in keys:
        by_terminal.setdefault((site, device), []).append(seq)
    statements = [
        _over_all_time(site, device, seqs) for (site, device), seqs in by_terminal.items()
    ]
    wanted = set(keys)
    times: dict[Key, set[int]] = {}
    for row in writer.query(";".join(statements)):
        key = (row.get("site"), row.get("device"), row.get("seq"))
        if key in wanted and isinstance(row.get("time"), int):
            times.setdefault(key, set()).add(row["time"])
    deleted = 0
    for (site, device, _), found in times.items():
        # a point is deleted by its terminal and time: two series at one time stay as they are
        for time_ns in sorted(found)[1:]:
            writer.execute(
                f"DELETE FROM rating WHERE {_terminal(site, device)} "
                f"AND time >= {time_ns} AND time <= {time_ns}"
            )
            deleted += 1
    return deleted


def _over_all_time(site: str, device: str, seqs: list[int]) -> str:
    """A terminal's ratings in the seqs' range, whenever stored: the caller keeps the seqs it
    asked for (a range is one comparison a point; a list of seqs, one a seq)."""
    return (
        f"SELECT {COLUMNS} FROM rating WHERE {_terminal(site, device)} "
        f'AND "seq" >= {min(seqs)} AND "seq" <= {max(seqs)}'
    )


def _terminal(site: str, device: str) -> str:
    # site and device have passed the contract's name rules: nothing in them needs quoting
    return f"\"site\"='{site}' AND \"device\"='{device}'"
