"""A copy of a rating must be that rating: a seq sent again with other content is a conflict.

The exactly-once rule (PROTOCOL.md) puts an identical copy on its original's point. A copy
whose time, staff, counter, mode, reason, score, wait or aspects differ would land beside the
original as a second rating (its tags or time differ) or overwrite the original's fields: it is
set aside as a `conflict` dead letter instead, and the original stays. Before a batch is
written, one request asks InfluxDB, for each terminal in the batch, for its stored ratings
whose seq lies in the batch's seq range and whose time lies within WINDOW_NS of the batch's
(statements separated by `;`, the seq range keeping the answer to the few copies there are); an
original further off in time is out of reach (only a terminal that reused its seqs could make
one, which the firmware never does). Copies within one batch are held to each other the same
way. Undated ratings (no ts) are looked up by storage.py instead.
"""

from __future__ import annotations

from typing import Any

from collector.influx import InfluxHttp
from collector.rating import Rating
from firmware import contract

WINDOW_NS = 86_400_000 * 1_000_000  # a day either side of the batch's ratings of a terminal
TAGS = ("counter", "staff", "mode", "reason")
FIELDS = ("score", "wait_ms", *contract.ASPECTS)

Content = tuple[Any, ...]


def content(time_ns: int, values: dict[str, Any]) -> Content:
    """What a copy must repeat: its point time, tags and the fields the message sets."""
    return (time_ns, *(values.get(k) for k in TAGS), *(values.get(k) for k in FIELDS))


def of_rating(rating: Rating) -> Content:
    assert rating.ts is not None
    values = {k: getattr(rating, k) for k in (*TAGS, "score", "wait_ms")}
    values.update(rating.aspects or {})
    return content(contract.point_time_ns(rating.ts, rating.seq), values)


def find(writer: InfluxHttp, ratings: list[Rating]) -> dict[int, str]:
    """The dated ratings (by index in `ratings`) that conflict with a stored rating or an
    earlier one of the list, each with what differs; raises InfluxError as queries do."""
    spans: dict[tuple[str, str], list[int]] = {}  # time low, high; seq low, high
    for r in ratings:
        if r.ts is not None:
            t = contract.point_time_ns(r.ts, r.seq)
            span = spans.setdefault((r.site, r.device), [t, t, r.seq, r.seq])
            span[0], span[1] = min(span[0], t), max(span[1], t)
            span[2], span[3] = min(span[2], r.seq), max(span[3], r.seq)
    if not spans:
        return {}
    columns = ",".join(f'"{c}"' for c in ("seq", *TAGS, *FIELDS, "site", "device"))
    statements = [
        f"SELECT {columns} FROM rating WHERE \"site\"='{site}' AND \"device\"='{device}' "
        f"AND time >= {low - WINDOW_NS} AND time <= {high + WINDOW_NS} "
        f'AND "seq" >= {first} AND "seq" <= {last}'
        for (site, device), (low, high, first, last) in spans.items()
    ]
    known: dict[tuple[str, str, int], Content] = {}
    for row in writer.query(";".join(statements)):
        known[(row["site"], row["device"], row["seq"])] = content(row["time"], row)
    found = {}
    for i, r in enumerate(ratings):
        if r.ts is None:
            continue
        mine = of_rating(r)
        first = known.setdefault((r.site, r.device, r.seq), mine)
        if first != mine:
            found[i] = _difference(first, mine)
    return found


def _difference(first: Content, copy: Content) -> str:
    names = ("time", *TAGS, *FIELDS)
    changed = [f"{n} {a!r} -> {b!r}" for n, a, b in zip(names, first, copy, strict=True) if a != b]
    return "seq already stored with other content: " + ", ".join(changed)
