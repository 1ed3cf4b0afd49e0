"""Points InfluxDB could not take yet, on disk, oldest first.

While InfluxDB is unreachable the collector keeps taking messages: each batch's points are
appended to the spool's newest file, flushed and synced to disk (the folder too, when the file
is new) before its messages are acknowledged, and are written to InfluxDB in order when it
returns. A rating waits here as the message it came in, with its receipt time and suspect
verdict, not as a line: when the spool is written out, each is sorted against what InfluxDB
holds by then (copies.py), exactly like a rating that never waited, so a copy or a conflict
that came during the outage is still found. A file holds many batches (up to SEGMENT_BYTES),
one JSON entry a line; an append the disk refused is cut off again, and a line left torn by a
crash (its batch never acknowledged) is skipped. The spool is bounded; when full, or when the
disk refuses it, the collector stops acknowledging and the broker holds the rest. Files left by
a crash are written at the next start; a batch written twice is found as copies.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import structlog

from collector.batch import Judged, Point
from collector.disk import sync_folder
from collector.rating import Rating

log = structlog.get_logger("collector")

SEGMENT_BYTES = 4 * 1024 * 1024
SUFFIX = ".jsonl"
LEGACY_SUFFIX = ".lp"  # line protocol, as spooled before ratings waited as messages


def _entry(point: Point) -> dict[str, Any]:
    if point.judged is None:
        return {"line": point.line}
    rating, received_ms, suspect_why = point.judged
    return {
        "topic": point.topic,
        "payload": point.payload.decode(),  # a rating's payload has passed strict UTF-8 JSON
        "received_ms": received_ms,
        "suspect_why": suspect_why,
        "rating": {name: getattr(rating, name) for name in Rating.__slots__},
    }


def _point(entry: dict[str, Any]) -> Point:
    if "line" in entry:
        line = entry["line"]
        return Point("(spool)", line.encode(), line, None)
    judged = Judged(Rating(**entry["rating"]), entry["received_ms"], entry["suspect_why"])
    return Point(entry["topic"], entry["payload"].encode(), None, judged)


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
        if path is None or path.stat().st_size + len(body) > SEGMENT_BYTES:
            path = self.dir / f"{self._next:012d}{SUFFIX}"
        new = not path.exists()
        size = 0 if new else path.stat().st_size
        try:
            with path.open("ab") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            if new:
                sync_folder(self.dir)
        except OSError:
            self._cut(path, size, new)
            raise
        if new:
            self._next += 1
            self._files.append(path)
            self._open = path
        self.bytes += len(body)
        return True

    def _cut(self, path: Path, size: int, new: bool) -> None:
        """Take back what a refused append left: the file it made, or its torn tail."""
        try:
            if new:
                path.unlink(missing_ok=True)
            else:
                os.truncate(path, size)
        except OSError:
            self._open = None  # the next append starts a file of its own; the tail is skipped

    def oldest(self) -> tuple[Path, list[Point]] | None:
        """The oldest file's points, in order (a torn line skipped)."""
        if not self._files:
            return None
        path = self._files[0]
        return path, list(self._read(path))

    def _read(self, path: Path) -> Iterator[Point]:
        text = path.read_bytes()
        if path.suffix == LEGACY_SUFFIX:
            for line in filter(None, text.decode().split("\n")):
                yield Point("(spool)", line.encode(), line, None)
            return
        for n, raw in enumerate(text.split(b"\n")):
            if not raw:
                continue
            try:
                yield _point(orjson.loads(raw))
            except (orjson.JSONDecodeError, KeyError, TypeError) as e:
                log.warning("spool_line_skipped", file=path.name, line=n + 1, error=str(e))

    def remove(self, path: Path) -> None:
        """The file is written out: gone (a crash before this writes it again, as copies)."""
        self.bytes -= path.stat().st_size
        path.unlink()
        self._files.remove(path)
        if path == self._open:
            self._open = None
