# The durable queue of ratings on flash, oldest first.
#
# A rating is appended here before the customer is thanked, and removed only
# once a collector has acknowledged storing it (the ack topic, docs/contract.md).
# Records are compact binary (about 36 bytes; a rating of aspects has one
# byte more, at the end, so records queued before the aspect mode still read
# alike), kept in segment files of a directory; a small head file says how
# far the queue has been acknowledged.
# On littlefs an append and a rename each commit atomically, so a power cut at
# any instant leaves either the old or the new state: no record is lost or
# torn, and at worst the ratings whose acks had arrived but whose head move
# had not are sent again, which the collector's exactly-once storage absorbs.
#
# Full policy: when the records would pass `capacity` bytes, a new rating is
# refused (append returns False) and the oldest are kept; the terminal counts
# it as dropped and shows an error, so the hall sees the terminal needs help.
#
# Records leave from the head only; one the collector never acknowledges can
# be moved from the head to the tail (requeue), so it blocks none after it.
import os
import struct

import contract
import store

_FIXED = "<IIqiB"  # seq, boot, time, wait_ms, flags
_FIXED_SIZE = struct.calcsize(_FIXED)
_TIME_AT = 1 + 8  # where a framed record's time field starts
_REASONS = contract.REASONS
_MODES = contract.MODES
_ASPECTS = contract.ASPECTS
_HAS_ASPECTS = 0x80  # in the trailing byte, with 3 bits of score per aspect (0: unanswered)


def encode(record):
    """A record's bytes from its keyword fields: contract.RATING_FIELDS and `at`, the
    press's ms since start-up (ticks.ms()), which stand in for ts (stored negative) until
    the clock is known."""
    reason, mode, score = record["reason"], record["mode"], record["score"]
    flags = (score or 0) | (_REASONS.index(reason) + 1 if reason else 0) << 3
    flags |= _MODES.index(mode) << 6
    ts, wait_ms = record["ts"], record["wait_ms"]
    t = ts if ts is not None else -(record["at"] + 1)
    body = struct.pack(
        _FIXED, record["seq"], record["boot"], t, -1 if wait_ms is None else wait_ms, flags
    )
    for key in ("counter", "staff", "ticket"):
        raw = (record[key] or "").encode()
        body += bytes([len(raw)]) + raw
    aspects = record["aspects"]
    if aspects is not None:
        packed = _HAS_ASPECTS
        for i, name in enumerate(_ASPECTS):
            packed |= (aspects[name] or 0) << (3 * i)
        body += bytes([packed])
    return body


def decode(body):
    """The record's keyword fields: `at` is the press's ms since start-up while ts is
    unknown, else None."""
    seq, boot, t, wait_ms, flags = struct.unpack_from(_FIXED, body)
    texts = []
    pos = _FIXED_SIZE
    for _ in range(3):
        n = body[pos]
        texts.append(body[pos + 1 : pos + 1 + n].decode() or None)
        pos += 1 + n
    aspects = None
    if pos < len(body) and body[pos] & _HAS_ASPECTS:
        aspects = {}
        for i, name in enumerate(_ASPECTS):
            aspects[name] = ((body[pos] >> (3 * i)) & 7) or None
    reason = (flags >> 3) & 7
    return {
        "seq": seq,
        "boot": boot,
        "ts": t if t >= 0 else None,
        "score": (flags & 7) or None,
        "reason": _REASONS[reason - 1] if reason else None,
        "mode": _MODES[(flags >> 6) & 1],
        "wait_ms": None if wait_ms < 0 else wait_ms,
        "counter": texts[0],
        "staff": texts[1],
        "ticket": texts[2],
        "aspects": aspects,
        "at": -t - 1 if t < 0 else None,
    }


