"""A decision on a stored rating, written onto the rating's own point in InfluxDB: an upheld
appeal (申诉), or a manager's verdict on a suspect rating (issue #20; docs/contract.md, "The
project's extensions", `rating`'s added fields).

Every figure (the dashboards, the alert rules, svc-appraisal) counts honest ratings with
`"suspect" = 0`, and InfluxQL drops a point that lacks a field its WHERE compares: a new field
alone (`"excluded" != 1`) could take no rating out of any figure. So a decision is written as
fields of the stored point itself, same measurement, tag set and time, which InfluxDB merges
into it; the contract keeps judgements that can change in fields for this reason.

- an upheld appeal: `suspect` 1, `suspect_why` `appeal_upheld`, `excluded` 1, `review`
  `upheld:<ground>`, `reviewed_by`: out of every figure, the point and the decision kept;
- a suspect cleared: `suspect` 0, `review` `cleared`: the rating counts again;
- a suspect confirmed: `suspect` 1 (so also after an earlier clear), `review` `confirmed`.

The collector does not write a re-sent copy of a stored rating again (collector/copies.py), so
a decision stays when the terminal sends its rating again. Each function returns whether a
point was stored under (site, device, seq): False writes nothing, and the caller keeps the
decision pending and tries it again later (the rating may still be queued on its terminal or
in a collector's spool). A decision written twice writes the same fields, so a retry is safe.
InfluxDB's failures raise InfluxError as collector/influx.py raises them: `permanent` False is
an outage, which the caller retries likewise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collector import lineprotocol
from collector.influx import InfluxHttp
from console import users
from firmware import contract

MEASUREMENT = "rating"
GROUNDS = ("mistaken", "malicious", "device_fault", "other")  # 误评, 恶意差评, 设备故障, 其他
APPEAL_UPHELD = "appeal_upheld"  # suspect_why of a rating an upheld appeal excluded


class ReviewRefused(RuntimeError):
    """The stored rating cannot take a manager's verdict: an upheld appeal excluded it (that
    decision wins: clearing it would count it again), or the collector never flagged it."""


@dataclass(frozen=True)
class StoredPoint:
    """One stored point of a rating: its tags as stored (those it has), time and fields."""

    tags: dict[str, str]
    time_ns: int
    fields: dict[str, Any]

    @property
    def excluded(self) -> bool:
        return self.fields.get("excluded") == 1

    @property
    def flagged(self) -> bool:
        """Whether the collector flagged it suspect (a rule's `suspect_why`), whatever a
        manager has said since: an appeal's exclusion is no flag of the collector's."""
        return self.fields.get("suspect_why") not in (None, APPEAL_UPHELD)


def find_points(influx: InfluxHttp, site: str, device: str, seq: int) -> list[StoredPoint]:
    """The points stored for the rating (site, device, seq), with their exact tag sets: one,
    or none while it is not stored yet (two for a moment, where two collectors stored a rating
    without ts at once, before they settle on the earlier). ValueError for a name or seq the
    contract does not allow."""
    if not (contract.valid_name("site", site) and contract.valid_name("device", device)):
        raise ValueError(f"not a site and device of the contract: {site!r}, {device!r}")
    if not contract.valid_seq(seq):
        raise ValueError(f"not a seq of the contract: {seq!r}")
    tag_keys = {row["tagKey"] for row in influx.query(f'SHOW TAG KEYS FROM "{MEASUREMENT}"')}
    # the names passed the contract's rules: [a-z0-9-], nothing in them needs quoting
    rows = influx.query(
        f'SELECT * FROM "{MEASUREMENT}" WHERE "site" = \'{site}\' AND "device" = \'{device}\' '
        f'AND "seq" = {seq} GROUP BY *'
    )
    return [_stored(row, tag_keys) for row in rows]


def _stored(row: dict[str, Any], tag_keys: set[str]) -> StoredPoint:
    """A row of `SELECT * ... GROUP BY *` as a point: a tag key the series lacks comes as ""
    and is left out, as the collector left it out of the point."""
    tags = {k: str(row[k]) for k in tag_keys if row.get(k)}
    fields = {k: v for k, v in row.items() if k not in tag_keys and k != "time" and v is not None}
    return StoredPoint(tags, int(row["time"]), fields)


def uphold_appeal(
    influx: InfluxHttp, site: str, device: str, seq: int, *, ground: str, user: str
) -> bool:
    """Take the rating out of every figure on an appeal the appraisal staff upheld (`ground`
    one of GROUNDS); whether it was stored (False: nothing written, retry later)."""
    if ground not in GROUNDS:
        raise ValueError(f"an appeal's ground is one of {GROUNDS}, not {ground!r}")
    fields: dict[str, lineprotocol.FieldValue | None] = {
        "suspect": 1,
        "suspect_why": APPEAL_UPHELD,
        "excluded": 1,
        "review": f"upheld:{ground}",
    }
    return _decide(influx, (site, device, seq), user, fields, verdict=False)


def clear_suspect(influx: InfluxHttp, site: str, device: str, seq: int, *, user: str) -> bool:
    """A manager finds a rating the collector flagged suspect honest: it counts again.
    Whether it was stored; ReviewRefused for a rating excluded on appeal, or never flagged."""
    fields: dict[str, lineprotocol.FieldValue | None] = {"suspect": 0, "review": "cleared"}
    return _decide(influx, (site, device, seq), user, fields, verdict=True)


def confirm_suspect(influx: InfluxHttp, site: str, device: str, seq: int, *, user: str) -> bool:
    """A manager confirms a rating the collector flagged suspect: it stays out of the figures,
    also where it was cleared before. Whether it was stored; ReviewRefused as clear_suspect."""
    fields: dict[str, lineprotocol.FieldValue | None] = {"suspect": 1, "review": "confirmed"}
    return _decide(influx, (site, device, seq), user, fields, verdict=True)


def _decide(
    influx: InfluxHttp,
    key: tuple[str, str, int],
    user: str,
    fields: dict[str, lineprotocol.FieldValue | None],
    *,
    verdict: bool,
) -> bool:
    """Write the fields, and who decided, onto every point of the rating; whether any was
    found. A manager's verdict (`verdict`) is refused before anything is written on a rating
    that an upheld appeal excluded or the collector never flagged."""
    if not users.valid_name(user):
        raise ValueError(f"not a console user's name: {user!r}")
    points = find_points(influx, *key)
    if verdict:
        check_verdict(points, key)
    influx.write(
        [
            lineprotocol.line(MEASUREMENT, p.tags, {**fields, "reviewed_by": user}, p.time_ns)
            for p in points
        ]
    )
    return bool(points)


def check_verdict(points: list[StoredPoint], key: tuple[str, str, int]) -> None:
    if any(p.excluded for p in points):
        raise ReviewRefused(f"{key}: an upheld appeal excluded it; it stays out of the figures")
    if not all(p.flagged for p in points):
        raise ReviewRefused(f"{key}: the collector did not flag it suspect")
