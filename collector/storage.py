"""The storing side: batches written to InfluxDB in order, in a thread of their own.

The MQTT side (service.py) checks each batch and hands it over; this thread writes its points
after whatever the spool holds, or spools them while InfluxDB is down, and hands the batch
back marked stored, so that only then are its messages acknowledged. Its work is waiting on
HTTP, so it hardly competes for the interpreter with the thread that reads the broker. Being
the one writer, and writing in order, it also decides which logins' clerk points are news
(clerk.Names), against what InfluxDB holds as each is written, a spooled one too.
"""

from __future__ import annotations

import queue
import threading
import time

import structlog

from collector import clerk, copies
from collector.batch import Batch, Judged, Point
from collector.deadletter import DeadLetters
from collector.influx import InfluxError, InfluxHttp
from collector.metrics import Metrics
from collector.spool import Spool

log = structlog.get_logger("collector")

RETRY_MIN_S = 0.5
RETRY_MAX_S = 10.0


class DeadLettersRefused(OSError):
    """The disk refuses the dead letters of a spool file being written out: the file stays."""


class Storage(threading.Thread):
    def __init__(
        self,
        writer: InfluxHttp,
        spool: Spool,
        dead: DeadLetters,
        metrics: Metrics,
        stop: threading.Event,
        *,
        drain_batch: int,
    ) -> None:
        super().__init__(name="storage", daemon=True)
        self.writer = writer
        self.spool = spool
        self.dead = dead
        self.metrics = metrics
        self.stop = stop
        self.drain_batch = drain_batch  # spooled points written in one request
        self.stored_points = 0
        self._handed_over = 0  # messages, counted by the thread that hands them over
        self._handed_back = 0  # and by this one
        self._todo: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self.done: queue.SimpleQueue[Batch] = queue.SimpleQueue()
        self._next_drain = 0.0
        self._database_made = False  # CREATE DATABASE answered: writes can go there
        # the oldest spool file's points set aside so far, by the start of their chunk: each
        # is dead-lettered once, however often InfluxDB fails while the file is written out
        self._drain_refused: dict[int, set[int]] = {}
        self.names = clerk.Names()  # the clerks' names InfluxDB holds last, as far as known
        self.failed = False

    @property
    def waiting(self) -> int:
        """Messages handed over and not yet handed back."""
        return self._handed_over - self._handed_back

    def submit(self, batch: Batch) -> None:
        self._handed_over += len(batch.deliveries)
        self._todo.put(batch)

    def finish(self) -> None:
        """Write what was handed over (or give up on it once stop is set), then end."""
        self._todo.put(None)

    def run(self) -> None:
        try:
            self._serve()
        except Exception:  # a bug of ours: stop, acknowledging nothing more, and be restarted
            log.exception("storage_failed")
            self.failed = True
            self.stop.set()

    def _serve(self) -> None:
        while True:
            try:
                batch = self._todo.get(timeout=0.5)
            except queue.Empty:
                if len(self.spool) and time.monotonic() >= self._next_drain:
                    self._drain_quietly()
                continue
            if batch is None:
                return
            batch.stored = self._store(batch)
            self._handed_back += len(batch.deliveries)
            self.done.put(batch)

    def _store(self, batch: Batch) -> bool:
        """True once every point is in InfluxDB, the spool or the dead-letter file."""
        if not batch.points:  # all dead-lettered: nothing to write, nothing to keep in order
            return True
        delay = RETRY_MIN_S
        while True:
            # InfluxDB is tried again once the spool is due; until then, behind the spool
            if not len(self.spool) or time.monotonic() >= self._next_drain:
                try:
                    self._drain_spool()
                    self._write_points(batch.points, batch.refused)
                    return True
                except (InfluxError, DeadLettersRefused) as e:
                    self._outage(e)
            if self._spool([p for i, p in enumerate(batch.points) if i not in batch.refused]):
                return True
            if self.stop.wait(delay):
                return False
            delay = min(delay * 2, RETRY_MAX_S)

    def _outage(self, e: InfluxError | DeadLettersRefused) -> None:
        """InfluxDB (or the dead-letter file's disk) failed: the spool waits a while before it
        is tried again."""
        self._next_drain = time.monotonic() + RETRY_MAX_S / 2
        if isinstance(e, DeadLettersRefused):
            log.warning("spool_held", error=str(e))
            return
        log.warning("influx_unavailable", error=str(e))
        if e.missing_database:  # dropped, or another server now: made again before a write
            self._database_made = False

    def _spool(self, points: list[Point]) -> bool:
        """Keep the points in the spool; False while it is full or the disk refuses it."""
        try:
            kept = self.spool.append(points)
        except OSError as e:
            log.error("spool_failed", error=str(e), points=len(points))
            return False
        if kept:
            self.metrics.spool_bytes.set(self.spool.bytes)
            log.warning("spooled", points=len(points), spool_bytes=self.spool.bytes)
        else:
            log.warning("spool_full", points=len(points), spool_bytes=self.spool.bytes)
        return kept

    def _write_points(self, points: list[Point], refused: set[int]) -> None:
        """Write the points but those refused: each rating classified against what is stored
        (copies.py), a copy left out, a conflict dead-lettered; then settle what may be stored
        twice (new undated ratings, and seqs found twice)."""
        for i, point in enumerate(points):
            if point.line is None and point.judged is None and i not in refused:
                unreadable = "a spool line that is not an entry the spool writes"
                self._refuse(point, unreadable, "unreadable_spool", refused, i)
        rated = [(i, p.judged) for i, p in enumerate(points) if p.judged and i not in refused]
        verdicts, doubled = self._classify(points, rated, refused)
        lines = [
            (i, p.line)
            for i, p in enumerate(points)
            if p.line is not None and p.login is None and i not in refused
        ]
        named = self._named(points, refused)
        lines += [(i, line) for i, line, _ in named]
        new: set[int] = set()
        copied = 0
        for i, verdict in verdicts:
            judged = points[i].judged
            assert judged is not None
            if verdict.conflict is not None:
                self._refuse(points[i], verdict.conflict, "conflict", refused, i)
            elif not verdict.new:
                self.metrics.copies.inc()
                copied += 1
            else:
                new.add(i)
                why = judged.suspect_why
                lines.append((i, judged.rating.point(judged.received_ms, verdict.undated_ns, why)))
                if verdict.undated_ns is not None:
                    r = judged.rating
                    doubled.append((r.site, r.device, r.seq))
        self._write_lines(points, lines, refused)
        self.names.written([login for i, _, login in named if i not in refused])
        # counts, never content: what a hall's IT person looks for to see that it works
        kept = [i for i, _ in lines if i not in refused]
        log.info(
            "stored",
            ratings=sum(i in new for i in kept),
            copies=copied,
            reports=sum(i not in new for i in kept),
            dead_lettered=len(refused),
        )
        if doubled and (deleted := copies.settle(self.writer, doubled)):
            log.info("undated_settled", deleted=deleted)

    def _named(self, points: list[Point], refused: set[int]) -> list[tuple[int, str, clerk.Login]]:
        """The clerk points to write, by index, with their lines and logins: those whose name
        is news (clerk.Names); raises InfluxError while InfluxDB cannot say which are."""
        found = [
            (i, p.line, p.login)
            for i, p in enumerate(points)
            if p.line is not None and p.login is not None and i not in refused
        ]
        news = self.names.news(self.writer, [login for _, _, login in found])
        return [point for point, new in zip(found, news, strict=True) if new]

    def _classify(
        self, points: list[Point], rated: list[tuple[int, Judged]], refused: set[int]
    ) -> tuple[list[tuple[int, copies.Verdict]], list[copies.Key]]:
        """Each rating's verdict, by its index, and the keys found stored twice. Should InfluxDB
        refuse the look-up itself, each rating is looked up alone, and one whose look-up it
        refuses is dead-lettered (it would otherwise hold up every rating after it)."""
        try:
            found = copies.classify(self.writer, [(j.rating, j.received_ms) for _, j in rated])
            return [(i, v) for (i, _), v in zip(rated, found.verdicts, strict=True)], found.doubled
        except InfluxError as e:
            if not e.permanent:
                raise
            log.warning("lookup_refused", error=str(e), ratings=len(rated))
        verdicts: list[tuple[int, copies.Verdict]] = []
        doubled: list[copies.Key] = []
        for i, judged in rated:
            try:
                found = copies.classify(self.writer, [(judged.rating, judged.received_ms)])
            except InfluxError as e:
                if not e.permanent:
                    raise
                self._refuse(points[i], str(e), "refused_by_influx", refused, i)
                continue
            verdicts.append((i, found.verdicts[0]))
            doubled += found.doubled
        return verdicts, doubled

    def _write_lines(
        self, points: list[Point], lines: list[tuple[int, str]], refused: set[int]
    ) -> None:
        """Write the lines in one request; when InfluxDB refuses the data, write them one by
        one and set aside those it refuses (each once: `refused` outlives a failed attempt)."""
        if not lines:
            return
        try:
            self._write([line for _, line in lines])
            return
        except InfluxError as e:
            if not e.permanent:
                raise
        for i, line in lines:
            try:
                self._write([line])
            except InfluxError as e:
                if not e.permanent:
                    raise
                self._refuse(points[i], str(e), "refused_by_influx", refused, i)

    def _refuse(self, point: Point, why: str, kind: str, refused: set[int], i: int) -> None:
        self.dead.record(point.topic, point.payload, why, kind)
        refused.add(i)

    def _drain_quietly(self) -> None:
        """With no new batches, write the spool when InfluxDB is back; try again in a while."""
        try:
            self._drain_spool()
        except (InfluxError, DeadLettersRefused) as e:
            self._outage(e)

    def make_database(self, *, once: bool = False) -> None:
        """CREATE DATABASE, the first time InfluxDB answers; raises InfluxError while it does
        not, or with once, logs that it will be tried again before the first write."""
        if self._database_made:
            return
        try:
            self.writer.ensure_database()
        except InfluxError as e:
            if not once:
                raise
            log.warning("influx_unavailable", error=str(e), then="spool until it answers")
            return
        self._database_made = True

    def _drain_spool(self) -> None:
        """Make the database once InfluxDB answers, then write the spool, oldest first, as
        batches are written; raises InfluxError while InfluxDB is down."""
        self.make_database()
        while (oldest := self.spool.oldest()) is not None:
            path, points = oldest
            for start in range(0, len(points), self.drain_batch):
                refused = self._drain_refused.setdefault(start, set())
                self._write_points(points[start : start + self.drain_batch], refused)
            if not self.dead.flush():  # their messages were acknowledged when spooled
                raise DeadLettersRefused("the spool's dead letters cannot be written yet")
            self.spool.remove(path)
            self._drain_refused.clear()
            self.metrics.spool_bytes.set(self.spool.bytes)
            log.info("spool_written", points=len(points), spool_bytes=self.spool.bytes)

    def _write(self, lines: list[str]) -> None:
        """One write request, timed and counted once InfluxDB has taken it."""
        started = time.perf_counter()
        self.writer.write(lines)
        self.metrics.write_seconds.observe(time.perf_counter() - started)
        self.stored_points += len(lines)
        self.metrics.stored_lines(lines)