def seq_of(body):
    return struct.unpack_from("<I", body)[0]


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class Outbox:
    def __init__(self, directory, capacity=256 * 1024, segment_bytes=16 * 1024):
        self.dir = directory
        self.capacity = capacity
        self.segment_bytes = segment_bytes
        if not _exists(directory):
            os.mkdir(directory)
        self._head_path = directory + "/head"
        self.head_saved = True
        self._recover()

    def _seg_path(self, n):
        return "%s/%08d" % (self.dir, n)

    def _recover(self):
        segments = sorted(int(name) for name in os.listdir(self.dir) if name.isdigit())
        head = store.load(self._head_path, None)
        if head is None:
            self._seg, self._off = (segments[0] if segments else 1), 0
        else:
            self._seg, self._off = head["seg"], head["off"]
        for n in segments:
            if n < self._seg:  # fully acknowledged; the cut came before its delete
                os.remove(self._seg_path(n))
        self._segments = [n for n in segments if n >= self._seg] or [self._seg]
        self.count = 0
        self.bytes = 0
        for n in self._segments:
            start = self._off if n == self._seg else 0
            count, size = self._scan(n, start)
            self.count += count
            self.bytes += size

    def _scan(self, n, offset):
        """(records, bytes) of the whole records in segment n from offset on.

        Reads one length byte a record, never the whole segment: a device's
        heap has room for the queue's index, not for its data.
        """
        path = self._seg_path(n)
        try:
            end = os.stat(path)[6]
        except OSError:
            return 0, 0
        count = 0
        start = offset
        length = bytearray(1)
        with open(path, "rb") as f:
            while offset < end:
                f.seek(offset)
                f.readinto(length)
                size = 1 + length[0]
                if offset + size > end:
                    break  # a torn tail (never on littlefs): ignored
                count += 1
                offset += size
        return count, offset - start

    def __len__(self):
        return self.count

    def append(self, record, over=False):
        """Store a record; False (nothing written) when the queue is full, unless `over`."""
        size = 1 + len(record)
        if self.bytes + size > self.capacity and not over:
            return False
        tail = self._segments[-1]
        path = self._seg_path(tail)
        if _exists(path) and os.stat(path)[6] + size > self.segment_bytes:
            tail += 1
            self._segments.append(tail)
            path = self._seg_path(tail)
        with open(path, "ab") as f:
            f.write(bytes([len(record)]) + record)
        self.count += 1
        self.bytes += size
        return True

    def requeue(self):
        """Move the oldest record to the tail, the same bytes, and return its seq: written
        there before the head moves past it, so a power cut between leaves it queued twice
        (one rating, sent twice, which the collector absorbs), never not at all. The queue
        may pass its capacity by this record for a moment: it is no new rating."""
        self.append(self.peek(), True)
        moved = []  # type: list[int]
        self.forget(lambda seq: not moved, moved.append)
        return moved[0]

    def oldest(self, limit, skip=0):
        """Up to `limit` records not yet acknowledged, oldest first, after the `skip` oldest."""
        found = []  # type: list[bytes]
        if skip >= self.count:
            return found
        limit = min(limit, self.count - skip)
        segments = self._segments
        k = segments.index(self._seg) if self._seg in segments else 0
        offset = self._off
        while k < len(segments) and len(found) < limit:
            try:
                with open(self._seg_path(segments[k]), "rb") as f:
                    f.seek(offset)
                    while len(found) < limit:
                        n = f.read(1)
                        if not n:
                            break
                        if skip:
                            skip -= 1
                            f.seek(n[0], 1)
                            continue
                        record = f.read(n[0])
                        if len(record) < n[0]:
                            break  # a torn tail (never on littlefs)
                        found.append(record)
            except OSError:
                pass
            k += 1
            offset = 0
        return found

    def stamp(self, seq, ts):
        """Write ts into the time field of the queued record of this seq, in place: the time
        a rating pressed before the clock was known goes with, every copy of it. littlefs
        commits a file's change whole when it is closed, so a power cut leaves the record
        as it was or stamped. False when no such record is queued."""
        head = bytearray(5)  # a record's length and seq: all that is read of each
        segments = self._segments
        offset = self._off
        for n in segments[segments.index(self._seg) if self._seg in segments else 0 :]:
            path = self._seg_path(n)
            found = None
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    while f.readinto(head) == len(head):
                        if struct.unpack_from("<I", head, 1)[0] == seq:
                            found = offset
                            break
                        offset += 1 + head[0]
                        f.seek(offset)
            except OSError:
                pass
            if found is not None:
                with open(path, "r+b") as f:
                    f.seek(found + _TIME_AT)
                    f.write(struct.pack("<q", ts))
                return True
            offset = 0
        return False

    def peek(self):
        """The oldest record not yet acknowledged, or None."""
        while self.count:
            try:
                with open(self._seg_path(self._seg), "rb") as f:
                    f.seek(self._off)
                    n = f.read(1)
                    record = f.read(n[0]) if n else b""
                    if n and len(record) == n[0]:
                        return record
            except OSError:
                pass
            self._next_segment()
        return None

    def forget(self, acked, gone, save=True):
        """Move the head past the oldest records while acked(seq) says so, calling gone(seq)
        for each, oldest first (no list of them: an ack may name contract.ACK_MAX_SEQS,
        and a terminal's heap is small); save the head once (or, save False, leave that to
        save_head(): a power cut before it brings those records back, to be sent again).
        Returns how many went."""
        count = 0
        blocked = False
        while self.count and not blocked:
            try:
                f = open(self._seg_path(self._seg), "rb")
            except OSError:
                self._next_segment()
                continue
            with f:  # one open a segment: littlefs opens cost more than reads
                f.seek(self._off)
                while self.count:
                    n = f.read(1)
                    record = f.read(n[0]) if n else b""
                    if not n or len(record) < n[0]:
                        break  # the segment is done
                    seq = seq_of(record)
                    if not acked(seq):
                        blocked = True
                        break
                    self._off += 1 + n[0]
                    self.count -= 1
                    self.bytes -= 1 + n[0]
                    count += 1
                    gone(seq)
                else:
                    break
            if not blocked and self.count:
                self._next_segment()
        if count:
            self.head_saved = False
            if save:
                self.save_head()
        return count

    def save_head(self):
        store.save(self._head_path, {"seg": self._seg, "off": self._off})
        self.head_saved = True

    def _next_segment(self):
        old = self._seg
        self._segments.remove(old)
        self._seg = self._segments[0] if self._segments else old + 1
        if not self._segments:
            self._segments.append(self._seg)
        self._off = 0
        self.save_head()  # before the delete: the head never points into a deleted segment
        try:
            os.remove(self._seg_path(old))
        except OSError:
            pass
