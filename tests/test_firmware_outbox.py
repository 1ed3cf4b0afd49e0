"""The flash queue: compact records, order, segments, the full policy, recovery, power cuts."""

from __future__ import annotations

import pytest

from fwtools.unix_port import FIRMWARE_DIR, firmware_module, run_script
from tests.samples import RATING_EXAMPLE

outbox = firmware_module("outbox")
contract = firmware_module("contract")

MPY_TESTS = FIRMWARE_DIR.parent / "tests" / "mpy"


def fields(seq=1042, ticket="A023", staff="E1023", **changes):
    """A rating record's keyword fields, as the terminal queues them."""
    found = {k: v for k, v in RATING_EXAMPLE.items() if k != "v"}
    found.update(seq=seq, ticket=ticket, staff=staff, at=None, aspects=None)
    found.update(changes)
    return found


def record(seq, ticket="A023", staff="E1023"):
    return outbox.encode(fields(seq, ticket, staff))


def seqs_of(box):
    return [outbox.seq_of(r) for r in box.oldest(10_000)]


def forget(box, acked):
    """Acknowledge these seqs; the ones that left the queue, oldest first."""
    gone = []
    assert box.forget(acked.__contains__, gone.append) == len(gone)
    return gone


def pop(box):
    """The oldest record acknowledged."""
    head = outbox.seq_of(box.peek())
    assert forget(box, {head}) == [head]


def test_a_record_round_trips_to_the_contract_fields():
    body = outbox.encode(fields())
    decoded = outbox.decode(body)
    assert decoded.pop("at") is None
    assert contract.rating(**decoded) == RATING_EXAMPLE
    assert len(body) + 1 <= 40  # a typical rating, framed: 5,000 fit well within 256 KB


@pytest.mark.parametrize(
    "aspects",
    [
        {"attitude": 5, "efficiency": 1},
        {"attitude": 3, "efficiency": None},
        {"attitude": None, "efficiency": None},
    ],
)
def test_a_rating_of_aspects_round_trips_with_one_byte_more(aspects):
    score, reason = contract.aspects_overall(aspects)
    plain = outbox.encode(fields(score=score, reason=reason))
    body = outbox.encode(fields(score=score, reason=reason, aspects=aspects))
    assert len(body) == len(plain) + 1
    assert outbox.decode(body) == fields(score=score, reason=reason, aspects=aspects)
    assert outbox.decode(plain)["aspects"] is None  # as queued before the aspect mode


@pytest.mark.parametrize(
    ("score", "reason"), [(None, None), (1, "attitude"), (2, "other"), (5, None)]
)
def test_scores_reasons_and_unknown_time(score, reason):
    unknown = {"ts": None, "at": 123456, "wait_ms": None, "counter": None, "mode": "free"}
    body = outbox.encode(fields(7, None, None, score=score, reason=reason, **unknown))
    assert outbox.decode(body) == fields(7, None, None, score=score, reason=reason, **unknown)


def test_oldest_first_and_survives_reopening(tmp_path):
    path = str(tmp_path / "q")
    box = outbox.Outbox(path)
    for seq in range(1, 6):
        assert box.append(record(seq))
    assert len(box) == 5
    pop(box)
    again = outbox.Outbox(path)
    assert len(again) == 4
    assert seqs_of(again) == [2, 3, 4, 5]
    assert forget(again, {3, 2, 5}) == [2, 3]  # 5 waits for 4
    assert seqs_of(again) == [4, 5]
    assert forget(again, {4, 5}) == [4, 5]
    assert len(outbox.Outbox(path)) == 0


def test_the_oldest_are_read_in_slices_across_segments(tmp_path):
    box = outbox.Outbox(str(tmp_path / "q"), segment_bytes=200)
    for seq in range(1, 31):
        box.append(record(seq))
    forget(box, {1, 2})
    slices = [[outbox.seq_of(r) for r in box.oldest(8, skip)] for skip in range(0, 32, 8)]
    assert slices == [list(range(first, min(first + 8, 31))) for first in (3, 11, 19, 27)]
    assert box.oldest(5, 28) == []


