"""What neither a collector nor a payload can do to the real firmware's link and queue, under
the MicroPython Unix port against the real Mosquitto: a rating never acknowledged blocks none
after it."""

from __future__ import annotations

import time

from tests.terminals import Listener, Withholding, make_terminal


def rate(terminal, n):
    terminal.clerk_key()
    terminal.wait_count("opened", n)
    terminal.press(0)
    terminal.wait_for(lambda e: e["ev"] == "rated" and e["seq"] == n)


def test_a_rating_never_acknowledged_moves_to_the_tail_and_blocks_none_after_it(
    mosquitto, micropython, tmp_path, topic_root
):
    """Seq 1 is never acknowledged, 2 and 3 are, and the queue holds three ratings: a fourth
    is taken once the head has moved, and the first is kept, sent again and forgotten when the
    collector at last takes it. The resend rounds' waits (10 s, then 20 s) pass at once."""
    withheld = {1}
    peer = Withholding(mosquitto, topic_root, withheld)
    listener = Listener(mosquitto, topic_root, "listener-requeue")
    terminal = make_terminal(
        tmp_path / "t", mosquitto, topic_root, queue_bytes=100, keepalive_s=60
    )  # room for three ratings; a keepalive the waits let pass do not outlast
    try:
        terminal.start()
        terminal.wait_for(lambda e: e["ev"] == "connected")
        for n in (1, 2, 3):
            rate(terminal, n)
        listener.wait("ack", 2)
        time.sleep(0.5)  # for the terminal to have them too
        terminal.elapse(11_000)
        terminal.wait_for(lambda e: e["ev"] == "resent" and e["seq"] == 1)
        terminal.elapse(21_000)
        moved = terminal.wait_for(lambda e: e["ev"] == "requeued")
        assert moved["seq"] == 1
        terminal.wait_acked(3)
        rate(terminal, 4)
        listener.wait("rating", 5)  # 1, 2, 3, 4 and at least one copy of 1 again
        assert not terminal.of_kind("dropped")
        state = [s for s in listener.of("state") if s.get("requeued")]
        assert state and state[-1]["requeued"] == 1 and state[-1]["online"]
        withheld.clear()  # the collector takes it at last
        terminal.wifi(False)  # a new connection sends it again at once
        terminal.wifi(True)
        terminal.wait_acked(1, timeout_s=20)
        terminal.wait_acked(4)
    finally:
        terminal.stop()
        listener.close()
        peer.close()
    assert [e["seq"] for e in terminal.of_kind("acked")] == [2, 3, 1, 4]
