"""Messages InfluxDB could not take yet, on disk, oldest first.

While InfluxDB is out the collector keeps taking messages: each batch is appended to the
spool's newest file and synced to disk (the folder too, for a new file) before its messages are
acknowledged, and is written to InfluxDB in order when it returns. A rating waits here as the
message it came in (topic and payload, checked again when read), with its receipt time and
suspect verdict, not as a line: when the spool is written out each rating is sorted against
what InfluxDB holds by then (copies.py), exactly like a rating that never waited, so a copy or
a conflict that came during the outage is still found. A device point waits as its line, a
clerk point as its line with its login (live or replayed), decided when written. A file
holds many batches, one JSON entry a line, until it passes SEGMENT_BYTES; a restart, or an
append the disk refused, starts a new one. An append the disk refused is taken back, so a torn
line (a crash mid-append: its batch never acknowledged) can only be a file's last, and is
skipped; any other line that cannot be read comes back as a point of neither kind, for the
dead-letter file. The spool is bounded; when full, or when the disk refuses it, the collector
stops acknowledging and the broker holds the rest. Files left by a crash are written at the
next start; a batch written twice is found as copies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import structlog

from collector import clerk, topics
from collector import rating as rating_msg
from collector.batch import Judged, Point
from collector.disk import append_synced
from firmware import contract

log = structlog.get_logger("collector")

SEGMENT_BYTES = 4 * 1024 * 1024
SUFFIX = ".jsonl"
LEGACY_SUFFIX = ".lp"  # line protocol, as spooled before ratings waited as messages
UNREADABLE = "(spool)"  # the topic of a point read back from a line that is not an entry


def _entry(point: Point) -> dict[str, Any]:
    if point.login is not None:
        login = point.login
        return {
            "line": point.line,
            "login": [login.site, login.staff, login.name],
            "replayed": login.replayed,
        }
    if point.judged is None:
        return {"line": point.line}
    where = point.judged.rating
    return {
        "site": where.site,
        "device": where.device,
        "topic": point.topic,
        "payload": point.payload.decode(),  # a rating's payload has passed strict UTF-8 JSON
        "received_ms": point.judged.received_ms,
        "suspect_why": point.judged.suspect_why,
    }


def _point(raw: bytes) -> Point:
    """The point of one entry; raises ValueError (or its kin) when it is not one."""
    entry = orjson.loads(raw)
    line = entry.get("line")
    if isinstance(line, str) and "login" in entry:
        site, staff, name = entry["login"]
        replayed = entry["replayed"]
        named = contract.valid_name("site", site) and contract.valid_name("staff", staff)
        if not (named and isinstance(name, str) and type(replayed) is bool):
            raise ValueError("an entry's login is not what the spool writes")
        login = clerk.Login(site, staff, name, replayed)
        return Point(UNREADABLE, line.encode(), line, None, login=login)
    if isinstance(line, str):
        return Point(UNREADABLE, line.encode(), line, None)
    where = topics.device_topic(entry["site"], entry["device"], "rating")
    payload = entry["payload"].encode()
    rating = rating_msg.parse(where, payload)  # checked again: the file is only a file
    why = entry["suspect_why"]
    if not (why is None or isinstance(why, str)) or type(entry["received_ms"]) is not int:
        raise ValueError("an entry's receipt time or verdict is not what the spool writes")
    return Point(entry["topic"], payload, None, Judged(rating, entry["received_ms"], why))


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.tmp"):
            stale.unlink()  # a write of an earlier version cut short: never acknowledged
        found = [*directory.glob(f"*{SUFFIX}"), *directory.glob(f"*{LEGACY_SUFFIX}")]
        self._files = sorted(found, key=lambda p: int(p.stem))
        self.bytes = sum(p.stat().st_size for p in self._files)
        self._next = int(self._files[-1].stem) + 1 if self._files else 1
        self._open: Path | None = None  # the file appends go to; a new one after a start

    def __len__(self) -> int:
        return len(self._files)

    def append(self, points: list[Point]) -> bool:
        """Keep a batch durably; False (nothing kept) when it would pass max_bytes. Raises
        OSError when the disk refuses it (full, or failing): then nothing is kept either."""
        body = b"".join(orjson.dumps(_entry(p)) + b"\n" for p in points)
        if self.bytes + len(body) > self.max_bytes:
            return False
        path = self._open
        if path is None or not path.exists() or path.stat().st_size >= SEGMENT_BYTES:
            path = self.dir / f"{self._next:012d}{SUFFIX}"
            self._next += 1
        try:
            append_synced(path, body)
        except OSError:
            self._open = None  # the next append starts a file of its own
            raise
        if path != self._open:
            self._files.append(path)
            self._open = path
        self.bytes += len(body)
        return True

    def oldest(self) -> tuple[Path, list[Point]] | None:
        """The oldest file's points, in order: a torn last line skipped, any other line that
        is not an entry given as a point of neither kind (UNREADABLE, the raw line)."""
        while self._files:
            path = self._files[0]
            try:
                return path, self._read(path)
            except FileNotFoundError:  # taken away by hand: what it held is gone already
                log.error("spool_file_missing", file=path.name)
                self._files.remove(path)
        return None

    def _read(self, path: Path) -> list[Point]:
        text = path.read_bytes()
        if path.suffix == LEGACY_SUFFIX:
            return [Point(UNREADABLE, ln, ln.decode(), None) for ln in text.split(b"\n") if ln]
        raws = text.split(b"\n")
        points = []
        for n, raw in enumerate(raws):
            if not raw:
                continue
            try:
                points.append(_point(raw))
            except Exception as e:  # any content at all: the file is only a file
                if n == len(raws) - 1:  # no newline after it: an append cut short
                    log.warning("spool_line_torn", file=path.name, line=n + 1)
                    continue
                log.error("spool_line_unreadable", file=path.name, line=n + 1, error=str(e))
                points.append(Point(UNREADABLE, raw, None, None))
        return points

    def remove(self, path: Path) -> None:
        """The file is written out: gone (a crash before this writes it again, as copies)."""
        self.bytes -= path.stat().st_size
        path.unlink()
        self._files.remove(path)
        if path == self._open:
            self._open = None
