"""The storing side: batches written to InfluxDB in order, in a thread of their own.

The MQTT side (service.py) checks each batch and hands it over; this thread writes its points
after whatever the spool holds, or spools them while InfluxDB is down, and hands the batch
back marked stored, so that only then are its messages acknowledged. Its work is waiting on
HTTP, so it hardly competes for the interpreter with the thread that reads the broker.
"""

from __future__ import annotations

import queue
import threading
import time

import structlog

from collector import conflicts
from collector.batch import Batch, Point, Undated
from collector.deadletter import DeadLetters
from collector.influx import InfluxError, InfluxHttp
from collector.metrics import Metrics
from collector.spool import Spool

log = structlog.get_logger("collector")

RETRY_MIN_S = 0.5
RETRY_MAX_S = 10.0


class Storage(threading.Thread):
    def __init__(
        self,
        writer: InfluxHttp,
        spool: Spool,
        dead: DeadLetters,
        metrics: Metrics,
        stop: threading.Event,
    ) -> None:
        super().__init__(name="storage", daemon=True)
        self.writer = writer
        self.spool = spool
        self.dead = dead
        self.metrics = metrics
        self.stop = stop
        self.stored_points = 0
        self._handed_over = 0  # messages, counted by the thread that hands them over
        self._handed_back = 0  # and by this one
        self._todo: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self.done: queue.SimpleQueue[Batch] = queue.SimpleQueue()
        self._next_drain = 0.0
        self._database_made = False  # CREATE DATABASE answered: writes can go there
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
            try:
                self._drain_spool()
                self._write_points(self._without_conflicts(self._lines(batch.points)))
                return True
            except InfluxError as e:
                if any(isinstance(p.line, Undated) for p in batch.points):
                    # The first copy of an undated rating may be in InfluxDB, out of reach:
                    # the batch waits, unacknowledged, rather than risk a second point.
                    log.warning("influx_unavailable", error=str(e), retry_in_s=delay)
                elif self.spool.append([str(p.line) for p in batch.points]):
                    self.metrics.spool_bytes.set(self.spool.bytes)
                    log.warning(
                        "spooled",
                        points=len(batch.points),
                        error=str(e),
                        spool_bytes=self.spool.bytes,
                    )
                    return True
                else:
                    log.warning("spool_full", error=str(e), retry_in_s=delay)
            if self.stop.wait(delay):
                return False
            delay = min(delay * 2, RETRY_MAX_S)

    def _lines(self, points: list[Point]) -> list[tuple[Point, str]]:
        """Each point's line; undated ratings are looked up (the spool is empty by now)."""
        found: dict[tuple[str, str, int], int] = {}
        lines = []
        for point in points:
            if isinstance(point.line, Undated):
                undated = point.line
                try:
                    when = self._first_stored(undated, found)
                except InfluxError as e:  # the look-up itself was refused: kept aside
                    if not e.permanent:
                        raise
                    self.dead.record(
                        point.delivery.topic, point.delivery.payload, str(e), "refused_by_influx"
                    )
                    continue
                line = undated.rating.point(undated.received_ms, when, undated.suspect_why)
                lines.append((point, line))
            else:
                lines.append((point, point.line))
        return lines

    def _without_conflicts(self, lines: list[tuple[Point, str]]) -> list[tuple[Point, str]]:
        """The lines but the ratings that conflict with one already stored (conflicts.py),
        which go to the dead-letter file."""
        rated = [(i, p.rating) for i, (p, _) in enumerate(lines) if p.rating is not None]
        found = conflicts.find(self.writer, [rating for _, rating in rated])
        if not found:
            return lines
        dropped = {rated[k][0] for k in found}
        for k, why in found.items():
            delivery = lines[rated[k][0]][0].delivery
            self.dead.record(delivery.topic, delivery.payload, why, "conflict")
        return [line for i, line in enumerate(lines) if i not in dropped]

    def _first_stored(self, undated: Undated, found: dict[tuple[str, str, int], int]) -> int:
        """The time a rating without ts was first stored at, so that a replay overwrites it.

        InfluxDB is asked (it outlives this process and is shared by every collector);
        `found` covers copies within one batch, not yet written.
        """
        r = undated.rating
        key = (r.site, r.device, r.seq)
        if key not in found:
            rows = self.writer.query(
                f'SELECT "seq" FROM rating WHERE "site"=\'{r.site}\' '
                f'AND "device"=\'{r.device}\' AND "seq"={r.seq} AND "undated"=1'
            )
            found[key] = int(rows[0]["time"]) if rows else r.undated_time_ns(undated.received_ms)
        return found[key]

    def _write_points(self, lines: list[tuple[Point, str]]) -> None:
        """Write a batch; when InfluxDB refuses it, set aside the points it refuses."""
        if not lines:
            return
        try:
            self._write([line for _, line in lines])
        except InfluxError as e:
            if not e.permanent:
                raise
            for point, line in lines:
                self._write_or_reject(line, point.delivery.topic, point.delivery.payload)

    def _write_or_reject(self, line: str, topic: str, payload: bytes) -> None:
        try:
            self._write([line])
        except InfluxError as e:
            if not e.permanent:
                raise
            self.dead.record(topic, payload, str(e), "refused_by_influx")

    def _drain_quietly(self) -> None:
        """With no new batches, write the spool when InfluxDB is back; try again in a while."""
        try:
            self._drain_spool()
        except InfluxError:
            self._next_drain = time.monotonic() + RETRY_MAX_S / 2

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
        """Make the database once InfluxDB answers, then write the spooled batches, oldest
        first; raises InfluxError while InfluxDB is down."""
        self.make_database()
        while (oldest := self.spool.oldest()) is not None:
            path, lines = oldest
            try:
                self._write(lines)
            except InfluxError as e:
                if not e.permanent:
                    raise
                for line in lines:
                    self._write_or_reject(line, "(spool)", line.encode())
            self.spool.remove(path)
            self.metrics.spool_bytes.set(self.spool.bytes)
            log.info("spool_written", points=len(lines), spool_bytes=self.spool.bytes)

    def _write(self, lines: list[str]) -> None:
        """One write request, timed and counted once InfluxDB has taken it."""
        started = time.perf_counter()
        self.writer.write(lines)
        self.metrics.write_seconds.observe(time.perf_counter() - started)
        self.stored_points += len(lines)
        self.metrics.stored_lines(lines)
