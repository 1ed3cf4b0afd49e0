"""What the MQTT side hands the storing side: messages taken together, each checked against the
contract into the point it stores, what alerts may follow from it, and the ack owed to its
terminal; made here, written by storage.py, acknowledged by service.py once stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import structlog

from collector import device, topics
from collector import rating as rating_msg
from collector.checks import Rejected
from collector.deadletter import DeadLetters
from collector.device import DeviceReport
from collector.known import KnownDevices
from collector.metrics import Metrics
from collector.rating import Rating
from collector.suspect import SuspectJudge

log = structlog.get_logger("collector")


@dataclass(frozen=True)
class Undated:
    """A rating without ts: its point waits for the time its first copy was stored at."""

    rating: Rating
    received_ms: int
    suspect_why: str | None


class Delivery(NamedTuple):
    """One message as paho handed it over (a tuple: one is built per message)."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    dup: bool
    connection: int
    received_ns: int
    retained: bool = False  # the publisher set the retain flag (the broker keeps a copy)

    @property
    def received_ms(self) -> int:
        return self.received_ns // 1_000_000


class Point(NamedTuple):
    """One message's point: its line, or an undated rating whose line is made when stored;
    and the rating it stores, if it is one."""

    delivery: Delivery
    line: str | Undated
    rating: Rating | None = None


class Ack(NamedTuple):
    """A rating its terminal may forget once its batch is stored (or dead-lettered)."""

    site: str
    device: str
    seq: int


@dataclass
class Batch:
    """Messages taken together: their points, what alerts may follow, the ratings to
    acknowledge to their terminals, and the outcome."""

    deliveries: list[Delivery]
    points: list[Point]
    reports: list[Rating | DeviceReport]
    acks: list[Ack]
    stored: bool = False


class Checked(NamedTuple):
    """What checking one message gave: its point, if it is stored; what alerts may follow
    from it once stored; the ack owed to its terminal."""

    point: Point | None
    report: Rating | DeviceReport | None
    ack: Ack | None


NOTHING = Checked(None, None, None)


class Checker:
    """Checks messages against the contract; a message that breaks it goes to the dead-letter
    file, with its reason, and its rating (if it has a seq) is still acknowledged."""

    def __init__(
        self,
        root: str,
        judge: SuspectJudge,
        dead: DeadLetters,
        metrics: Metrics,
        known: KnownDevices | None = None,
    ) -> None:
        self.root = root
        self.judge = judge
        self.dead = dead
        self.metrics = metrics
        self.known = known  # None: every device the broker lets through is taken

    def batch(self, deliveries: list[Delivery]) -> Batch:
        """The messages checked, as one batch for storage."""
        points: list[Point] = []
        reports: list[Rating | DeviceReport] = []
        acks: list[Ack] = []
        for delivery in deliveries:
            point, report, ack = self.check(delivery)
            if point is not None:
                points.append(point)
            if report is not None:
                reports.append(report)
            if ack is not None:
                acks.append(ack)
        return Batch(deliveries, points, reports, acks)

    def check(self, delivery: Delivery) -> Checked:
        """The message checked: its point (None after it went to the dead-letter file), what
        alerts may follow from it once stored, and the ack of a rating with a seq, stored or
        dead-lettered alike (its terminal may forget it)."""
        where = None
        try:
            where = topics.parse(delivery.topic, self.root)
            self._admit(where, delivery)
            if where.kind == "rating":
                return self._rating(where, delivery)
            if where.kind in ("telemetry", "state"):
                read = device.telemetry if where.kind == "telemetry" else device.state
                report = read(where, delivery.payload, delivery.received_ns)
                if report is None:
                    return NOTHING
                return Checked(Point(delivery, report.point()), report, None)
            raise topics.TopicError(f"no {where.kind!r} messages are taken")
        except topics.TopicError as e:
            self.dead.record(delivery.topic, delivery.payload, str(e), "bad_topic")
        except Rejected as e:
            self.dead.record(delivery.topic, delivery.payload, str(e), e.kind)
            if where is not None and where.kind == "rating":
                seq = rating_msg.seq_of(delivery.payload)
                if seq is not None:
                    return Checked(None, None, Ack(where.site, where.device, seq))
        except Exception as e:  # a bug of ours must not stop the service or lose the message
            log.exception("check_failed", topic=delivery.topic[:200])
            self.dead.record(
                delivery.topic, delivery.payload, f"{type(e).__name__}: {e}", "internal_error"
            )
        return NOTHING

    def _admit(self, where: topics.DeviceTopic, delivery: Delivery) -> None:
        """Whether the sender may be heard at all: a device on the roster (when there is one),
        and no rating left retained on the broker, to be handed to every new subscriber."""
        if self.known is not None and not self.known.knows(where.site, where.device):
            raise Rejected("unknown_device", f"{where.site}/{where.device} is not on the roster")
        if where.kind == "rating" and delivery.retained:
            raise Rejected("retained", "a rating must not be published retained")

    def _rating(self, where: topics.DeviceTopic, delivery: Delivery) -> Checked:
        parsed = rating_msg.parse(where, delivery.payload)
        why = self.judge.judge(parsed)
        if why:
            self.metrics.suspect.labels(why).inc()
        ack = Ack(where.site, where.device, parsed.seq)
        if parsed.ts is None:
            line: str | Undated = Undated(parsed, delivery.received_ms, why)
        else:
            line = parsed.point(delivery.received_ms, None, why)
        return Checked(Point(delivery, line, parsed), parsed, ack)