def test_segments_roll_over_and_acknowledged_ones_are_deleted(tmp_path):
    path = tmp_path / "q"
    box = outbox.Outbox(str(path), segment_bytes=200)
    for seq in range(1, 31):
        box.append(record(seq))
    segments = sorted(p.name for p in path.iterdir() if p.name.isdigit())
    assert len(segments) >= 5
    for _ in range(30):
        pop(box)
    assert box.peek() is None
    left = [p.name for p in path.iterdir() if p.name.isdigit()]
    assert len(left) == 1  # only the tail is kept
    box.append(record(31))
    assert outbox.decode(outbox.Outbox(str(path), segment_bytes=200).peek())["seq"] == 31


def test_full_queue_refuses_new_ratings_and_keeps_the_oldest(tmp_path):
    box = outbox.Outbox(str(tmp_path / "q"), capacity=400)
    stored = 0
    while box.append(record(stored + 1)):
        stored += 1
    assert 9 <= stored <= 11
    assert not box.append(record(99))
    assert outbox.decode(box.peek())["seq"] == 1
    pop(box)
    assert box.append(record(100))


def test_holds_five_thousand_typical_ratings_in_256_kb(tmp_path):
    box = outbox.Outbox(str(tmp_path / "q"))
    for seq in range(1, 5001):
        assert box.append(record(seq, ticket=f"A{seq % 1000:03d}", staff="E1023"))
    assert box.bytes <= 256 * 1024
    assert len(outbox.Outbox(str(tmp_path / "q"))) == 5000


def test_a_stale_segment_left_by_a_cut_is_removed_on_recovery(tmp_path):
    path = tmp_path / "q"
    box = outbox.Outbox(str(path), segment_bytes=100)
    for seq in range(1, 10):
        box.append(record(seq))
    first = sorted(p for p in path.iterdir() if p.name.isdigit())[0]
    stale = first.read_bytes()
    while len(box) > 6:
        pop(box)
    box.peek()
    first.write_bytes(stale)  # as if the power went between the head move and the delete
    again = outbox.Outbox(str(path), segment_bytes=100)
    assert not first.exists()
    assert len(again) == 6


def test_power_cut_at_every_flash_write_loses_nothing(micropython):
    """Under MicroPython, on littlefs: the run is cut at each of its flash writes in turn."""
    result = run_script(MPY_TESTS / "powercut_outbox.py", timeout_s=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("ok ")
    assert int(last.split()[1]) > 300  # every one of them cut in turn


def test_a_late_stamp_is_written_into_its_record_in_place(tmp_path):
    path = str(tmp_path / "q")
    box = outbox.Outbox(path, segment_bytes=200)
    for seq in range(1, 21):
        box.append(outbox.encode(fields(seq, ts=None, at=1000 + seq)))
    forget(box, {1, 2})
    assert box.stamp(15, 1795347568123)  # in a later segment than the head's
    assert not box.stamp(2, 1795347568123)  # acknowledged and gone
    assert not box.stamp(99, 1795347568123)
    again = outbox.Outbox(path, segment_bytes=200)
    records = [outbox.decode(r) for r in again.oldest(100)]
    assert [(r["seq"], r["ts"], r["at"]) for r in records if r["ts"] is not None] == [
        (15, 1795347568123, None)
    ]
    untouched = [s for s in range(3, 21) if s != 15]
    assert [r["at"] for r in records if r["seq"] != 15] == [1000 + s for s in untouched]
    assert again.bytes == box.bytes  # nothing but the time field changed


def test_the_oldest_moves_to_the_tail_the_same_bytes_even_when_the_queue_is_full(tmp_path):
    path = str(tmp_path / "q")
    box = outbox.Outbox(path, capacity=3 * 40, segment_bytes=100)
    while box.append(record(len(box) + 1)):
        pass
    assert seqs_of(box) == [1, 2, 3]
    first = box.peek()
    assert box.requeue() == 1
    again = outbox.Outbox(path, capacity=3 * 40, segment_bytes=100)
    assert seqs_of(again) == [2, 3, 1]
    assert again.oldest(3)[2] == first and again.bytes == box.bytes
    assert forget(again, {2, 3}) == [2, 3]
    assert again.append(record(4))
