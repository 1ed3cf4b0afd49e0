# Run under the MicroPython Unix port with the firmware on the path:
# cuts the power at every single flash write of a run of ratings being
# queued unstamped, stamped late, moved to the tail and acknowledged on
# littlefs, reboots, and checks that no rating was lost or torn, none came
# back after its acknowledgement was recorded nor twice but the one being
# moved, a stamp is there once written and no seq can be handed out twice.
# Prints "ok <cuts>" or raises. File objects that a cut left open on the dead
# mount are closed by the garbage collector, which may print "OSError: 28"
# lines: that is the old mount, not the check.
import outbox
import store
import vfs
from ramflash import PowerCut, RamFlash

RATINGS = 27
SEGMENT = 512  # small segments, so the run rolls over and deletes several
STAMPED = 1795347568123  # a rating's late stamp is this plus its seq


def mount(flash):
    try:
        vfs.umount("/flash")
    except OSError:
        pass
    vfs.mount(vfs.VfsLfs2(flash), "/flash")


def record(seq, boot):
    return outbox.encode(
        {
            "seq": seq,
            "boot": boot,
            "ts": None,  # pressed before the clock was known
            "at": seq,
            "score": 4,
            "reason": None,
            "mode": "prompt",
            "wait_ms": 1830,
            "counter": "03",
            "staff": "E1023",
            "ticket": "A%03d" % seq,
            "aspects": None,
        }
    )


def workload(state):
    """Queue RATINGS ratings, each stamped once the next is queued; after every third, the
    two oldest are acknowledged at once, after every fourth the oldest moved to the tail."""
    counters = store.Counters("/flash/counters.json")
    box = outbox.Outbox("/flash/q", segment_bytes=SEGMENT)
    while len(state["appended"]) < RATINGS:
        seq = counters.next_seq()
        state["reserved"] = seq
        state["appending"] = seq
        box.append(record(seq, counters.boot))
        state["appended"].append(seq)
        state["appending"] = None
        state["stamping"] = seq - 1
        if box.stamp(seq - 1, STAMPED + seq - 1):
            state["stamped"].append(seq - 1)
        state["stamping"] = None
        if seq % 3 == 0:
            heads = [outbox.seq_of(r) for r in box.oldest(2)]
            state["popping"] = heads
            box.forget(lambda seq: seq in heads, lambda seq: None)
            state["popped"].extend(heads)
            state["popping"] = []
        if seq % 4 == 0 and len(box) > 1:
            state["moving"] = outbox.seq_of(box.peek())
            box.requeue()
            state["moved"].append(state["moving"])
            state["moving"] = None


def new_state():
    return {
        "appended": [],
        "popped": [],
        "appending": None,
        "popping": [],
        "reserved": 0,
        "stamped": [],
        "stamping": None,
        "moved": [],
        "moving": None,
    }


def check(state):
    counters = store.Counters("/flash/counters.json")
    assert counters.seq >= state["reserved"], "a seq handed out was forgotten"
    box = outbox.Outbox("/flash/q", segment_bytes=SEGMENT)
    queued = []
    while box.peek() is not None:
        fields = outbox.decode(box.peek())
        seq = fields["seq"]
        assert fields["ticket"] == "A%03d" % seq, "torn record"
        if seq in state["stamped"]:
            assert fields["ts"] == STAMPED + seq, "stamp lost: %r" % fields
        elif seq != state["stamping"]:
            assert fields["ts"] is None and fields["at"] == seq, "stamped: %r" % fields
        else:
            assert fields["ts"] in (None, STAMPED + seq), "torn stamp: %r" % fields
        queued.append(fields["seq"])
        box.forget(lambda seq: seq == fields["seq"], lambda seq: None)
    in_order = [s for s in queued if s not in state["moved"] and s != state["moving"]]
    assert in_order == sorted(in_order), "order: %r" % queued
    for s in queued:
        assert queued.count(s) == 1 or s == state["moving"], "twice: %r" % queued
    assert len(box) == 0
    # acknowledged ones may be gone or, when the cut came before the head moved, still there
    must = [s for s in state["appended"] if s not in state["popped"] + state["popping"]]
    may = set(must) | {state["appending"]} | set(state["popping"])
    for s in must:
        assert s in queued, "lost %d (queued %r)" % (s, queued)
    for s in queued:
        assert s in may, "came back %d" % s
    for s in queued + state["appended"]:
        assert s <= counters.seq, "seq %d could be reused" % s


def run(cut_after):
    flash = RamFlash(block_size=512, blocks=128)
    vfs.VfsLfs2.mkfs(flash)
    mount(flash)
    state = new_state()
    flash.cut_after = cut_after
    try:
        workload(state)
    except PowerCut:
        pass
    writes = flash.writes
    mount(flash.reboot())
    check(state)
    return writes


total = run(None)
for n in range(total):
    run(n)
print("ok", total)
