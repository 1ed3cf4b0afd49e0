"""What the MQTT side hands the storing side: messages taken together, each checked against the
contract into the point it stores, what alerts may follow from it, and the ack owed to its
terminal; made here, written by storage.py, acknowledged by service.py once stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import structlog

from collector import clerk, device, topics
from collector import rating as rating_msg
from collector.checks import Rejected
from collector.deadletter import DeadLetters
from collector.device import DeviceReport
from collector.known import KnownDevices
from collector.metrics import Metrics
from collector.rating import Rating
from collector.suspect import SuspectJudge

log = structlog.get_logger("collector")


class Delivery(NamedTuple):
    """One message as paho handed it over (a tuple: one is built per message)."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    dup: bool
    connection: int
    received_ns: int
    # the retain flag as delivered: on rating, state and telemetry (subscribed "retain as
    # published") the publisher's; on config, a retained copy handed over at a subscribe
    retained: bool = False

    @property
    def received_ms(self) -> int:
        return self.received_ns // 1_000_000


class Judged(NamedTuple):
    """A rating as checked: its line is made once storage knows it is not a copy (and, for
    one without ts, where its first copy lies)."""

    rating: Rating
    received_ms: int
    suspect_why: str | None


class Point(NamedTuple):
    """What one message stores: a device or clerk point's line, or a judged rating; with the
    message, for the dead-letter file, and what alerts may follow from it once stored. A clerk
    point carries its login: storage writes its line only if the name is news (clerk.Names)."""

    topic: str
    payload: bytes
    line: str | None
    judged: Judged | None
    report: Rating | DeviceReport | None = None
    login: clerk.Login | None = None


class Ack(NamedTuple):
    """A rating its terminal may forget once its batch is stored (or dead-lettered)."""

    site: str
    device: str
    seq: int


@dataclass
class Batch:
    """Messages taken together: their points, the ratings to acknowledge to their terminals,
    and the outcome. `refused` holds the points set aside while storing (a conflict, or data
    InfluxDB refused), each dead-lettered once however often the batch is tried."""

    deliveries: list[Delivery]
    points: list[Point]
    acks: list[Ack]
    stored: bool = False
    refused: set[int] = field(default_factory=set)

    @property
    def reports(self) -> list[Rating | DeviceReport]:
        """What alerts may follow from the batch: its points but those set aside."""
        return [
            p.report
            for i, p in enumerate(self.points)
            if p.report is not None and i not in self.refused
        ]


class Checked(NamedTuple):
    """What checking one message gave: its point, if it is stored; the ack owed to its
    terminal."""

    point: Point | None
    ack: Ack | None


NOTHING = Checked(None, None)


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
        acks: list[Ack] = []
        for delivery in deliveries:
            point, ack = self.check(delivery)
            if point is not None:
                points.append(point)
            if ack is not None:
                acks.append(ack)
        return Batch(deliveries, points, acks)

    def check(self, delivery: Delivery) -> Checked:
        """The message checked: its point (None after it went to the dead-letter file) and the
        ack of a rating with a seq, stored or dead-lettered alike (its terminal may forget
        it); a login (config) gives its clerk's name, and is never dead-lettered."""
        if delivery.topic.endswith("/config"):
            return self._config(delivery)
        return self._message(delivery)

    def _message(self, delivery: Delivery) -> Checked:
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
                return Checked(
                    Point(delivery.topic, delivery.payload, report.point(), None, report), None
                )
            raise topics.TopicError(f"no {where.kind!r} messages are taken")
        except topics.TopicError as e:
            self.dead.record(delivery.topic, delivery.payload, str(e), "bad_topic")
            return NOTHING
        except Rejected as e:
            self.dead.record(delivery.topic, delivery.payload, str(e), e.kind)
        except Exception as e:  # a bug of ours must not stop the service or lose the message
            log.exception("check_failed", topic=delivery.topic[:200])
            self.dead.record(
                delivery.topic, delivery.payload, f"{type(e).__name__}: {e}", "internal_error"
            )
            return NOTHING
        return self._rejected(where, delivery)

    @staticmethod
    def _rejected(where: topics.DeviceTopic | None, delivery: Delivery) -> Checked:
        """A rejected rating is still acknowledged when its seq can be found (outside the
        handler of the rejection: whatever finding it meets is not the rejection's problem)."""
        if where is not None and where.kind == "rating":
            seq = rating_msg.seq_of(delivery.payload)
            if seq is not None:
                return Checked(None, Ack(where.site, where.device, seq))
        return NOTHING

    def _admit(self, where: topics.DeviceTopic, delivery: Delivery) -> None:
        """Whether the sender may be heard at all: a device on the roster (when there is one),
        and no rating left retained on the broker, to be handed to every new subscriber."""
        if self.known is not None and not self.known.knows(where.site, where.device):
            raise Rejected("unknown_device", f"{where.site}/{where.device} is not on the roster")
        if where.kind == "rating" and delivery.retained:
            raise Rejected("retained", "a rating must not be published retained")

    def _config(self, delivery: Delivery) -> Checked:
        """A login's clerk name, as a `clerk` point with its login, live or a retained copy
        handed over again, for storage to write if it is news (clerk.Names). A config is no
        rating: one a terminal would ignore is counted and logged, not dead-lettered."""
        try:
            where = topics.parse(delivery.topic, self.root)
            self._admit(where, delivery)  # a terminal off the roster names nobody
            packet = clerk.packet_bytes(delivery.topic, delivery.payload, delivery.qos)
            found = clerk.login(where.site, delivery.payload, packet)
        except (topics.TopicError, Rejected) as e:
            self.metrics.rejected.labels("config").inc()
            kind = e.kind if isinstance(e, Rejected) else "bad_topic"
            log.warning("config_ignored", topic=delivery.topic[:200], kind=kind, reason=str(e))
            return NOTHING
        except Exception:  # a bug of ours: never fatal, the name waits for the next login
            self.metrics.rejected.labels("config").inc()
            log.exception("check_failed", topic=delivery.topic[:200])
            return NOTHING
        if found is None:
            return NOTHING
        line = found.point(delivery.received_ns)
        login = found._replace(replayed=delivery.retained)
        return Checked(Point(delivery.topic, delivery.payload, line, None, login=login), None)

    def _rating(self, where: topics.DeviceTopic, delivery: Delivery) -> Checked:
        parsed = rating_msg.parse(where, delivery.payload)
        why = self.judge.judge(parsed)
        if why:
            self.metrics.suspect.labels(why).inc()
        judged = Judged(parsed, delivery.received_ms, why)
        point = Point(delivery.topic, delivery.payload, None, judged, parsed)
        return Checked(point, Ack(where.site, where.device, parsed.seq))
